"""Where the offline default model lives, whether it is complete, and copying it between machines.

This module only knows files: how the model is *built* is :mod:`bert_insight.models.default`. A build
(or an import) is written to a hidden temporary directory next to its target and renamed into place
only when complete, under a file lock, so a killed process never leaves a half model that counts as
built.

    bert-insight model export minilm.tar.gz     # on the machine that built it
    bert-insight model import minilm.tar.gz     # on each laptop: no 20-minute build
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from ..errors import BertInsightInputError

MODEL_DIR_NAME = "minilm-l6-squad11-v1"
CARD_FILE = "model_card.json"
#: A complete model directory has each group: the config, the card, the weights, the tokenizer.
REQUIRED_FILES: tuple[tuple[str, ...], ...] = (
    ("config.json",),
    (CARD_FILE,),
    ("model.safetensors", "pytorch_model.bin"),
    ("tokenizer.json", "vocab.txt"),
)
ARCHIVE_SUFFIXES = {".tar.gz": "gztar", ".tgz": "gztar", ".tar": "tar", ".zip": "zip"}


def cache_root() -> Path:
    """``$BERT_INSIGHT_CACHE`` if set, else the platform's user cache directory for bert_insight."""
    configured = os.environ.get("BERT_INSIGHT_CACHE")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bert_insight"))


def model_dir(name: str) -> Path:
    """Where the offline model ``name`` lives: ``<cache root>/models/<name>``."""
    return cache_root() / "models" / name


def default_model_dir() -> Path:
    """Where the offline default QA model lives: ``<cache root>/models/minilm-l6-squad11-v1``."""
    return model_dir(MODEL_DIR_NAME)


def missing_files(directory: str | os.PathLike) -> list[str]:
    """The required files ``directory`` lacks (one name per missing group; empty when complete)."""
    directory = Path(directory)
    return [" or ".join(group) for group in REQUIRED_FILES
            if not any((directory / name).is_file() for name in group)]


def is_built(directory: str | os.PathLike | None = None) -> bool:
    """True when ``directory`` (default: :func:`default_model_dir`) holds a complete model."""
    return not missing_files(default_model_dir() if directory is None else directory)


def read_card(directory: str | os.PathLike) -> dict:
    """The ``model_card.json`` of a model directory ({} when there is none); a clear error when corrupt."""
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        return {}
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BertInsightInputError(
            f"The model card {path} is corrupt ({error.__class__.__name__}: {error}). Rebuild the model "
            "(`bert-insight model build --rebuild`), import a good copy (`bert-insight model import PATH`), "
            "or delete the card to load the weights without it."
        ) from error
    if not isinstance(card, dict):
        raise BertInsightInputError(f"The model card {path} holds {type(card).__name__}, not a JSON object; "
                                    "rebuild or re-import the model.")
    return card


def read_default_card() -> dict | None:
    """The default model's card, or None when no complete default model is in the cache."""
    directory = default_model_dir()
    return read_card(directory) if is_built(directory) else None


def require_complete(directory: Path, what: str) -> None:
    """Raise BertInsightInputError naming the missing files of an incomplete model directory."""
    missing = missing_files(directory)
    if missing:
        raise BertInsightInputError(
            f"{what} in {directory} is incomplete: it lacks {', '.join(missing)}. Rebuild it "
            "(`bert-insight model build --rebuild`) or import a complete copy (`bert-insight model import PATH`)."
        )


def is_installed(directory: str | os.PathLike | None = None, *, what: str = "The default model") -> bool:
    """True for a complete model with a readable card; False when ``directory`` (default:
    :func:`default_model_dir`) does not exist; BertInsightInputError naming the damage otherwise, so a
    damaged model is reported rather than silently rebuilt or used."""
    directory = default_model_dir() if directory is None else Path(directory)
    if not directory.exists():
        return False
    require_complete(directory, what)
    read_card(directory)
    return True


# ---- atomic placement ----------------------------------------------------------------------------------
@contextmanager
def default_model_lock(*, on_wait=None, name: str = MODEL_DIR_NAME) -> Iterator[None]:
    """Hold the lock of the offline model ``name``'s directory (one build or import at a time; the
    default QA model unless named).

    ``on_wait`` is called once when another process holds the lock and this one waits for it.
    """
    from filelock import FileLock, Timeout

    parent = model_dir(name).parent
    parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(parent / f".{name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def new_staging_dir(kind: str = "building", *, name: str = MODEL_DIR_NAME) -> Path:
    """A fresh hidden directory beside the offline model ``name`` (same file system, so renaming is
    atomic)."""
    parent = model_dir(name).parent
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{name}.{kind}-", dir=parent))


def remove_stale_staging(name: str = MODEL_DIR_NAME) -> None:
    """Delete staging directories of killed builds and imports of ``name``. Call with its lock held."""
    for leftover in model_dir(name).parent.glob(f".{name}.*-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def place(staged: Path, target: Path | None = None) -> Path:
    """Move a complete staged model into place; an old model is moved aside first, then deleted."""
    target = default_model_dir() if target is None else target
    require_complete(staged, "The staged model")
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "model")
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)
    return target


def build_once(name: str, build: Callable[[Path], object], *, rebuild: bool = False,
               what: str = "The default model", on_wait: Callable[[], None] | None = None) -> Path:
    """The directory of the offline model ``name``, made by ``build(staging_dir)`` first when it is
    absent (or ``rebuild``): under the model's lock, into a staging directory renamed into place only
    when complete, so a killed build leaves nothing that counts as built and concurrent callers wait
    for one build. A damaged directory is reported (:func:`is_installed`), not silently rebuilt."""
    target = model_dir(name)
    if not rebuild and is_installed(target, what=what):
        return target
    with default_model_lock(on_wait=on_wait, name=name):
        if not rebuild and is_installed(target, what=what):  # built by the process we waited for
            return target
        remove_stale_staging(name)
        building = new_staging_dir("building", name=name)
        try:
            build(building)
            place(building, target)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return target


# ---- export / import -----------------------------------------------------------------------------------
def _archive_format(path: Path) -> str | None:
    name = path.name.lower()
    return next((kind for suffix, kind in ARCHIVE_SUFFIXES.items() if name.endswith(suffix)), None)


def export_default_model(destination: str | os.PathLike) -> Path:
    """Copy the built default model (weights, tokenizer, card) to ``destination``.

    A path ending in .tar.gz, .tgz, .tar or .zip becomes an archive; any other path a new directory.
    Returns the written path. Refuses to overwrite an existing file or a non-empty directory.
    """
    source = default_model_dir()
    if not source.exists():
        raise BertInsightInputError(
            f"No default model to export: {source} does not exist. Build it first (`bert-insight model build`).")
    require_complete(source, "The default model")
    destination = Path(destination).expanduser()
    if destination.exists() and (destination.is_file() or any(destination.iterdir())):
        raise BertInsightInputError(f"{destination} already exists; pass a new path (or remove it first).")
    kind = _archive_format(destination)
    if kind is None:
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return destination
    destination.parent.mkdir(parents=True, exist_ok=True)
    suffix = next(suffix for suffix in ARCHIVE_SUFFIXES if destination.name.lower().endswith(suffix))
    base = destination.with_name(destination.name[: -len(suffix)])
    # Write beside the destination, then rename: an interrupted export leaves no half archive there.
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=destination.parent))
    try:
        written = shutil.make_archive(str(staging / base.name), kind, root_dir=source.parent, base_dir=source.name)
        os.replace(written, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def _model_root(unpacked: Path) -> Path:
    """The directory holding config.json: ``unpacked`` itself or its only subdirectory."""
    if (unpacked / "config.json").is_file():
        return unpacked
    children = [child for child in unpacked.iterdir() if child.is_dir()]
    if len(children) == 1 and (children[0] / "config.json").is_file():
        return children[0]
    return unpacked


def import_default_model(source: str | os.PathLike, *, replace: bool = False) -> Path:
    """Install a model exported by :func:`export_default_model` (a directory or archive) as the default.

    The copy is checked (every required file, a readable card) before it replaces anything. An existing
    default model is kept unless ``replace=True``. Returns the default model's directory.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise BertInsightInputError(f"{source} does not exist; pass the directory or archive that "
                                    "`bert-insight model export` wrote.")
    kind = None if source.is_dir() else _archive_format(source)
    if not source.is_dir() and kind is None:
        raise BertInsightInputError(
            f"{source} is neither a directory nor an archive ({', '.join(ARCHIVE_SUFFIXES)}); pass what "
            "`bert-insight model export` wrote.")
    target = default_model_dir()
    with default_model_lock():
        if is_built(target) and not replace:
            raise BertInsightInputError(
                f"A default model is already installed in {target}; pass replace=True "
                "(`bert-insight model import PATH --replace`) to swap it for the imported one.")
        remove_stale_staging()
        staging = new_staging_dir("importing")
        try:
            if kind is None:
                shutil.copytree(_model_root(source), staging / "model")
            else:
                try:
                    shutil.unpack_archive(str(source), str(staging / "unpacked"), format=kind)
                except (shutil.ReadError, OSError, EOFError) as error:
                    raise BertInsightInputError(f"Cannot unpack {source}: {error}. Export it again.") from error
                os.replace(_model_root(staging / "unpacked"), staging / "model")
            model = staging / "model"
            require_complete(model, f"The model imported from {source}")
            read_card(model)  # a corrupt card is refused here, not at the first load
            return place(model, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
