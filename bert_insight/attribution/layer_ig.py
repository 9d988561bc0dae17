"""Layer-wise Integrated Gradients for extractive QA (Ramnath et al. 2020, "Towards Interpreting BERT
for Reading Comprehension Based Question Answering", EMNLP).

IG at layer ``l`` attributes a target logit to hidden state ``l`` (the input of block ``l``; 0 = the
embedding output) along the straight path from a zero hidden state. The targets are the logits of the
start and end tokens the model predicts, held fixed along the path. See docs/layer_ig.md.

The computation is the tensor core in :mod:`bert_insight.attribution._ig_core`: blocks below ``l`` run
once per example, only blocks ``l..L-1`` see the interpolated batch, start and end share one forward.
It agrees with captum's ``LayerIntegratedGradients`` (tests/test_layer_ig.py) and is several times
faster (benchmarks/layer_ig.py).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd
import torch

from ..cache import ResultCache
from ..device import bf16_is_fast
from ..errors import BertInsightInputError
from ._ig_core import (
    METHODS,
    PRECISIONS,
    TARGETS,
    frozen_weights,
    hidden_states_once,
    layer_integrated_gradients,
    quadrature,
)
from ._kernels import linear_kernels

__all__ = ["layer_ig", "LayerIGResult", "ATTRIBUTION_COLUMNS", "CONVERGENCE_COLUMNS"]

ATTRIBUTION_COLUMNS = ("example_id", "method", "layer", "target", "token_index", "word_index", "segment",
                       "score", "norm", "importance")
CONVERGENCE_COLUMNS = ("example_id", "method", "layer", "target", "delta", "relative_delta")
_FRAMES = ("attributions", "convergence")
_SEGMENTS = {0: "question", 1: "context", None: "special"}


class LayerIGResult(NamedTuple):
    """What :func:`layer_ig` returns; unpacks as ``attributions, convergence = layer_ig(...)``."""

    attributions: pd.DataFrame
    convergence: pd.DataFrame


# ---- argument checks ---------------------------------------------------------------------------------
def _check_layers(layers, num_layers: int) -> list[int]:
    if isinstance(layers, str):
        if layers != "all":
            raise BertInsightInputError(
                f"layers={layers!r}; pass 'all' (hidden states 0..{num_layers - 1}, the paper's L0..L"
                f"{num_layers - 1}), one layer number, or a list of them in 0..{num_layers}."
            )
        return list(range(num_layers))
    chosen = [layers] if isinstance(layers, (int, np.integer)) else list(layers) if isinstance(layers, Iterable) else None
    if not chosen or any(isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) for layer in chosen):
        raise BertInsightInputError(
            f"layers={layers!r}; pass 'all', one layer number, or a non-empty list of layer numbers in "
            f"0..{num_layers}."
        )
    bad = [int(layer) for layer in chosen if not 0 <= int(layer) <= num_layers]
    if bad:
        raise BertInsightInputError(
            f"layer {bad[0]} is out of range: this model has {num_layers} blocks, so hidden states 0.."
            f"{num_layers} (0 = embedding output, {num_layers} = last block's output). Pick layers in that range."
        )
    return sorted({int(layer) for layer in chosen})


def _check_targets(targets) -> tuple[str, ...]:
    chosen = (targets,) if isinstance(targets, str) else tuple(targets) if isinstance(targets, Iterable) else ()
    unknown = [target for target in chosen if target not in TARGETS]
    if not chosen or unknown:
        raise BertInsightInputError(
            f"targets={targets!r}; choose from {TARGETS}: 'start' / 'end' attribute the logit of the predicted "
            "start / end token (the paper's text), 'start+end' their sum (the paper's released code)."
        )
    return tuple(target for target in TARGETS if target in chosen)


def _check_choices(n_steps, method, precision, batch_size) -> None:
    if method not in METHODS:
        raise BertInsightInputError(
            f"method={method!r}; use 'riemann' (alphas k/n_steps, Ramnath et al.'s Algorithm 1, captum's "
            "riemann_right) or 'gausslegendre' (captum's default; smaller completeness gap per step)."
        )
    if precision not in PRECISIONS:
        raise BertInsightInputError(
            f"precision={precision!r}; use 'fp32' (exact, the default) or 'bf16' (matrix products in "
            "bfloat16; faster on CPUs with native bf16 and on GPUs)."
        )
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise BertInsightInputError(
            f"n_steps={n_steps!r}; pass a whole number of path points >= 1 (the paper used 50; its code 20)."
        )
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        raise BertInsightInputError(
            f"batch_size={batch_size!r}; pass None (fit the memory budget automatically) or the number of "
            "path points per forward pass (>= 1; lower it when memory runs out)."
        )


# ---- one window ----------------------------------------------------------------------------------------
def _example_key(example_id: str, question: str, context: str, prediction) -> str:
    content = json.dumps([example_id, question, context, prediction], default=str)
    return f"{example_id}:{hashlib.sha256(content.encode()).hexdigest()[:16]}"


def _window_tensors(handle, window) -> tuple[torch.Tensor, torch.Tensor | None]:
    input_ids = torch.tensor([window.input_ids], dtype=torch.long, device=handle.device)
    token_type_ids = None
    if handle.adapter.uses_token_type_ids and window.token_type_ids is not None:
        token_type_ids = torch.tensor([window.token_type_ids], dtype=torch.long, device=handle.device)
    return input_ids, token_type_ids


def _attribute_window(handle, window, start_index: int, end_index: int, *, layers: list[int],
                      targets: tuple[str, ...], method: str, n_steps: int, precision: str,
                      batch_size: int | None) -> dict[str, pd.DataFrame]:
    """The attributions and convergence rows of one analysis window (all layers and targets)."""
    adapter, model = handle.adapter, handle.model
    alphas, weights = quadrature(method, n_steps)
    input_ids, token_type_ids = _window_tensors(handle, window)
    states = hidden_states_once(adapter, model, input_ids, token_type_ids, max(layers))

    n_tokens = len(window)
    segment = np.array([_SEGMENTS[sequence] for sequence in window.sequence_ids], dtype=object)
    word_index = np.array([-1 if word is None or sequence is None else int(word)
                           for word, sequence in zip(window.word_ids, window.sequence_ids)], dtype=np.int64)
    in_context = segment == "context"
    attribution_parts, convergence_rows = [], []
    # One switch of the linear kernels for all layers (layer_integrated_gradients' own is then a no-op).
    with frozen_weights(model), linear_kernels(model, precision, handle.device):
        for layer in layers:
            result = layer_integrated_gradients(
                adapter, model, layer, states[layer], start_index, end_index, targets=targets,
                alphas=alphas, weights=weights, precision=precision, chunk=batch_size,
            )
            for target in targets:
                attribution = result.attributions[target].double()
                score = attribution.sum(-1).cpu().numpy()
                norm = attribution.norm(dim=-1).cpu().numpy()
                passage = norm[in_context].sum()
                importance = np.where(in_context, norm / passage, 0.0) if passage > 0 else np.zeros(n_tokens)
                attribution_parts.append(pd.DataFrame({
                    "example_id": window.example_id, "method": method, "layer": layer, "target": target,
                    "token_index": np.arange(n_tokens), "word_index": word_index, "segment": segment,
                    "score": score, "norm": norm, "importance": importance,
                }))
                change = result.at_input[target] - result.at_baseline[target]
                delta = float(score.sum()) - change
                convergence_rows.append((window.example_id, method, layer, target, delta,
                                         abs(delta) / abs(change) if change != 0 else float("nan")))
    return {
        "attributions": pd.concat(attribution_parts, ignore_index=True),
        "convergence": pd.DataFrame(convergence_rows, columns=list(CONVERGENCE_COLUMNS)),
    }


# ---- the verb ------------------------------------------------------------------------------------------
def layer_ig(
    handle,
    examples: pd.DataFrame,
    *,
    layers: str | int | Iterable[int] = "all",
    targets: str | Iterable[str] = ("start", "end"),
    n_steps: int = 50,
    method: str = "riemann",
    precision: str = "fp32",
    batch_size: int | None = None,
    cache_dir=None,
    progress: bool = True,
    predictions: pd.DataFrame | None = None,
    max_length: int = 384,
    doc_stride: int = 128,
) -> LayerIGResult:
    """Layer-wise Integrated Gradients of the predicted answer span (Ramnath et al. 2020).

    For every example, the window holding the predicted answer (:func:`bert_insight.qa.analysis_windows`)
    is attributed: for each hidden state ``layer`` and ``target``, IG integrates the gradient of the
    target logit along the straight path from a zero hidden state to the real one.

    Parameters
    ----------
    handle: a :class:`~bert_insight.models.loading.QAModelHandle`.
    examples: examples frame (example_id, question, context, ...), e.g. from ``load_squad``.
    layers: "all" = hidden states 0..L-1 (the paper's L0..L11 for BERT-base: the inputs of the L blocks),
        or layer numbers in 0..L (L = the last block's output, where IG is exact because only the linear
        QA head remains).
    targets: "start" and/or "end" (the logit of the predicted start / end token, the paper's text; both
        share one forward pass) and/or "start+end" (their sum, what the paper's released code attributed,
        with n_steps=20).
    n_steps: path points; method: "riemann" (alphas k/n_steps, k=1..n_steps, weights 1/n_steps: Algorithm 1
        of the paper, captum's "riemann_right") or "gausslegendre" (captum's default rule).
    precision: "fp32", or "bf16" (matrix products in bfloat16: on CPU the linear layers only, on GPUs the
        blocks under autocast; inputs, outputs and summed gradients stay fp32; faster only where the
        hardware has bf16 matrix units, about 1.5x on a CPU with AVX512-BF16).
    batch_size: path points per forward pass (None: as many as fit about 1.5 GiB of activations).
    cache_dir: directory of the results cache; a killed run resumes where it stopped.
    predictions, max_length, doc_stride: passed to ``analysis_windows`` (predictions computed when None).

    Returns
    -------
    LayerIGResult(attributions, convergence):
      attributions: one row per (example_id, layer, target, token_index) with columns example_id, method
        (the quadrature rule), layer, target, token_index, word_index (word in the question or context,
        -1 for special tokens), segment (question / context / special), score (signed sum of the
        attribution over the hidden dimension), norm (its L2 norm over the hidden dimension), importance
        (norm / sum of the context tokens' norms; 0 outside the passage).
      convergence: example_id, method, layer, target, delta (sum of attributions - (F(h) - F(0)), the
        completeness gap) and relative_delta (|delta| / |F(h) - F(0)|); raise n_steps where it is large.
      Both frames' ``attrs`` carry model, fingerprint, n_steps, method, precision and all parameters.
    """
    from tqdm.auto import tqdm

    from ..qa import _validated, analysis_windows

    _check_choices(n_steps, method, precision, batch_size)
    layer_list = _check_layers(layers, handle.num_layers)
    target_list = _check_targets(targets)
    examples = _validated(examples)
    n_steps = int(n_steps)
    if precision == "bf16" and not bf16_is_fast(handle.device):
        warnings.warn("precision='bf16' on a CPU without native bfloat16 instructions is emulated and "
                      "slower than fp32 here; use precision='fp32'.", RuntimeWarning, stacklevel=2)

    params = {"layers": layer_list, "targets": list(target_list), "n_steps": n_steps, "method": method,
              "precision": precision, "max_length": max_length, "doc_stride": doc_stride}
    cache = ResultCache(cache_dir, fingerprint=handle.fingerprint, function="layer_ig", params=params)
    given = None
    if predictions is not None:
        given = {str(row.example_id): (int(row.window_index), int(row.start_index), int(row.end_index))
                 for row in predictions.itertuples(index=False)}
    keys = [
        _example_key(str(row.example_id), row.question, row.context,
                     None if given is None else given.get(str(row.example_id)))
        for row in examples.itertuples(index=False)
    ]
    stored = {key: cache.load(key, _FRAMES) for key in keys}
    missing = [position for position, key in enumerate(keys) if stored[key] is None]
    chosen = {}
    if missing:
        subset = examples.iloc[missing]
        for position, window_and_span in zip(missing, analysis_windows(
                handle, subset, predictions, max_length=max_length, doc_stride=doc_stride)):
            chosen[position] = window_and_span

    parts = {name: [] for name in _FRAMES}
    for position, key in enumerate(tqdm(keys, desc="layer_ig", unit="example", disable=not progress)):
        frames = stored[key]
        if frames is None:
            window, start_index, end_index = chosen[position]
            frames = _attribute_window(handle, window, start_index, end_index, layers=layer_list,
                                       targets=target_list, method=method, n_steps=n_steps,
                                       precision=precision, batch_size=batch_size)
            cache.save(key, frames)
        for name in _FRAMES:
            parts[name].append(frames[name])

    columns = {"attributions": ATTRIBUTION_COLUMNS, "convergence": CONVERGENCE_COLUMNS}
    attrs = {"model": handle.name, "fingerprint": handle.fingerprint, "function": "bert_insight.layer_ig",
             "n_steps": n_steps, "method": method, "precision": precision, "params": params}
    result = {}
    for name in _FRAMES:
        frame = (pd.concat(parts[name], ignore_index=True) if parts[name]
                 else pd.DataFrame(columns=list(columns[name])))
        frame.attrs = dict(attrs)
        result[name] = frame
    return LayerIGResult(result["attributions"], result["convergence"])
