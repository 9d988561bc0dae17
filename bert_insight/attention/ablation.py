"""Disable attention heads and measure what the task loses (Kovaleva et al. 2019, section 4.6).

Two ways of disabling a head, both done by the library's own hooks (transformers 5 removed
``head_mask``), on the value projection and on the input of the attention output projection, so they
work with every attention implementation (eager, SDPA) and every supported family:

- ``"uniform"`` (the paper's): the head's attention becomes 1/L over the real (non-padding) tokens, so
  its output at every query is the mean of its value vectors;
- ``"zero"`` (Michel et al. 2019; what transformers 4's ``head_mask`` did): the head's output is 0.

``disabled_heads`` disables heads for any code run inside it; ``ablate_heads`` sweeps many ablations
over a data set and scores each with the task's metric and a paired bootstrap against the intact model.
The sweep computes the blocks below an ablation's lowest layer once per input and reuses them, and one
forward carries several ablations (one per row).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from ..classification import handle_task, validated_task_examples
from ..data.examples import validate_examples
from ..errors import BertInsightInputError
from ..frames import frame_attrs
from ..models.handle import ClassifierHandle, ModelHandle, QAModelHandle
from ..qa import decode_predictions, is_squad2
from ..resampling import metric_values, paired_bootstrap, resample_indices
from ..windows import (
    DEFAULT_DOC_STRIDE,
    DEFAULT_MAX_LENGTH,
    DEFAULT_SENTENCE_MAX_LENGTH,
    QAWindow,
    check_window_sizes,
    encode_sentences,
    encode_validated_windows,
)
from .stats import task_label

ABLATION_MODES = ("uniform", "zero")
ABLATION_COLUMNS = ("task", "ablation", "layer", "head", "n_heads", "mode", "metric", "value", "baseline", "delta",
                    "ci_low", "ci_high", "p_value", "n_examples")
QA_METRICS = ("exact_match", "f1")
#: How each metric is resampled (bert_insight.resampling): per-example means or corpus-level formulas.
METRIC_KIND = {"accuracy": "mean", "exact_match": "mean", "f1_qa": "mean", "f1": "f1", "pearson": "pearson",
               "spearman": "spearman"}

Ablation = tuple[tuple[int, int], ...]


# ---- which heads -----------------------------------------------------------------------------------
def _pair(item, num_layers: int, num_heads: int) -> tuple[int, int]:
    if (not isinstance(item, (tuple, list)) or len(item) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in item)):
        raise BertInsightInputError(
            f"{item!r} is not a (layer, head) pair; an ablation is a pair such as (3, 7) or a list of pairs "
            "disabled together such as [(3, 7), (5, 1)].")
    layer, head = int(item[0]), int(item[1])
    if not 0 <= layer < num_layers or not 0 <= head < num_heads:
        raise BertInsightInputError(
            f"Head ({layer}, {head}) is out of range: the model has layers 0..{num_layers - 1} and heads "
            f"0..{num_heads - 1} (numbered from 0).")
    return layer, head


def parse_ablations(ablations, num_layers: int, num_heads: int) -> list[Ablation]:
    """``"each"`` (every single head), ``"layers"`` (every whole layer), one ablation, or a list of
    ablations (each a (layer, head) pair or a list of pairs disabled together) -> sorted pair tuples."""
    if isinstance(ablations, str):
        if ablations == "each":
            return [((layer, head),) for layer in range(num_layers) for head in range(num_heads)]
        if ablations == "layers":
            return [tuple((layer, head) for head in range(num_heads)) for layer in range(num_layers)]
        raise BertInsightInputError(
            f"ablations={ablations!r}; pass 'each', 'layers', or a list of (layer, head) pairs / lists of pairs.")
    if isinstance(ablations, tuple) and len(ablations) == 2 and all(isinstance(v, (int, np.integer)) for v in ablations):
        ablations = [ablations]  # one pair
    items = list(ablations) if isinstance(ablations, (list, tuple)) else None
    if not items:
        raise BertInsightInputError("ablations is empty; pass 'each', 'layers', or at least one (layer, head) pair.")
    parsed = []
    for item in items:
        if isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(v, (int, np.integer)) for v in item):
            group = [item]
        elif isinstance(item, (tuple, list)):
            group = list(item)
            if not group:
                raise BertInsightInputError("One ablation is an empty list of heads; every ablation disables at "
                                            "least one (layer, head) pair.")
        else:
            group = [item]
        parsed.append(tuple(sorted({_pair(pair, num_layers, num_heads) for pair in group})))
    return parsed


def describe_ablation(ablation: Ablation, num_heads: int) -> tuple[str, int, int | str]:
    """(label, layer, head) for a frame row: "3-7", 3, 7 for one head; "3-all", 3, "all" for a whole
    layer; "2-1+3-7", the layer (or -1 when several) and "group" otherwise."""
    layers = sorted({layer for layer, _ in ablation})
    if len(ablation) == 1:
        layer, head = ablation[0]
        return f"{layer}-{head}", layer, head
    if len(layers) == 1 and len(ablation) == num_heads:
        return f"{layers[0]}-all", layers[0], "all"
    label = "+".join(f"{layer}-{head}" for layer, head in ablation)
    return label, layers[0] if len(layers) == 1 else -1, "group"


def _check_mode(mode) -> str:
    if mode not in ABLATION_MODES:
        raise BertInsightInputError(f"mode={mode!r}; use 'uniform' (the paper's 1/L attention) or 'zero' "
                                    "(the head's output removed, like transformers 4's head_mask).")
    return mode


# ---- the hooks -------------------------------------------------------------------------------------
class _HeadAblator:
    """Hooks that rewrite the per-head context vectors before a layer's attention output projection.

    ``row_masks[layer]`` is a (rows or 1, heads) bool tensor of the heads disabled in that layer. Which
    layer a hooked module is serving comes from ``layer`` when the caller runs blocks itself (the sweep),
    else from a per-module call counter reset at every model forward (ALBERT's blocks share modules).
    """

    def __init__(self, handle: ModelHandle, mode: str):
        self.adapter, self.model = handle.adapter, handle.model
        self.num_heads = handle.num_heads
        self.mode = mode
        self.row_masks: dict[int, torch.Tensor] = {}
        self.token_mask: torch.Tensor | None = None
        self.layer: int | None = None
        self._values: dict[int, torch.Tensor] = {}
        self._calls: dict[int, int] = {}
        self._hooks: list = []

    def _serving(self, module: torch.nn.Module, served: list[int]) -> int:
        if self.layer is not None:
            return self.layer
        count = self._calls.get(id(module), 0)
        self._calls[id(module)] = count + 1
        return served[count % len(served)]

    def install(self) -> None:
        outputs: dict[int, tuple[torch.nn.Module, list[int]]] = {}
        values: dict[int, tuple[torch.nn.Module, list[int]]] = {}
        for layer in range(self.adapter.num_layers(self.model)):
            for table, module in ((outputs, self.adapter.attention_output_projection(self.model, layer)),
                                  (values, self.adapter.value_projection(self.model, layer))):
                table.setdefault(id(module), (module, []))[1].append(layer)
        for module, served in values.values():
            self._hooks.append(module.register_forward_hook(self._value_hook(served)))
        for module, served in outputs.values():
            self._hooks.append(module.register_forward_pre_hook(self._output_hook(served)))
        self._hooks.append(self.model.register_forward_pre_hook(self._forward_starts, with_kwargs=True))

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._values.clear()

    def _forward_starts(self, module, args, kwargs):
        self._calls.clear()
        mask = kwargs.get("attention_mask")
        self.token_mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None
        return None

    def _value_hook(self, served: list[int]):
        def keep_values(module, inputs, output):
            # Counted separately from the output projection: the two modules are called once per layer each.
            key = ("values", id(module))
            if self.layer is not None:
                layer = self.layer
            else:
                count = self._calls.get(key, 0)  # type: ignore[call-overload]
                self._calls[key] = count + 1  # type: ignore[index]
                layer = served[count % len(served)]
            if self.mode == "uniform" and layer in self.row_masks:
                self._values[layer] = output
        return keep_values

    def _output_hook(self, served: list[int]):
        def rewrite(module, args):
            layer = self._serving(module, served)
            mask = self.row_masks.get(layer)
            if mask is None:
                return None
            context = args[0]
            rows, length, width = context.shape
            per_head = context.view(rows, length, self.num_heads, width // self.num_heads)
            if self.mode == "zero":
                replacement = torch.zeros_like(per_head[:, :1])
            else:
                value = self._values.pop(layer).view(per_head.shape)
                keep = (torch.ones(value.shape[:2], device=value.device) if self.token_mask is None
                        else self.token_mask[:, :length].to(value.device))
                keep = keep.to(value.dtype)[:, :, None, None]
                replacement = ((value * keep).sum(dim=1, keepdim=True) / keep.sum(dim=1, keepdim=True)).to(context.dtype)
            disabled = mask.to(context.device)[:, None, :, None]
            rewritten = torch.where(disabled, replacement, per_head).reshape(rows, length, width)
            return (rewritten, *args[1:])
        return rewrite


def _masks_for(ablations: Sequence[Ablation], num_heads: int, device) -> dict[int, torch.Tensor]:
    """layer -> (len(ablations), heads) bool: row i disables ablation i's heads."""
    masks: dict[int, torch.Tensor] = {}
    for row, ablation in enumerate(ablations):
        for layer, head in ablation:
            if layer not in masks:
                masks[layer] = torch.zeros((len(ablations), num_heads), dtype=torch.bool, device=device)
            masks[layer][row, head] = True
    return masks


@contextmanager
def disabled_heads(handle: ModelHandle, ablation, *, mode: str = "uniform") -> Iterator[None]:
    """Inside the block, every forward of ``handle.model`` runs with the heads of ``ablation`` (a
    (layer, head) pair, a list of pairs, or "layer-all" groups from :func:`parse_ablations`) disabled.

    Padding is read from the ``attention_mask`` keyword of the model call ("uniform" averages over real
    tokens only). The hooks are removed on exit, also after an exception.
    """
    mode = _check_mode(mode)
    groups = parse_ablations([ablation] if not isinstance(ablation, str) else ablation,
                             handle.num_layers, handle.num_heads)
    if len(groups) != 1:
        raise BertInsightInputError("disabled_heads takes one ablation (a pair or a list of pairs); use "
                                    "ablate_heads to sweep several.")
    ablator = _HeadAblator(handle, mode)
    ablator.row_masks = _masks_for(groups, handle.num_heads, handle.device)
    ablator.install()
    try:
        yield
    finally:
        ablator.remove()


# ---- the sweep -------------------------------------------------------------------------------------
def _window_tensors(handle: ModelHandle, window: QAWindow) -> tuple[torch.Tensor, torch.Tensor | None]:
    ids = torch.tensor([window.input_ids], device=handle.device)
    types = None
    if handle.adapter.uses_token_type_ids and window.token_type_ids is not None:
        types = torch.tensor([window.token_type_ids], device=handle.device)
    return ids, types


def _head_outputs(handle: ModelHandle, last_hidden: torch.Tensor, length: int):
    """Per row: (start, end) logits for QA handles, class logits for classifiers (float32, CPU)."""
    if isinstance(handle, QAModelHandle):
        start, end = handle.adapter.qa_logits(handle.model, last_hidden)
        start, end = start.float().cpu(), end.float().cpu()
        return [(start[row, :length].clone(), end[row, :length].clone()) for row in range(len(start))]
    logits = handle.adapter.classifier_logits(handle.model, last_hidden).float().cpu()
    return list(logits)


def sweep_outputs(handle: ModelHandle, windows: list[QAWindow], ablations: Sequence[Ablation], *, mode: str,
                  batch_size: int, progress: bool) -> tuple[list, list[list]]:
    """The intact model's head outputs per window, and per ablation its outputs per window.

    Per window: the blocks run once intact (keeping every hidden state); then, for each layer, the
    ablations whose lowest disabled layer it is start from that layer's intact hidden state, up to
    ``batch_size`` of them per forward, one per row.
    """
    from tqdm.auto import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise BertInsightInputError(f"batch_size={batch_size!r}; pass a positive whole number such as 16.")
    adapter, model = handle.adapter, handle.model
    num_layers = handle.num_layers
    by_start: dict[int, list[int]] = {}
    for index, ablation in enumerate(ablations):
        by_start.setdefault(min(layer for layer, _ in ablation), []).append(index)
    intact: list = []
    ablated: list[list] = [[None] * len(windows) for _ in ablations]
    ablator = _HeadAblator(handle, mode)
    ablator.install()
    try:
        with torch.inference_mode():
            for position, window in enumerate(tqdm(windows, desc="ablate", unit="input", disable=not progress)):
                ids, types = _window_tensors(handle, window)
                ablator.row_masks = {}
                hidden = [adapter.embed(model, ids, types)]
                for layer in range(num_layers):
                    ablator.layer = layer
                    hidden.append(adapter.run_block(model, layer, hidden[-1]))
                intact.append(_head_outputs(handle, hidden[-1], len(window))[0])
                for start_layer, members in sorted(by_start.items()):
                    for begin in range(0, len(members), batch_size):
                        chunk = members[begin: begin + batch_size]
                        ablator.row_masks = _masks_for([ablations[i] for i in chunk], handle.num_heads, handle.device)
                        # a copy, not a stride-0 view: fp32 matmuls on expanded inputs take a slow path
                        state = hidden[start_layer].expand(len(chunk), -1, -1).contiguous()
                        for layer in range(start_layer, num_layers):
                            ablator.layer = layer
                            state = adapter.run_block(model, layer, state)
                        for index, output in zip(chunk, _head_outputs(handle, state, len(window))):
                            ablated[index][position] = output
    finally:
        ablator.remove()
    return intact, ablated


def _task_inputs(handle: ModelHandle, examples: pd.DataFrame, max_length: int | None, doc_stride: int | None):
    if isinstance(handle, QAModelHandle):
        max_length = DEFAULT_MAX_LENGTH if max_length is None else max_length
        doc_stride = DEFAULT_DOC_STRIDE if doc_stride is None else doc_stride
        examples = validate_examples(examples, allow_empty=False)
        check_window_sizes(max_length, doc_stride)
        handle.check_fits(max_length)
        return examples, encode_validated_windows(handle.tokenizer, examples, max_length=max_length,
                                                  doc_stride=doc_stride), max_length, doc_stride
    if isinstance(handle, ClassifierHandle):
        max_length = DEFAULT_SENTENCE_MAX_LENGTH if max_length is None else max_length
        examples = validated_task_examples(handle, examples, require_labels=True)
        handle.check_fits(max_length)
        return examples, encode_sentences(handle.tokenizer, examples, max_length=max_length), max_length, None
    raise BertInsightInputError(
        f"ablate_heads scores a task, so it needs a QA handle (bert_insight.load_qa_model()) or a classifier "
        f"(bert_insight.load_classifier(task=...)); got {type(handle).__name__}.")


def _metrics(handle: ModelHandle, metric) -> tuple[str, ...]:
    available = QA_METRICS if isinstance(handle, QAModelHandle) else handle_task(handle).metrics
    if metric is None:
        return tuple(available)
    asked = (metric,) if isinstance(metric, str) else tuple(metric)
    unknown = [name for name in asked if name not in available]
    if unknown or not asked:
        raise BertInsightInputError(f"metric={metric!r}; {task_label(handle)} is scored with "
                                    f"{', '.join(available)} (or None for all of them).")
    return asked


class _Scorer:
    """Per-example arrays the bootstrap resamples, for the intact model and each ablation."""

    def __init__(self, handle: ModelHandle, examples: pd.DataFrame, windows: list[QAWindow]):
        self.handle, self.examples, self.windows = handle, examples, windows
        self.squad2 = isinstance(handle, QAModelHandle) and is_squad2(examples, None)
        if isinstance(handle, QAModelHandle):
            self.gold = None
            self.keep = None
        else:
            self.gold = pd.to_numeric(examples["label"]).to_numpy(dtype=float)

    def arrays(self, outputs: list) -> dict[str, np.ndarray]:
        """metric -> per-example array (scores for "mean" metrics, predictions otherwise)."""
        if isinstance(self.handle, QAModelHandle):
            rows = decode_predictions(self.examples, self.windows, outputs, max_answer_length=30,
                                      squad2=self.squad2, threshold=0.0)
            exact = np.array([row["exact_match"] for row in rows], dtype=float)
            overlap = np.array([row["f1"] for row in rows], dtype=float)
            if self.keep is None:
                self.keep = ~np.isnan(exact)  # SQuAD 1.1 examples without gold are left out, as evaluate does
            return {"exact_match": exact[self.keep], "f1": overlap[self.keep]}
        logits = torch.stack(outputs).numpy()
        if self.handle.is_regression:
            values = logits[:, 0].astype(float)
            return {"pearson": values, "spearman": values}
        predicted = logits.argmax(axis=1).astype(float)
        return {"accuracy": (predicted == self.gold).astype(float), "f1": predicted}

    def kind(self, metric: str) -> str:
        return "mean" if isinstance(self.handle, QAModelHandle) else METRIC_KIND[metric]


def ablate_heads(
    handle: ModelHandle,
    examples: pd.DataFrame,
    *,
    ablations="each",
    mode: str = "uniform",
    metric: str | Sequence[str] | None = None,
    max_length: int | None = None,
    doc_stride: int | None = None,
    batch_size: int = 16,
    n_resamples: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Disable heads, one ablation at a time, and score the task on ``examples`` against the intact model.

    ``ablations``: "each" (every single head), "layers" (every whole layer), or a list whose items are a
    (layer, head) pair or a list of pairs disabled together (numbers from 0). ``mode``: "uniform"
    (attention 1/L over the real tokens, the paper's) or "zero" (the head's output removed). QA handles
    are scored with SQuAD exact match and F1 on ``predict``'s windows (``max_length`` 384, ``doc_stride``
    128 by default); classifiers with their task's GLUE metrics (``max_length`` 128). ``metric`` picks
    some of them (None: all). Each row carries a paired bootstrap over examples (``n_resamples``,
    ``seed``; the same resamples for every ablation) of the difference to the intact model.

    Returns one row per ablation and metric with columns task, ablation (label: "3-7", "3-all" for a
    whole layer, "2-1+3-7" for a group), layer (-1 when a group spans layers), head (int, "all" for a
    whole layer, "group"), n_heads, mode, metric, value, baseline (the intact model; percent), delta
    (value - baseline), ci_low, ci_high (95% bootstrap interval of delta), p_value (two-sided, delta = 0),
    n_examples. ``attrs`` carry the model name, fingerprint and parameters.
    """
    mode = _check_mode(mode)
    metrics = _metrics(handle, metric)
    examples, windows, max_length, doc_stride = _task_inputs(handle, examples, max_length, doc_stride)
    groups = parse_ablations(ablations, handle.num_layers, handle.num_heads)
    intact, ablated = sweep_outputs(handle, windows, groups, mode=mode, batch_size=batch_size, progress=progress)
    scorer = _Scorer(handle, examples, windows)
    baseline = scorer.arrays(intact)
    n_scored = len(next(iter(baseline.values())))
    indices = resample_indices(n_scored, n_resamples=n_resamples, seed=seed)
    everything = np.arange(n_scored)[None, :]
    base_values = {name: float(metric_values(scorer.kind(name), baseline[name], scorer.gold, everything)[0])
                   for name in metrics}
    rows = []
    for group, outputs in zip(groups, ablated):
        label, layer, head = describe_ablation(group, handle.num_heads)
        scored = scorer.arrays(outputs)
        for name in metrics:
            result = paired_bootstrap(scorer.kind(name), baseline[name], scored[name], scorer.gold, indices)
            base_value = base_values[name]
            rows.append({"task": task_label(handle), "ablation": label, "layer": layer, "head": head,
                         "n_heads": len(group), "mode": mode, "metric": name, "value": base_value + result.delta,
                         "baseline": base_value, "delta": result.delta, "ci_low": result.ci_low,
                         "ci_high": result.ci_high, "p_value": result.p_value, "n_examples": n_scored})
    frame = pd.DataFrame(rows, columns=list(ABLATION_COLUMNS))
    frame.attrs = frame_attrs(handle, "ablate_heads", {
        "mode": mode, "max_length": max_length, "doc_stride": doc_stride, "n_resamples": n_resamples, "seed": seed,
        "n_ablations": len(groups)})
    return frame
