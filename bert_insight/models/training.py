"""The training loop every fine-tuning verb shares (QA and sentence classification).

AdamW (no weight decay on biases and LayerNorm weights), linear warmup then linear decay
(``transformers.get_linear_schedule_with_warmup``), gradient clipping at 1.0, bfloat16 autocast where
asked, batches of inputs of similar length drawn in a seeded order, an optional dropout override, an
optional time budget, and one log record per optimiser step. The verbs only say how a batch of
their inputs becomes a loss.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..errors import BertInsightInputError

TRAINING_LOG_COLUMNS = ("step", "epoch", "loss", "lr", "seconds")
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias")


def check_positive(name: str, value, kind=(int, float)) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        raise BertInsightInputError(f"{name}={value!r}; pass a positive number.")


def check_run_length(max_steps: int | None, epochs: float | None, *, default_epochs: float) -> float | None:
    """Refuse both or a non-positive value; return the epochs to run (``default_epochs`` when neither)."""
    if max_steps is not None and epochs is not None:
        raise BertInsightInputError("Pass max_steps or epochs, not both: max_steps fixes the run's length "
                                    "in optimiser steps, epochs in passes over the data.")
    if max_steps is not None:
        check_positive("max_steps", max_steps, int)
        return None
    epochs = default_epochs if epochs is None else epochs
    check_positive("epochs", epochs)
    return epochs


def check_optimiser_settings(*, lr, batch_size, max_seconds, dropout, warmup_ratio) -> None:
    check_positive("lr", lr)
    check_positive("batch_size", batch_size, int)
    if max_seconds is not None:
        check_positive("max_seconds", max_seconds)
    if dropout is not None and not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise BertInsightInputError(f"dropout={dropout!r}; pass a rate in [0, 1) or None for the model's own.")
    if not 0 <= warmup_ratio < 1:
        raise BertInsightInputError(f"warmup_ratio={warmup_ratio!r}; pass a fraction in [0, 1) such as 0.1.")


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
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


def affordable_steps(log: list[dict], max_seconds: float, recent: int = 20) -> int:
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


@dataclass
class TrainingRun:
    """What :func:`train` did: steps run and planned, time, whether the budget stopped it, the log."""

    steps: int
    planned_steps: int
    full_steps: int
    steps_per_epoch: int
    seconds: float
    stopped_by_time_budget: bool
    log: list[dict] = field(default_factory=list)

    @property
    def epochs(self) -> float:
        return round(self.steps / self.steps_per_epoch, 4)

    def card_fields(self, *, max_steps, device, **settings) -> dict:
        """The training card's shared fields: the run's length and time, ``settings`` (lr, batch_size,
        ...) in the caller's order, device, library versions and the training log."""
        return {"steps": self.steps, "max_steps": max_steps, "planned_steps": self.planned_steps,
                "epochs": self.epochs, **settings, "seconds": round(self.seconds, 1),
                "stopped_by_time_budget": self.stopped_by_time_budget, "device": str(device),
                **library_versions(), "training_log": self.log}


def train(
    model: nn.Module,
    lengths: list[int],
    batch_loss: Callable[[list[int]], torch.Tensor],
    *,
    max_steps: int | None,
    epochs: float | None,
    lr: float,
    batch_size: int,
    seed: int,
    warmup_ratio: float,
    weight_decay: float,
    dropout: float | None,
    use_bf16: bool,
    device: torch.device,
    progress: bool,
    max_seconds: float | None,
) -> TrainingRun:
    """Train ``model`` in place on inputs 0..len(lengths)-1; ``batch_loss(indices)`` returns the loss
    of a batch (run under autocast here). The model is left in eval mode with its own dropout rates."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    rng = random.Random(seed)
    torch.manual_seed(seed)
    steps_per_epoch = math.ceil(len(lengths) / batch_size)
    full_steps = planned_steps = max_steps if max_steps is not None else max(1, math.ceil(epochs * steps_per_epoch))
    parameters = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in NO_DECAY)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in NO_DECAY)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(parameters, lr=lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * planned_steps), planned_steps)

    model.to(device).train()
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
            for batch in length_grouped_batches(lengths, batch_size, rng):
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = batch_loss(batch)
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
                    affordable = min(full_steps, affordable_steps(log, max_seconds))
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
    return TrainingRun(step, planned_steps, full_steps, steps_per_epoch, time.perf_counter() - started,
                       stopped_by_time or step < full_steps, log)


def library_versions() -> dict:
    """torch and transformers versions and the UTC date, for a training card."""
    import datetime as _dt

    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
