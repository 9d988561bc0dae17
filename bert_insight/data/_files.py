"""File access shared by the loaders: bundled slices, .json / .json.gz / .zip reading, answer search."""

from __future__ import annotations

import gzip
import json
import os
import re
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from bert_insight.errors import BertInsightInputError

DATA_SUFFIXES = (".json", ".gz", ".zip", ".txt", ".jsonl")
# Answers that are a verdict rather than a span; searching for them would find unrelated words.
NON_EXTRACTIVE_ANSWERS = frozenset({"yes", "no"})


def bundled_path(name: str) -> Path:
    """Path of a data file shipped in ``bert_insight/data/bundled``."""
    return Path(str(resources.files("bert_insight.data") / "bundled" / name))


def as_local_path(path: str | os.PathLike, what: str) -> Path:
    """``path`` as an existing Path, or a BertInsightInputError saying it is missing."""
    local = Path(path).expanduser()
    if not local.exists():
        raise BertInsightInputError(f"{what}: no such file or folder {str(local)!r}. Check the path.")
    return local


def looks_like_path(value: str | os.PathLike) -> bool:
    """True for an existing path or a string ending like a data file (so a typo is not sent to the hub)."""
    if isinstance(value, os.PathLike):
        return True
    return Path(value).expanduser().exists() or value.lower().endswith(DATA_SUFFIXES)


def read_text(path: Path) -> str:
    """Text of ``path``: plain, gzip-compressed, or the single data file inside a zip."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if not n.endswith("/") and not n.startswith("__MACOSX")]
            data_members = [n for n in members if n.lower().endswith((".json", ".txt", ".jsonl"))] or members
            if len(data_members) != 1:
                raise BertInsightInputError(
                    f"{str(path)!r} is a zip holding {len(data_members)} data files ({data_members[:5]}); "
                    "expected exactly one. Unzip it and pass the file you mean.")
            return archive.read(data_members[0]).decode("utf-8")
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8")


def read_json(path: Path) -> Any:
    """Parsed JSON of ``path`` (.json, .json.gz or a .zip holding one json file)."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise BertInsightInputError(f"{str(path)!r} is not valid JSON ({err}). Pass a .json, .json.gz "
                                    "or a .zip holding one json file.") from err


def locate_answer(context: str, answer: str, prefer: Iterable[tuple[int, int]] = ()) -> tuple[int, str] | None:
    """Where ``answer`` occurs in ``context`` as whole words: ``(answer_start, text as written there)``.

    Exact case is tried before ignoring case, and then without trailing punctuation (DuoRC answers are
    often full sentences ending in "."). Among the matches, the first one inside a ``prefer`` span
    (e.g. a supporting sentence) wins, else the first one. None when absent or a yes/no verdict.
    """
    text = answer.strip()
    if not text or text.lower() in NON_EXTRACTIVE_ANSWERS:
        return None
    prefer = list(prefer)
    candidates = [text]
    trimmed = text.rstrip(".!?,;:")
    if trimmed and trimmed != text:
        candidates.append(trimmed)
    for candidate in candidates:
        pattern = r"(?<!\w)" + re.escape(candidate) + r"(?!\w)"
        for flags in (0, re.IGNORECASE):
            matches = list(re.finditer(pattern, context, flags))
            if not matches:
                continue
            preferred = [m for m in matches if any(s <= m.start() and m.end() <= e for s, e in prefer)]
            best = (preferred or matches)[0]
            return best.start(), best.group(0)
    return None
