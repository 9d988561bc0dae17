"""The offline bAbI model: all-MiniLM-L6-v2 fine-tuned for span prediction on all 20 bAbI tasks at once
(the multitask span-prediction setting of van Aken et al. 2019, Table 2; ``load_qa_model("babi")``).

bAbI answers are often not words of the story (yes / no, counts, directions, lists), so every context
ends with "Candidates: ..." listing every answer of its task, as van Aken et al. did to make span
prediction work (``load_babi(candidates=True)``). Trained on the 20 x 1,000 training questions of the
1k English set (bundled, CC BY 3.0), scored on the 20 x 1,000 test questions: accuracy is exact match
of the predicted span with the answer, per task and on average. A fixed seeded recipe
(:data:`BABI_STEPS` optimiser steps, fp32), built under the same lock and staging as the other
defaults (:func:`bert_insight.models.store.build_once`). The paper fine-tuned BERT-base with a grid
search and model selection on a development set; this recipe has neither (see docs/vanaken2019.md).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..data import load_babi
from ..qa import evaluate, predict
from .checkpoint import load_checkpoint, save_checkpoint
from .default import BASE_MODEL_NAME, build_environment, say
from .finetune import finetune_qa
from .offline import minilm_base_dir
from .store import build_once, model_dir

BABI_MODEL_DIR_NAME = "minilm-l6-babi-v1"
BABI_DISPLAY_NAME = "bert-insight/minilm-l6-babi (offline bAbI model)"
BABI_RECIPE = "minilm-base-then-1000-steps-babi-1k-all-tasks-fp32"
BABI_TASKS = tuple(range(1, 21))
BABI_STEPS = 1000
#: The SQuAD 1.1 default's settings (a new QA head on the same base); bAbI stories are short, so most
#: windows are far below max_length and a step costs a fraction of a SQuAD step.
BABI_TRAINING_SETTINGS = dict(lr=2e-4, batch_size=32, max_length=384, doc_stride=128, seed=0, warmup_ratio=0.1,
                              weight_decay=0.01, dropout=0.0, bf16=False)
BABI_EVAL_SETTINGS = dict(max_length=384, doc_stride=128, batch_size=64)
#: van Aken et al. 2019, Table 2: BERT (base) fine-tuned on bAbI, multitask, accuracy in percent.
VANAKEN2019_TABLE2 = {"squad": {"baseline": 77.2, "bert": 87.9, "gpt2": 74.9},
                      "hotpotqa_distractor": {"baseline": 66.0, "bert": 56.8, "gpt2": 54.0},
                      "hotpotqa_supporting_facts": {"baseline": 66.0, "bert": 80.4, "gpt2": 64.6},
                      "babi": {"baseline": 42.0, "bert": 93.4, "gpt2": 99.9}}


def babi_model_dir() -> Path:
    """Where the bAbI model lives: ``<cache root>/models/minilm-l6-babi-v1``."""
    return model_dir(BABI_MODEL_DIR_NAME)


def babi_examples(split: str, *, tasks=BABI_TASKS, source=None) -> pd.DataFrame:
    """The bAbI questions of ``tasks`` and ``split`` (train / test), contexts ending with their task's
    candidate answers; columns of :func:`bert_insight.load_babi`."""
    frames = [load_babi(source, task=task, split=split, candidates=True) for task in tasks]
    return pd.concat(frames, ignore_index=True)


def babi_accuracy(predictions: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """Exact-match accuracy (percent) per bAbI task and over all: columns task (an int, or "all"), n,
    accuracy."""
    rows = []
    for task, part in examples.groupby("task", sort=True):
        scores = evaluate(predictions[predictions["example_id"].isin(part["example_id"])], examples=part)
        rows.append({"task": int(task), "n": len(part),
                     "accuracy": float(scores.set_index("group").loc["all", "exact_match"])})
    frame = pd.DataFrame(rows)
    overall = {"task": "all", "n": int(frame["n"].sum()), "accuracy": float(frame["accuracy"].mean())}
    return pd.concat([frame, pd.DataFrame([overall])], ignore_index=True)


def build_babi_into(directory: Path, *, progress: bool = True, source=None) -> dict:
    """Fine-tune, evaluate and save the bAbI model into ``directory``; returns its card."""
    started = time.perf_counter()
    train = babi_examples("train", source=source)
    test = babi_examples("test", source=source)
    base = load_checkpoint(str(minilm_base_dir()), allow_new_qa_head=True, display_name=BASE_MODEL_NAME)
    say(f"fine-tuning on {len(train)} bAbI questions of tasks 1-20 ({BABI_STEPS} steps)", progress)
    handle = finetune_qa(base, train, progress=progress, max_steps=BABI_STEPS, **BABI_TRAINING_SETTINGS)
    training_seconds = time.perf_counter() - started
    say(f"evaluating on {len(test)} test questions", progress)
    predictions = predict(handle, test, progress=progress, **BABI_EVAL_SETTINGS)
    accuracy = babi_accuracy(predictions, test).set_index("task")
    training = handle.card
    card = {
        "name": BABI_MODEL_DIR_NAME,
        "recipe": BABI_RECIPE,
        "base_model": BASE_MODEL_NAME,
        "task": "span prediction on bAbI tasks 1-20 (multitask), contexts ending with the task's candidate answers",
        "training_data": "bAbI 1k English v1.2, train files of tasks 1-20 (bundled)",
        "n_train_questions": int(len(train)),
        **{key: training[key] for key in ("n_train_windows", "n_answer_windows", "steps", "max_steps", "epochs",
                                          "lr", "batch_size", "max_length", "doc_stride", "warmup_ratio",
                                          "weight_decay", "dropout", "seed", "bf16", "device")},
        "training_seconds": round(training_seconds, 1),
        "eval_split": "test",
        "n_eval_questions": int(len(test)),
        "accuracy": round(float(accuracy.loc["all", "accuracy"]), 2),
        "accuracy_per_task": {int(task): round(float(value), 2)
                              for task, value in accuracy["accuracy"].items() if task != "all"},
        "paper_accuracy": VANAKEN2019_TABLE2["babi"]["bert"],
        "seconds": round(time.perf_counter() - started, 1),
        **build_environment(),
        "training_log": training["training_log"],
    }
    save_checkpoint(replace(handle, card=card), directory)
    say(f"bAbI test accuracy {card['accuracy']:.1f} (paper's BERT-base: {card['paper_accuracy']}); built in "
        f"{card['seconds'] / 60:.1f} min", progress)
    return card


def ensure_babi_model(*, rebuild: bool = False, progress: bool = True) -> Path:
    """The bAbI model's directory, built first when absent (about 25 minutes on 2 AMD Zen 4 cores).
    Concurrent callers wait for one build."""
    target = babi_model_dir()

    def build(building: Path) -> None:
        say(f"building the bAbI model into {target} (once per machine)", progress)
        build_babi_into(building, progress=progress)

    def waiting() -> None:
        say("another process is building the bAbI model; waiting for it", progress)

    return build_once(BABI_MODEL_DIR_NAME, build, rebuild=rebuild, what="The bAbI model", on_wait=waiting)
