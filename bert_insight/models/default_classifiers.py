"""The offline default sentence classifiers: all-MiniLM-L6-v2 fine-tuned on one GLUE task each
(MRPC, STS-B, SST-2, RTE, QNLI), the models Kovaleva et al. 2019's analyses run on.

The recipe follows the paper (Devlin et al.'s batch 32 and 3 epochs), at ``lr`` 5e-5 and at most 128
tokens, seeded, with bfloat16 autocast where the hardware multiplies bf16 natively (the card's
``recipe`` and ``bf16`` say which arithmetic built it; ``precision="fp32"`` forces fp32 on every
machine). SST-2's 67k training sentences are subsampled to :data:`SST2_TRAIN_EXAMPLES` so that all
five models build in under half an hour on 2 CPU cores (the card says so).

Data: QNLI's complete GLUE dev set is bundled (CC BY-SA 4.0); only it, so its default is always
built from it, split 80/20 (seed 0, stratified) into training and evaluation examples. The other
tasks' data have research-use terms and are not bundled: pass ``glue_dir`` (a GLUE folder holding
MRPC/, STS-B/, ...; ``bert-insight model build --task mrpc --glue-dir PATH``), or let ``datasets``
download them where there is internet. Each model is evaluated on its task's dev split (RTE: a
labelled test split where the folder has one, as the shared re-split does).

Models live beside the QA default (``<cache>/models/minilm-l6-glue-<task>-v1``), are built under a
lock into a staging directory and renamed into place, exactly like the QA default.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..classification import evaluate_classifier
from ..data.glue import glue_task, load_glue, split_examples
from ..device import bf16_is_fast, resolve_device
from ..errors import BertInsightInputError
from .checkpoint import load_classifier_checkpoint, save_checkpoint
from .default import BASE_MODEL_NAME, cpu_name, say
from .finetune import finetune_classifier
from .offline import minilm_base_dir
from .store import build_once, model_dir

DEFAULT_TASKS = ("mrpc", "stsb", "sst2", "rte", "qnli")
CLASSIFIER_RECIPE_VERSION = "v1"
#: Fine-tuning settings of every default classifier.
CLASSIFIER_SETTINGS = dict(epochs=3.0, lr=5e-5, batch_size=32, max_length=128, seed=0, warmup_ratio=0.1,
                           weight_decay=0.01, dropout=None)
#: SST-2 training sentences kept (a seeded sample of GLUE's 67,349), so the five build in < 30 min.
SST2_TRAIN_EXAMPLES = 12_000
PRECISIONS = ("auto", "bf16", "fp32")


def classifier_dir_name(task: str) -> str:
    return f"minilm-l6-glue-{glue_task(task).name}-{CLASSIFIER_RECIPE_VERSION}"


def default_classifier_dir(task: str) -> Path:
    """Where the default classifier for ``task`` lives: ``<cache root>/models/minilm-l6-glue-<task>-v1``."""
    return model_dir(classifier_dir_name(task))


def default_display_name(task: str) -> str:
    return f"bert-insight/minilm-l6-glue-{glue_task(task).name} (offline default)"


def check_default_task(task: str) -> str:
    name = glue_task(task).name
    if name not in DEFAULT_TASKS:
        raise BertInsightInputError(
            f"There is no offline default classifier for {name!r}; the defaults are {list(DEFAULT_TASKS)}. "
            f"Fine-tune your own: finetune_classifier(load_classifier(name, task={name!r}, "
            "allow_new_classifier_head=True), load_glue(...)).")
    return name


def use_bf16_for(precision: str) -> bool:
    if precision not in PRECISIONS:
        raise BertInsightInputError(f"precision={precision!r}; use one of {PRECISIONS} ('auto': bf16 where the "
                                    "hardware multiplies bf16 natively, else fp32).")
    return bf16_is_fast(resolve_device("auto")) if precision == "auto" else precision == "bf16"


def recipe_name(precision_bf16: bool) -> str:
    return f"glue-3-epochs-{'bf16' if precision_bf16 else 'fp32'}-{CLASSIFIER_RECIPE_VERSION}"


def recipe_data(task: str, glue_dir: str | os.PathLike | None = None):
    """The default recipe's ``(train, eval, description)`` examples frames for ``task``."""
    task = check_default_task(task)
    if task == "qnli":
        # Always the bundled dev set (the only QNLI data that may ship), so the model is the same everywhere.
        train, evaluation = split_examples(load_glue("qnli", "dev"), test_fraction=0.2, seed=0)
        return train, evaluation, ("bundled GLUE QNLI dev set (5,463 pairs) split 80/20, stratified, seed 0: "
                                   f"{len(train)} to train, {len(evaluation)} to evaluate (QNLI train is not bundled)")
    train = load_glue(task, "train", path=glue_dir)
    note = ""
    if task == "sst2" and len(train) > SST2_TRAIN_EXAMPLES:
        kept = train.sample(n=SST2_TRAIN_EXAMPLES, random_state=0).sort_index()
        kept.attrs = dict(train.attrs, subsample=f"{SST2_TRAIN_EXAMPLES} of {len(train)}, random_state=0")
        note = f" (a seeded sample of {SST2_TRAIN_EXAMPLES:,} of its {len(train):,} sentences, to fit a CPU budget)"
        train = kept
    eval_split = "dev"
    if task == "rte" and glue_dir is not None:
        try:  # the shared re-split has a labelled test split much larger than its dev split
            evaluation = load_glue(task, "test", path=glue_dir)
            eval_split = "test"
        except BertInsightInputError:
            evaluation = load_glue(task, "dev", path=glue_dir)
    else:
        evaluation = load_glue(task, "dev", path=glue_dir)
    source = glue_dir if glue_dir is not None else "the `datasets` hub copy"
    return train, evaluation, (f"GLUE {task} train split{note} from {source}; evaluated on its {eval_split} split "
                               f"({len(evaluation)} examples)")


def load_glue_heldout(task: str, glue_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The examples the offline default classifier of ``task`` is evaluated on and never trained on
    (GLUE dev; QNLI: the bundled dev set's held-out 20 %; RTE with ``glue_dir``: the re-split test).

    Returns the sentence-task frame of :func:`bert_insight.load_glue`: example_id, text_a, text_b
    (None for single-sentence tasks), label.
    """
    return recipe_data(task, glue_dir)[1]


def base_classifier(task: str, *, device="auto"):
    """all-MiniLM-L6-v2 with a new, untrained head for ``task`` (the head's seed is torch's global one)."""
    return load_classifier_checkpoint(str(minilm_base_dir()), task=task, device=device,
                                      allow_new_classifier_head=True, display_name=BASE_MODEL_NAME)


def build_classifier_into(directory: Path, task: str, *, glue_dir=None, precision: str = "auto",
                          progress: bool = True) -> dict:
    """Fine-tune, evaluate and save the default classifier for ``task`` into ``directory``; returns its card."""
    import torch

    task = check_default_task(task)
    use_bf16 = use_bf16_for(precision)
    started = time.perf_counter()
    try:
        train, evaluation, description = recipe_data(task, glue_dir)
    except BertInsightInputError as error:
        raise BertInsightInputError(
            f"{error} To build the default {task} classifier offline, point it at a GLUE folder: "
            f"`bert-insight model build --task {task} --glue-dir PATH` (or glue_dir=PATH).") from error
    torch.manual_seed(CLASSIFIER_SETTINGS["seed"])  # the new head's initial weights
    base = base_classifier(task)
    say(f"fine-tuning {task}: {description}", progress)
    tuned = finetune_classifier(base, train, bf16=use_bf16, progress=progress, **CLASSIFIER_SETTINGS)
    training_seconds = time.perf_counter() - started
    scores, _ = evaluate_classifier(tuned, evaluation, max_length=CLASSIFIER_SETTINGS["max_length"],
                                    progress=progress)
    training = tuned.card
    card = {
        "name": classifier_dir_name(task),
        "recipe": recipe_name(use_bf16),
        "task": task,
        "label_names": training["label_names"],
        "base_model": BASE_MODEL_NAME,
        "training_data": description,
        "n_train_examples": int(len(train)),
        "eval_split": evaluation.attrs.get("split"),
        "n_eval_examples": int(len(evaluation)),
        "scores": {row.metric: round(float(row.value), 2) for row in scores.itertuples()},
        **{key: training[key] for key in ("steps", "epochs", "lr", "batch_size", "max_length", "warmup_ratio",
                                          "weight_decay", "dropout", "seed", "bf16", "device")},
        "training_seconds": round(training_seconds, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "cpu": cpu_name(),
        "cpu_threads": torch.get_num_threads(),
        **{key: training[key] for key in ("torch", "transformers", "date")},
        "training_log": training["training_log"],
    }
    save_checkpoint(replace(tuned, card=card), directory)
    summary = ", ".join(f"{metric} {value:.1f}" for metric, value in card["scores"].items())
    say(f"{task}: {summary} on {card['n_eval_examples']} {card['eval_split']} examples; "
         f"built in {card['seconds'] / 60:.1f} min", progress)
    return card


def ensure_default_classifier(task: str, *, glue_dir: str | os.PathLike | None = None, precision: str = "auto",
                              rebuild: bool = False, progress: bool = True) -> Path:
    """Return the default classifier's directory for ``task``, building it first when absent (or
    ``rebuild``). A damaged directory is reported, not silently rebuilt; concurrent callers wait for one build."""
    task = check_default_task(task)
    name = classifier_dir_name(task)
    target = default_classifier_dir(task)
    what = f"The default {task} classifier"

    def build(building: Path) -> None:
        say(f"building the default {task} classifier into {target} (once per machine)", progress)
        build_classifier_into(building, task, glue_dir=glue_dir, precision=precision, progress=progress)

    def waiting() -> None:
        say(f"another process is building the default {task} classifier; waiting for it", progress)

    return build_once(name, build, rebuild=rebuild, what=what, on_wait=waiting)


def load_default_classifier(task: str, *, device="auto", attention: str = "sdpa", dtype=None,
                            glue_dir: str | os.PathLike | None = None):
    """The default classifier for ``task`` as a handle, built first if absent."""
    path = ensure_default_classifier(task, glue_dir=glue_dir)
    return load_classifier_checkpoint(str(path), task=task, device=device, attention=attention, dtype=dtype,
                                      display_name=default_display_name(task))
