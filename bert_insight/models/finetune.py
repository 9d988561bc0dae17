"""Fine-tune an extractive QA model on SQuAD-style examples, or a sentence classifier on GLUE-style ones.

Featurisation is the standard SQuAD recipe (Hugging Face ``run_qa.py``): each example is cut into
overlapping windows by :func:`bert_insight.windows.encode_windows`; a window that holds the whole first
gold answer is labelled with the tokens covering the answer's first and last characters, any other
window (and every window of an unanswerable question) points start and end at the CLS token.

Training is the shared loop of :mod:`bert_insight.models.training`: AdamW, linear warmup then decay,
bfloat16 autocast where the hardware has fast bf16 matmuls, batches of windows of similar length
(less padding), a fixed seed.

The training log (one row per optimiser step) is kept in ``handle.card["training_log"]`` so it is
saved in ``model_card.json`` next to the weights; :func:`training_log` turns it into a DataFrame.
"""

from __future__ import annotations

import copy
import os
from typing import Mapping, NamedTuple

import pandas as pd
import torch

from ..data.examples import first_answer_span, validate_examples
from ..device import bf16_is_fast
from ..errors import BertInsightInputError
from ..data.glue import glue_task
from ..windows import DEFAULT_SENTENCE_MAX_LENGTH, QAWindow, encode_sentences, encode_validated_windows
from .checkpoint import save_checkpoint
from .handle import ClassifierHandle, ModelHandle, QAModelHandle, from_model
from .training import TRAINING_LOG_COLUMNS, check_optimiser_settings, check_run_length, train


class LabelledWindow(NamedTuple):
    """One training input: a :class:`bert_insight.qa.QAWindow` and its answer token positions.

    ``start_position``/``end_position`` index ``window.input_ids``; both are the CLS position when
    ``has_answer`` is False (the answer is not wholly inside this window, or there is none).
    """

    window: QAWindow
    start_position: int
    end_position: int
    has_answer: bool


# ---- featurisation -------------------------------------------------------------------------------
def training_windows(tokenizer, examples: pd.DataFrame, *, max_length: int = 384,
                     doc_stride: int = 128) -> list[LabelledWindow]:
    """Windows of every example (as :func:`bert_insight.windows.encode_windows`) with answer token labels.

    The label is the first gold answer (the SQuAD training convention). A window is labelled with the
    answer only when the answer's characters lie wholly inside the window's context tokens.
    """
    examples = validate_examples(examples, allow_empty=False)
    answer_spans = _answer_spans(examples)
    windows = encode_validated_windows(tokenizer, examples, max_length=max_length, doc_stride=doc_stride)
    cls_id = tokenizer.cls_token_id
    labelled = []
    for window in windows:
        cls_position = window.input_ids.index(cls_id) if cls_id in window.input_ids else 0
        span = answer_spans[window.example_id]
        start_position = end_position = cls_position
        if span is not None:
            positions = _span_positions(window, *span)
            if positions is not None:
                start_position, end_position = positions
        labelled.append(LabelledWindow(window, start_position, end_position, start_position != cls_position))
    return labelled


def _answer_spans(examples: pd.DataFrame) -> dict[str, tuple[int, int] | None]:
    if "answers" not in examples.columns:
        raise BertInsightInputError(
            "train_examples must be an examples DataFrame with an 'answers' column (list of "
            "{'text', 'answer_start'}), e.g. bert_insight.load_squad(split='train')."
        )
    # None: unanswerable (SQuAD 2.0), so every window points at CLS. validate_examples checked the offsets.
    return {str(example["example_id"]): first_answer_span(example) for _, example in examples.iterrows()}


def _span_positions(window, char_start: int, char_end: int) -> tuple[int, int] | None:
    """First and last context tokens covering characters [char_start, char_end), if all inside."""
    context = window.context_positions
    if not context:
        return None
    first, last = context[0], context[-1]
    if window.offsets[first][0] > char_start or window.offsets[last][1] < char_end:
        return None
    start_position = next(i for i in context if window.offsets[i][1] > char_start)
    end_position = next(i for i in reversed(context) if window.offsets[i][0] < char_end)
    return start_position, end_position


# ---- training ------------------------------------------------------------------------------------
def finetune_qa(
    handle: QAModelHandle,
    train_examples: pd.DataFrame,
    *,
    max_steps: int | None = None,
    epochs: float | None = None,
    lr: float = 1e-4,
    batch_size: int = 32,
    max_length: int = 384,
    doc_stride: int = 128,
    bf16: bool | None = None,
    seed: int = 0,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    dropout: float | None = None,
    progress: bool = True,
    max_seconds: float | None = None,
    output_dir: str | os.PathLike | None = None,
) -> QAModelHandle:
    """Fine-tune the QA model of ``handle`` on ``train_examples`` and return a new handle (the input
    handle's model is copied, not changed). Training runs on the handle's device.

    To start from a base checkpoint without a QA head, load it first:
    ``finetune_qa(load_qa_model(name, allow_new_qa_head=True), examples)``.

    Length of the run: ``max_steps`` optimiser steps (the same on every machine: batches are drawn in a
    seeded order), or ``epochs`` passes over the training windows (may be fractional); give one, not
    both (neither: 2 epochs). ``batch_size`` is the number of windows per optimiser step.
    ``max_seconds`` is an opt-in time budget for slow machines: the number of steps is re-planned after
    every step from the recent speed (never beyond the planned run), so the learning rate still decays
    to 0 within the budget -- and the result then depends on the machine's speed.

    ``bf16=None`` picks bfloat16 autocast where it is fast (:func:`bf16_is_fast`); pass False for the
    same arithmetic on every machine. ``dropout`` overrides every dropout rate during training (None
    keeps the model's own); 0 is about a quarter faster on CPU, where attention with dropout cannot use
    the fused SDPA kernel. The model's rates are restored afterwards. ``output_dir`` saves weights,
    tokenizer and ``model_card.json`` there.

    The returned handle's ``card`` records the settings (base_model, n_train_examples,
    n_train_windows, steps, planned_steps, epochs, lr, batch_size, max_length, doc_stride, bf16, seed,
    warmup_ratio, weight_decay, dropout, seconds, stopped_by_time_budget, torch, transformers, date) and
    ``training_log``: one record per step with step, epoch, loss, lr, seconds (see
    :func:`training_log`).
    """
    if not isinstance(handle, QAModelHandle):
        raise BertInsightInputError(
            f"finetune_qa takes a QA model handle (got {type(handle).__name__}); load one first, e.g. "
            "finetune_qa(bert_insight.load_qa_model(name, allow_new_qa_head=True), examples)."
        )
    epochs = check_run_length(max_steps, epochs, default_epochs=2.0)
    check_optimiser_settings(lr=lr, batch_size=batch_size, max_seconds=max_seconds, dropout=dropout,
                             warmup_ratio=warmup_ratio)
    base = handle
    model = copy.deepcopy(base.model)
    tokenizer, device_ = base.tokenizer, base.device
    use_bf16 = bf16_is_fast(device_) if bf16 is None else bool(bf16)

    labelled = training_windows(tokenizer, train_examples, max_length=max_length, doc_stride=doc_stride)

    def batch_loss(batch: list[int]) -> torch.Tensor:
        items = [labelled[i] for i in batch]
        inputs = base.batch_inputs([item.window for item in items])
        inputs["start_positions"] = torch.tensor([item.start_position for item in items], device=device_)
        inputs["end_positions"] = torch.tensor([item.end_position for item in items], device=device_)
        return model(**inputs).loss

    run = train(model, [len(item.window) for item in labelled], batch_loss, max_steps=max_steps, epochs=epochs,
                lr=lr, batch_size=batch_size, seed=seed, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                dropout=dropout, use_bf16=use_bf16, device=device_, progress=progress, max_seconds=max_seconds)
    card = {
        "base_model": base.name,
        "n_train_examples": int(len(train_examples)),
        "n_train_windows": len(labelled),
        "n_answer_windows": sum(item.has_answer for item in labelled),
        **run.card_fields(max_steps=max_steps, device=device_, lr=lr, batch_size=batch_size, max_length=max_length,
                          doc_stride=doc_stride, bf16=use_bf16, seed=seed, warmup_ratio=warmup_ratio,
                          weight_decay=weight_decay, dropout=dropout),
    }
    tuned = from_model(model, tokenizer, name=f"{base.name} (fine-tuned for QA)", device=device_, card=card)
    if output_dir is not None:
        save_checkpoint(tuned, output_dir)
    return tuned


def training_log(handle_or_card: ModelHandle | dict) -> pd.DataFrame:
    """The per-step training log of a fine-tuned model.

    Returns columns step (1-based optimiser step), epoch (fraction of passes over the training windows),
    loss (that batch's training loss: mean start/end cross-entropy for QA, cross-entropy or MSE for
    classifiers), lr (learning rate after the step) and seconds
    (since training began).
    """
    card = handle_or_card.card if isinstance(handle_or_card, ModelHandle) else handle_or_card
    if not isinstance(card, Mapping) or "training_log" not in card:
        raise BertInsightInputError(
            "This model card has no training_log; only models made by bert_insight.finetune_qa or finetune_classifier carry one."
        )
    return pd.DataFrame(card["training_log"], columns=list(TRAINING_LOG_COLUMNS))


# ---- sentence classification ----------------------------------------------------------------------
INIT_CHOICES = ("pretrained", "random")


def finetune_classifier(
    handle: ClassifierHandle,
    train_examples: pd.DataFrame,
    *,
    task: str | None = None,
    max_steps: int | None = None,
    epochs: float | None = None,
    lr: float = 5e-5,
    batch_size: int = 32,
    max_length: int = DEFAULT_SENTENCE_MAX_LENGTH,
    seed: int = 0,
    init: str = "pretrained",
    bf16: bool | None = None,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    dropout: float | None = None,
    progress: bool = True,
    max_seconds: float | None = None,
    output_dir: str | os.PathLike | None = None,
) -> ClassifierHandle:
    """Fine-tune the sentence classifier of ``handle`` on ``train_examples`` (a
    :func:`bert_insight.load_glue` frame) and return a new handle; the input handle is not changed.

    Classification heads train with cross-entropy, a regression head (STS-B) with mean squared error.
    ``task`` defaults to the handle's own (it must match the head). To start from a base checkpoint:
    ``finetune_classifier(load_classifier(name, task="mrpc", allow_new_classifier_head=True), train)``.

    ``init="random"`` first re-initialises every weight from the model's config (normal with the
    config's ``initializer_range``, seeded by ``seed``): Kovaleva et al.'s "initialized with normal
    distribution" models. Length: ``max_steps`` or ``epochs`` (neither: 3 epochs, the paper's recipe
    after Devlin et al.), at ``batch_size`` examples per step; ``bf16``, ``dropout``,
    ``max_seconds``, ``warmup_ratio``, ``weight_decay`` and ``output_dir`` mean what they mean for
    :func:`finetune_qa`.

    The returned handle's ``card`` records task, label_names, base_model, init, n_train_examples,
    steps, planned_steps, epochs, lr, batch_size, max_length, bf16, seed, warmup_ratio, weight_decay,
    dropout, seconds, stopped_by_time_budget, device, torch, transformers, date and ``training_log``
    (see :func:`training_log`).
    """
    from ..classification import require_classifier, validated_task_examples

    handle = require_classifier(handle, "finetune_classifier")
    if task is not None and glue_task_name(task) != glue_task_name(handle.task):
        raise BertInsightInputError(
            f"task={task!r} but the handle's head is for {handle.task!r}; load the model for that task: "
            f"load_classifier(name, task={task!r}, allow_new_classifier_head=True).")
    if init not in INIT_CHOICES:
        raise BertInsightInputError(f"init={init!r}; use 'pretrained' (start from the handle's weights) or "
                                    "'random' (re-initialise them from the config).")
    epochs = check_run_length(max_steps, epochs, default_epochs=3.0)
    check_optimiser_settings(lr=lr, batch_size=batch_size, max_seconds=max_seconds, dropout=dropout,
                             warmup_ratio=warmup_ratio)
    train_examples = validated_task_examples(handle, train_examples)
    handle.check_fits(max_length)
    windows = encode_sentences(handle.tokenizer, train_examples, max_length=max_length)
    device_ = handle.device
    model = copy.deepcopy(handle.model)
    if init == "random":
        torch.manual_seed(seed)
        model = type(model)(model.config).to(device_)
    model.config.problem_type = "regression" if handle.is_regression else "single_label_classification"
    labels = torch.tensor(train_examples["label"].to_numpy(),
                          dtype=torch.float32 if handle.is_regression else torch.long)
    use_bf16 = bf16_is_fast(device_) if bf16 is None else bool(bf16)

    def batch_loss(batch: list[int]) -> torch.Tensor:
        inputs = handle.batch_inputs([windows[i] for i in batch])
        return model(**inputs, labels=labels[batch].to(device_)).loss

    run = train(model, [len(window) for window in windows], batch_loss, max_steps=max_steps, epochs=epochs, lr=lr,
                batch_size=batch_size, seed=seed, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                dropout=dropout, use_bf16=use_bf16, device=device_, progress=progress, max_seconds=max_seconds)
    card = {
        "task": handle.task,
        "label_names": list(handle.label_names),
        "base_model": handle.name,
        "init": init,
        "n_train_examples": int(len(train_examples)),
        **run.card_fields(max_steps=max_steps, device=device_, lr=lr, batch_size=batch_size, max_length=max_length,
                          bf16=use_bf16, seed=seed, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                          dropout=dropout),
    }
    origin = "random init" if init == "random" else handle.name
    tuned = from_model(model, handle.tokenizer, name=f"{origin} (fine-tuned for {handle.task})", device=device_,
                       card=card, task=handle.task)
    if output_dir is not None:
        save_checkpoint(tuned, output_dir)
    return tuned


def glue_task_name(task: str) -> str:
    """The canonical GLUE name of ``task``, or ``task`` itself for a task outside GLUE."""
    try:
        return glue_task(task).name
    except BertInsightInputError:
        return task
