"""Fine-tune an extractive QA model on SQuAD-style examples (a plain torch loop).

Featurisation is the standard SQuAD recipe (Hugging Face ``run_qa.py``): each example is cut into
overlapping windows by :func:`bert_insight.windows.encode_windows`; a window that holds the whole first
gold answer is labelled with the tokens covering the answer's first and last characters, any other
window (and every window of an unanswerable question) points start and end at the CLS token.

Training: AdamW (no weight decay on biases and LayerNorm weights), linear warmup then linear decay
(``transformers.get_linear_schedule_with_warmup``), bfloat16 autocast where the hardware has fast
bf16 matmuls, batches of windows of similar length (less padding), a fixed seed.

The training log (one row per optimiser step) is kept in ``handle.card["training_log"]`` so it is
saved in ``model_card.json`` next to the weights; :func:`training_log` turns it into a DataFrame.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import os
import random
import time
from typing import Mapping, NamedTuple

import pandas as pd
import torch

from ..data.examples import first_answer_span, validate_examples
from ..device import bf16_is_fast
from ..errors import BertInsightInputError
from ..windows import QAWindow, encode_validated_windows
from .checkpoint import save_checkpoint
from .handle import QAModelHandle, from_model

TRAINING_LOG_COLUMNS = ("step", "epoch", "loss", "lr", "seconds")


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


def _length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches whose members have similar lengths (little padding), still random per epoch."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    group = batch_size * 50
    batches = []
    for begin in range(0, len(order), group):
        chunk = sorted(order[begin: begin + group], key=lambda i: lengths[i])
        batches.extend(chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


# ---- training ------------------------------------------------------------------------------------
def _check_positive(name: str, value, kind=(int, float)) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise BertInsightInputError(f"{name}={value!r}; pass a positive number.")


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
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if not isinstance(handle, QAModelHandle):
        raise BertInsightInputError(
            f"finetune_qa takes a model handle (got {type(handle).__name__}); load one first, e.g. "
            "finetune_qa(bert_insight.load_qa_model(name, allow_new_qa_head=True), examples)."
        )
    if max_steps is not None and epochs is not None:
        raise BertInsightInputError("Pass max_steps or epochs, not both: max_steps fixes the run's length "
                                    "in optimiser steps, epochs in passes over the data.")
    if max_steps is not None:
        _check_positive("max_steps", max_steps, int)
    epochs = 2.0 if epochs is None and max_steps is None else epochs
    if epochs is not None:
        _check_positive("epochs", epochs)
    _check_positive("lr", lr)
    _check_positive("batch_size", batch_size, int)
    if max_seconds is not None:
        _check_positive("max_seconds", max_seconds)
    if dropout is not None and not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise BertInsightInputError(f"dropout={dropout!r}; pass a rate in [0, 1) or None for the model's own.")
    if not 0 <= warmup_ratio < 1:
        raise BertInsightInputError(f"warmup_ratio={warmup_ratio!r}; pass a fraction in [0, 1) such as 0.1.")
    base = handle
    model = copy.deepcopy(base.model)
    tokenizer, device_ = base.tokenizer, base.device
    use_bf16 = bf16_is_fast(device_) if bf16 is None else bool(bf16)

    labelled = training_windows(tokenizer, train_examples, max_length=max_length, doc_stride=doc_stride)
    lengths = [len(item.window) for item in labelled]

    rng = random.Random(seed)
    torch.manual_seed(seed)
    steps_per_epoch = math.ceil(len(labelled) / batch_size)
    full_steps = planned_steps = max_steps if max_steps is not None else max(1, math.ceil(epochs * steps_per_epoch))
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")
    parameters = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * planned_steps), planned_steps)

    model.to(device_).train()
    dropouts = [module for module in model.modules() if isinstance(module, torch.nn.Dropout)]
    own_rates = [module.p for module in dropouts]
    if dropout is not None:
        for module in dropouts:
            module.p = float(dropout)
    log: list[dict] = []
    started = time.perf_counter()
    step, stopped_by_time = 0, False
    bar = tqdm(total=planned_steps, desc="fine-tune", unit="step", disable=not progress)
    try:
        while step < planned_steps:
            for batch in _length_grouped_batches(lengths, batch_size, rng):
                items = [labelled[i] for i in batch]
                inputs = base.batch_inputs([item.window for item in items])
                inputs["start_positions"] = torch.tensor([item.start_position for item in items], device=device_)
                inputs["end_positions"] = torch.tensor([item.end_position for item in items], device=device_)
                with torch.autocast(device_type=device_.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = model(**inputs).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                elapsed = time.perf_counter() - started
                log.append({"step": step, "epoch": step / steps_per_epoch, "loss": float(loss.detach()),
                            "lr": scheduler.get_last_lr()[0], "seconds": round(elapsed, 3)})
                bar.update(1)
                bar.set_postfix(loss=f"{log[-1]['loss']:.3f}")
                if max_seconds is not None and step < planned_steps:
                    if elapsed >= max_seconds:
                        stopped_by_time = True
                        break
                    affordable = min(full_steps, _affordable_steps(log, max_seconds))
                    if abs(affordable - planned_steps) > max(1, planned_steps // 100):
                        planned_steps = affordable
                        bar.total = planned_steps
                        # Continue the same warmup/decay shape over the re-planned run.
                        scheduler = get_linear_schedule_with_warmup(
                            optimizer, int(warmup_ratio * planned_steps), planned_steps, last_epoch=step - 1)
                if step >= planned_steps:
                    break
            if stopped_by_time:
                break
    finally:
        bar.close()
        for module, rate in zip(dropouts, own_rates):
            module.p = rate
        model.eval()

    seconds = time.perf_counter() - started
    import transformers

    card = {
        "base_model": base.name,
        "n_train_examples": int(len(train_examples)),
        "n_train_windows": len(labelled),
        "n_answer_windows": sum(item.has_answer for item in labelled),
        "steps": step,
        "max_steps": max_steps,
        "planned_steps": planned_steps,
        "epochs": round(step / steps_per_epoch, 4),
        "lr": lr,
        "batch_size": batch_size,
        "max_length": max_length,
        "doc_stride": doc_stride,
        "bf16": use_bf16,
        "seed": seed,
        "warmup_ratio": warmup_ratio,
        "weight_decay": weight_decay,
        "dropout": dropout,
        "seconds": round(seconds, 1),
        "stopped_by_time_budget": stopped_by_time or step < full_steps,
        "device": str(device_),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "training_log": log,
    }
    tuned = from_model(model, tokenizer, name=f"{base.name} (fine-tuned for QA)", device=device_, card=card)
    if output_dir is not None:
        save_checkpoint(tuned, output_dir)
    return tuned


def _affordable_steps(log: list[dict], max_seconds: float, recent: int = 20) -> int:
    """Total steps that fit in the budget at the speed of the last ``recent`` steps.

    Called after every step, so the plan follows the machine's speed as it changes (a shared machine
    gets busier or quieter) in either direction.
    """
    step, elapsed = len(log), log[-1]["seconds"]
    if step < 5:  # the first steps include one-off warm-up costs
        return 1 << 62
    first = log[-recent - 1]["seconds"] if step > recent else 0.0
    per_step = (elapsed - first) / min(step, recent)
    if per_step <= 0:
        return 1 << 62
    return step + max(1, int((max_seconds - elapsed) / per_step))


def training_log(handle_or_card: QAModelHandle | dict) -> pd.DataFrame:
    """The per-step training log of a fine-tuned model.

    Returns columns step (1-based optimiser step), epoch (fraction of passes over the training windows),
    loss (mean start/end cross-entropy of that batch), lr (learning rate after the step) and seconds
    (since training began).
    """
    card = handle_or_card.card if isinstance(handle_or_card, QAModelHandle) else handle_or_card
    if not isinstance(card, Mapping) or "training_log" not in card:
        raise BertInsightInputError(
            "This model card has no training_log; only models made by bert_insight.finetune_qa carry one."
        )
    return pd.DataFrame(card["training_log"], columns=list(TRAINING_LOG_COLUMNS))
