"""The offline SQuAD 2.0 default: the SQuAD 1.1 default fine-tuned further on the bundled SQuAD 2.0
subset's training articles, so it can answer "no answer" (the model of the DeepLIFT study,
notebooks/02_deeplift_squad2.ipynb; ``load_qa_model("squad2")``).

Split by article, the same split as the SQuAD 1.1 default (``bert_insight.data.HELDOUT_TITLES``): SQuAD
2.0 dev holds the 1.1 dev articles, so neither fine-tuning stage sees a held-out article. Of the 16
bundled articles, 11 train (4,194 questions) and 5 are held out (1,884). A fixed seeded recipe
(:data:`SQUAD2_STEPS` optimiser steps, fp32): the same model on every machine. The null-score threshold
is tuned on the training articles only (:func:`bert_insight.qa.tune_null_threshold`) and kept in the
card, where ``predict`` finds it. The card reports exact match and F1 overall, on answerable
(HasAns) and unanswerable (NoAns) questions. Built under the same lock and staging as the other
defaults (:func:`bert_insight.models.store.build_once`).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from ..data import load_squad
from ..qa import evaluate, predict, tune_null_threshold
from .checkpoint import load_checkpoint, save_checkpoint
from .default import BASE_MODEL_NAME, DEFAULT_DISPLAY_NAME, EVAL_SETTINGS, build_environment, ensure_default_model, say
from .finetune import finetune_qa
from .store import build_once, model_dir

SQUAD2_MODEL_DIR_NAME = "minilm-l6-squad20-v1"
SQUAD2_DISPLAY_NAME = "bert-insight/minilm-l6-squad2 (offline default)"
SQUAD2_RECIPE = "squad11-default-then-300-steps-squad20-fp32"
SQUAD2_STEPS = 300
#: Starts from a trained QA model, so a lower peak learning rate than the SQuAD 1.1 recipe's 2e-4.
SQUAD2_TRAINING_SETTINGS = dict(lr=1e-4, batch_size=32, max_length=384, doc_stride=128, seed=0, warmup_ratio=0.1,
                                weight_decay=0.01, dropout=0.0, bf16=False)


def squad2_model_dir() -> Path:
    """Where the SQuAD 2.0 default lives: ``<cache root>/models/minilm-l6-squad20-v1``."""
    return model_dir(SQUAD2_MODEL_DIR_NAME)


def build_squad2_into(directory: Path, *, progress: bool = True) -> dict:
    """Fine-tune, tune the null threshold, evaluate and save the SQuAD 2.0 default; returns its card."""
    started = time.perf_counter()
    train = load_squad(version="2.0", split="train")
    heldout = load_squad(version="2.0", split="heldout")
    base = load_checkpoint(str(ensure_default_model(progress=progress)), display_name=DEFAULT_DISPLAY_NAME)
    say(f"fine-tuning the SQuAD 1.1 default on {len(train)} SQuAD 2.0 questions "
        f"({int(train['is_impossible'].sum())} unanswerable) from {train['title'].nunique()} articles "
        f"({SQUAD2_STEPS} steps)", progress)
    handle = finetune_qa(base, train, progress=progress, max_steps=SQUAD2_STEPS, **SQUAD2_TRAINING_SETTINGS)
    training_seconds = time.perf_counter() - started
    say("tuning the null threshold on the training articles", progress)
    threshold, curve = tune_null_threshold(handle, train, progress=progress, **EVAL_SETTINGS)
    say(f"null threshold {threshold:g}; evaluating on {len(heldout)} held-out questions", progress)
    predictions = predict(handle, heldout, null_threshold=threshold, progress=progress, **EVAL_SETTINGS)
    scores = evaluate(predictions, examples=heldout).set_index("group")
    training = handle.card
    card = {
        "name": SQUAD2_MODEL_DIR_NAME,
        "recipe": SQUAD2_RECIPE,
        "base_model": f"{DEFAULT_DISPLAY_NAME}, itself from {BASE_MODEL_NAME}",
        "task": "extractive question answering with unanswerable questions (SQuAD 2.0 style)",
        "training_data": "bundled SQuAD 2.0 dev subset, articles not in bert_insight.data.HELDOUT_TITLES",
        "training_articles": sorted(train["title"].unique().tolist()),
        "n_train_questions": int(len(train)),
        "n_train_unanswerable": int(train["is_impossible"].sum()),
        **{key: training[key] for key in ("n_train_windows", "n_answer_windows", "steps", "max_steps", "epochs",
                                          "lr", "batch_size", "max_length", "doc_stride", "warmup_ratio",
                                          "weight_decay", "dropout", "seed", "bf16", "device")},
        "null_threshold": threshold,
        "null_threshold_tuning": curve.round(3).to_dict(orient="list"),
        "training_seconds": round(training_seconds, 1),
        "eval_articles": sorted(heldout["title"].unique().tolist()),
        "n_eval_questions": int(scores.loc["all", "n"]),
        "eval_max_length": EVAL_SETTINGS["max_length"],
        "eval_doc_stride": EVAL_SETTINGS["doc_stride"],
        "exact_match": round(float(scores.loc["all", "exact_match"]), 2),
        "f1": round(float(scores.loc["all", "f1"]), 2),
        "scores": {group: {"n": int(scores.loc[group, "n"]),
                           "exact_match": round(float(scores.loc[group, "exact_match"]), 2),
                           "f1": round(float(scores.loc[group, "f1"]), 2)}
                   for group in ("all", "has_answer", "no_answer") if group in scores.index},
        "seconds": round(time.perf_counter() - started, 1),
        **build_environment(),
        "training_log": training["training_log"],
    }
    save_checkpoint(replace(handle, card=card), directory)
    parts = ", ".join(f"{group} F1 {values['f1']:.1f}" for group, values in card["scores"].items())
    say(f"held-out EM {card['exact_match']:.1f}, F1 {card['f1']:.1f} ({parts}); built in "
        f"{card['seconds'] / 60:.1f} min", progress)
    return card


def ensure_squad2_model(*, rebuild: bool = False, progress: bool = True) -> Path:
    """The SQuAD 2.0 default's directory, built first when absent (after the SQuAD 1.1 default it starts
    from; about 30 minutes more on 2 AMD Zen 4 cores). Concurrent callers wait for one build."""
    target = squad2_model_dir()

    def build(building: Path) -> None:
        say(f"building the SQuAD 2.0 default model into {target} (once per machine)", progress)
        build_squad2_into(building, progress=progress)

    def waiting() -> None:
        say("another process is building the SQuAD 2.0 default model; waiting for it", progress)

    return build_once(SQUAD2_MODEL_DIR_NAME, build, rebuild=rebuild, what="The SQuAD 2.0 default model",
                      on_wait=waiting)


