"""On-disk results cache: one parquet file per (example, frame), so a killed run resumes.

Layout: ``cache_dir/<function>/<run key>/<example key>.<frame name>.parquet`` where the run key hashes
the model fingerprint and the parameters that change the result. Writes go to a temporary file and are
renamed into place, so a run killed mid-write never leaves a half file that a resumed run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd


def _digest(value: object, length: int = 16) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class ResultCache:
    """Per-example result store; ``cache_dir=None`` gives a cache that stores nothing."""

    def __init__(self, cache_dir: str | os.PathLike | None, *, fingerprint: str, function: str, params: dict):
        self.enabled = cache_dir is not None
        self.run_key = _digest({"fingerprint": fingerprint, "params": params})
        self.directory = Path(cache_dir) / function / self.run_key if self.enabled else None
        if self.enabled:
            self.directory.mkdir(parents=True, exist_ok=True)
            manifest = self.directory / "manifest.json"
            if not manifest.exists():
                manifest.write_text(json.dumps({"function": function, "fingerprint": fingerprint,
                                                "params": params}, indent=2, default=str))

    def _path(self, key: str, name: str) -> Path:
        return self.directory / f"{_digest(key, 24)}.{name}.parquet"

    def load(self, key: str, names: tuple[str, ...]) -> dict[str, pd.DataFrame] | None:
        """The frames stored for ``key``, or None unless every one of ``names`` is there."""
        if not self.enabled:
            return None
        paths = {name: self._path(key, name) for name in names}
        if not all(path.is_file() for path in paths.values()):
            return None
        return {name: pd.read_parquet(path) for name, path in paths.items()}

    def save(self, key: str, frames: dict[str, pd.DataFrame]) -> None:
        if not self.enabled:
            return
        for name, frame in frames.items():
            path = self._path(key, name)
            temporary = path.with_suffix(f".tmp{os.getpid()}")
            frame.to_parquet(temporary, index=False)
            os.replace(temporary, path)

    def __len__(self) -> int:
        if not self.enabled:
            return 0
        return len({path.name.split(".")[0] for path in self.directory.glob("*.parquet")})
