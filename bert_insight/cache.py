"""On-disk results cache shared by the verbs: one parquet file per (example, frame), so a killed run resumes.

Layout::

    cache_dir/<function>/<run key>/manifest.json                      function, fingerprint, params
    cache_dir/<function>/<run key>/<example digest>.<frame>.parquet   one result frame of one example
    cache_dir/<function>/<run key>/<example digest>.claim             "a run is computing this example"

The run key hashes the model fingerprint and the parameters that change the result, so other weights
or settings never see these entries. Every write goes to a temporary file that is renamed into place
(``os.replace``), so a run killed mid-write never leaves a half file that a resumed run would trust.

Claims let several processes share one cache directory without computing an example twice: a run
creates the claim file atomically before computing an example and removes it after saving; other runs
skip claimed examples, do the rest, then wait for the claimed ones to appear. A claim whose owner died
(same host, pid gone, e.g. after ``kill -9``) or that is older than ``claim_timeout`` is taken over.

:meth:`ResultCache.compute` is the loop every verb uses: load what is stored, claim and compute the
rest (saving each example as soon as it is done), wait for the examples other runs are computing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from .errors import BertInsightInputError

logger = logging.getLogger(__name__)

Frames = dict[str, pd.DataFrame]

#: A claim file that cannot be parsed (its writer died between creating and filling it) counts as stale
#: once it is this many seconds old; younger, it may still be being written.
_UNREADABLE_CLAIM_GRACE = 10.0
_HOST = socket.gethostname()


def _digest(value: object, length: int = 16) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _temporary_path(path: Path) -> Path:
    """A sibling of ``path`` unique to this process and call, hidden and not ending in .parquet."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` then rename the temporary file onto ``path``; no half file on failure."""
    temporary = _temporary_path(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host; True when that cannot be told (then only age counts)."""
    if pid <= 0 or os.name == "nt":  # os.kill(pid, 0) on Windows would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, owned by another user
        return True
    return True


def _read_claim(path: Path) -> dict | None:
    """The claim's JSON ({host, pid, time}); {} when unparseable; None when there is no claim file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        content = json.loads(text)
    except ValueError:
        return {}
    return content if isinstance(content, dict) else {}


def _default_range_index(frame: pd.DataFrame) -> bool:
    index = frame.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


class ResultCache:
    """Per-example result store of one verb run; ``cache_dir=None`` gives a cache that stores nothing.

    An entry is the dict of named frames one example produced (for layer_ig "attributions" and
    "convergence", with the columns its docstring lists); the cache stores them column for column, but
    not their index: frames come back with a fresh RangeIndex (``compute`` returns computed frames that
    way too, so a fresh and a cached run give equal frames).

    Parameters
    ----------
    cache_dir: root directory (str or os.PathLike, ``~`` expanded, created if missing), or None for no
        cache. An empty string is refused rather than read as the working directory.
    fingerprint: identifies the model weights; function: the verb's name ("layer_ig");
    params: the parameters that change the result (JSON-serialisable). Fingerprint and params make the
        run key: changing either gives a separate directory.
    claim_timeout: seconds after which another run's claim counts as abandoned even when its owner may
        still be alive (e.g. on another host, where its pid cannot be checked).
    poll_interval: seconds between looks at the examples other runs are computing.
    """

    def __init__(self, cache_dir: str | os.PathLike | None, *, fingerprint: str, function: str, params: dict,
                 claim_timeout: float = 3600.0, poll_interval: float = 0.5):
        self.enabled = cache_dir is not None
        self.run_key = _digest({"fingerprint": fingerprint, "params": params})
        self.claim_timeout = float(claim_timeout)
        self.poll_interval = float(poll_interval)
        self.directory: Path | None = None
        self._claims: dict[str, dict] = {}  # key -> content of the claim file this cache created
        if not self.enabled:
            return
        root = _cache_root(cache_dir)
        self.directory = root / function / self.run_key
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as error:
            raise BertInsightInputError(
                f"cannot create the cache directory {self.directory}: part of that path is a file; "
                "pass a directory path, or None for no cache") from error
        manifest = self.directory / "manifest.json"
        if not manifest.exists():
            text = json.dumps({"function": function, "fingerprint": fingerprint, "params": params},
                              indent=2, default=str)
            _atomic_write(manifest, lambda temporary: temporary.write_text(text))

    # ----------------------------------------------------------------------------------- entries

    def _stem(self, key: str) -> str:
        return _digest(key, 24)

    def _path(self, key: str, name: str) -> Path:
        return self.directory / f"{self._stem(key)}.{name}.parquet"

    def _claim_path(self, key: str) -> Path:
        return self.directory / f"{self._stem(key)}.claim"

    def load(self, key: str, names: tuple[str, ...]) -> Frames | None:
        """The frames stored for ``key``, or None unless every one of ``names`` is there and readable.

        A corrupt file (truncated, garbage) is reported with a RuntimeWarning naming it and deleted,
        so the example is computed again instead of stopping the run.
        """
        if not self.enabled:
            return None
        paths = {name: self._path(key, name) for name in names}
        if not all(path.is_file() for path in paths.values()):
            return None
        frames = {}
        for name, path in paths.items():
            try:
                frames[name] = pd.read_parquet(path)
            except FileNotFoundError:  # deleted by another run in between
                return None
            except Exception as error:  # noqa: BLE001  (pyarrow raises many types for a bad file)
                warnings.warn(f"corrupt cache entry {path} ({type(error).__name__}: {error}); deleted, "
                              "the example is computed again", RuntimeWarning, stacklevel=2)
                path.unlink(missing_ok=True)
                return None
        return frames

    def save(self, key: str, frames: Frames) -> None:
        """Store each frame of ``key`` (without its index), each file written atomically."""
        if not self.enabled:
            return
        for name, frame in frames.items():
            _atomic_write(self._path(key, name), lambda temporary: frame.to_parquet(temporary, index=False))

    def __len__(self) -> int:
        """Number of examples with at least one stored frame."""
        if not self.enabled:
            return 0
        return len({path.name.split(".")[0] for path in self.directory.glob("*.parquet")})

    # ------------------------------------------------------------------------------------ claims

    def claim(self, key: str) -> bool:
        """Try to become the run that computes ``key``: True if this cache now holds its claim.

        False while another live run holds it. A stale claim (its owner's pid is gone on this host, or
        it is older than ``claim_timeout``) is taken over. Always True when caching is disabled.
        """
        if not self.enabled:
            return True
        if key in self._claims:
            return True
        path = self._claim_path(key)
        for _ in range(5):  # each retry follows another run removing or taking over the claim
            content = {"host": _HOST, "pid": os.getpid(), "time": time.time()}
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._remove_if_stale(path):
                    return False
                continue
            try:
                with os.fdopen(descriptor, "w") as file:
                    json.dump(content, file)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            self._claims[key] = content
            return True
        return False

    def release(self, key: str) -> None:
        """Remove this cache's claim of ``key`` (no-op if it holds none, or another run took it over)."""
        content = self._claims.pop(key, None)
        if content is None or not self.enabled:
            return
        path = self._claim_path(key)
        if _read_claim(path) == content:
            path.unlink(missing_ok=True)

    def _is_stale(self, content: dict, path: Path) -> bool:
        created = content.get("time")
        if not isinstance(created, (int, float)):
            try:
                created = path.stat().st_mtime
            except FileNotFoundError:
                return True
            if not content:  # unparseable: maybe being written this instant
                return time.time() - created > min(_UNREADABLE_CLAIM_GRACE, self.claim_timeout)
        if time.time() - created > self.claim_timeout:
            return True
        pid = content.get("pid")
        return content.get("host") == _HOST and isinstance(pid, int) and not _pid_alive(pid)

    def _remove_if_stale(self, path: Path) -> bool:
        """Remove the claim at ``path`` if stale; True when the caller should try to create it again."""
        content = _read_claim(path)
        if content is None:
            return True
        if not self._is_stale(content, path):
            return False
        # Move the stale claim aside (only one run's rename succeeds), then check that what was moved
        # is still stale: another run may have replaced it with a fresh claim after we read it.
        moved = _temporary_path(path)
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            return True
        moved_content = _read_claim(moved)
        if moved_content is not None and not self._is_stale(moved_content, moved):
            try:
                os.link(moved, path)  # put the live claim back unless a newer one is there already
            except OSError:
                pass
            moved.unlink(missing_ok=True)
            return False
        moved.unlink(missing_ok=True)
        logger.info("took over stale claim %s (%s)", path, content)
        return True

    # -------------------------------------------------------------------------------------- loop

    def compute(self, keys: Sequence[str], compute: Callable[[str], Frames], names: tuple[str, ...], *,
                progress: bool = False, desc: str = "") -> dict[str, Frames]:
        """The frames named ``names`` of every key, computing (and storing) those not in the cache.

        Stored entries are loaded; every other key is claimed, computed with ``compute(key)`` (a dict
        holding at least ``names``) and saved at once, so a killed run loses one example at most. Keys
        another run has claimed are left to it: after the rest are done this waits for their results
        (polling every ``poll_interval`` seconds) and computes them itself if their claim is released
        without a result or goes stale. Returns ``{key: {name: frame}}`` in the order of ``keys``
        (repeated keys once). With ``progress``, a tqdm bar counts keys.
        """
        names = tuple(names)
        unique = list(dict.fromkeys(keys))
        results: dict[str, Frames] = {}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(unique), desc=desc or None)
        try:
            deferred = [key for key in unique if not self._try(key, compute, names, results, bar)]
            while deferred:
                if bar is not None:
                    bar.set_postfix_str(f"waiting for {len(deferred)} computed by other runs")
                time.sleep(self.poll_interval)
                deferred = [key for key in deferred if not self._try(key, compute, names, results, bar)]
        finally:
            if bar is not None:
                bar.close()
        return {key: results[key] for key in unique}

    def _try(self, key: str, compute: Callable[[str], Frames], names: tuple[str, ...],
             results: dict[str, Frames], bar) -> bool:
        """Load or claim-and-compute ``key`` into ``results``; False when another run holds its claim."""
        frames = self.load(key, names)
        if frames is None:
            if not self.claim(key):
                return False
            try:
                # Another run may have saved it between our load and our claim.
                frames = self.load(key, names)
                if frames is None:
                    frames = _checked(compute(key), names, key)
                    self.save(key, frames)
            finally:
                self.release(key)
        results[key] = {name: frames[name] for name in names}
        if bar is not None:
            bar.update(1)
        return True


def _checked(frames: Frames, names: tuple[str, ...], key: str) -> Frames:
    missing = [name for name in names if name not in frames]
    if missing:
        raise ValueError(f"compute({key!r}) returned frames {sorted(frames)}, missing {missing}")
    return {name: frames[name] if _default_range_index(frames[name]) else frames[name].reset_index(drop=True)
            for name in frames}


def _cache_root(cache_dir: object) -> Path:
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise BertInsightInputError(f"cache_dir must be a directory path (str or os.PathLike) or None, "
                                    f"not {type(cache_dir).__name__}")
    text = os.fspath(cache_dir)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise BertInsightInputError(f"cache_dir={text!r} is empty (it would put the cache in the working "
                                    "directory): pass a directory path, or None for no cache")
    root = Path(text).expanduser()
    if root.exists() and not root.is_dir():
        raise BertInsightInputError(f"cache_dir {root} exists and is not a directory: pass a directory "
                                    "path, or None for no cache")
    return root
