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

import functools
import os
import warnings
from contextlib import nullcontext
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd
from .._compat import renamed
from ..data.examples import validate_examples
from ..device import bf16_is_fast, reused_heap
from ..errors import BertInsightInputError
from ..frames import frame_attrs
from ..layers import resolve_layers
from ..qa import window_settings
from ._ig_core import (
    METHODS,
    PRECISIONS,
    frozen_weights,
    hidden_states_once,
    layer_integrated_gradients,
    quadrature as quadrature_rule,
)
from ._ig_blocks import PreparedBlock, prepare_blocks
from ._kernels import linear_kernels
from ._runner import WindowRows, attribute_examples, check_targets

__all__ = ["layer_ig", "LayerIGResult", "METHOD", "QUADRATURES"]

#: The ``method`` column of the frames this verb makes (the attribution method, not its quadrature).
METHOD = "layer_ig"
QUADRATURES = METHODS


class LayerIGResult(NamedTuple):
    """What :func:`layer_ig` returns; unpacks as ``attributions, convergence = layer_ig(...)``."""

    attributions: pd.DataFrame
    convergence: pd.DataFrame


# ---- argument checks ---------------------------------------------------------------------------------
def _check_choices(n_steps, quadrature, precision, steps_per_batch) -> None:
    if quadrature not in QUADRATURES:
        raise BertInsightInputError(
            f"quadrature={quadrature!r}; use 'riemann' (alphas k/n_steps, Ramnath et al.'s Algorithm 1, captum's "
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
    if steps_per_batch is not None and (isinstance(steps_per_batch, bool)
                                        or not isinstance(steps_per_batch, (int, np.integer)) or steps_per_batch < 1):
        raise BertInsightInputError(
            f"steps_per_batch={steps_per_batch!r}; pass None (fit the memory budget automatically) or the number "
            "of path points per forward pass (>= 1; lower it when memory runs out)."
        )


# ---- one window ----------------------------------------------------------------------------------------
def _attribute_window(handle, window, start_index: int, end_index: int, *, layers: list[int],
                      targets: tuple[str, ...], quadrature: str, n_steps: int, precision: str,
                      steps_per_batch: int | None, blocks: list[PreparedBlock] | None) -> dict[str, pd.DataFrame]:
    """The attributions and convergence rows of one analysis window (all layers and targets); ``blocks``:
    the model's prepared blocks in ``precision`` (the CPU fast path) or None (the family's own forward)."""
    adapter, model = handle.adapter, handle.model
    alphas, weights = quadrature_rule(quadrature, n_steps)
    inputs = handle.batch_inputs([window])  # one window: no padding, so the blocks need no mask
    states = hidden_states_once(adapter, model, inputs["input_ids"], inputs.get("token_type_ids"), max(layers))
    rows = WindowRows(window, METHOD, quadrature)
    # The family's forward: one switch of the linear kernels for all layers (layer_integrated_gradients'
    # own is then a no-op). Prepared blocks carry their own kernels and the QA head after them runs as the
    # model's fp32 module (hidden state L, the QA head alone, takes the family path and switches its own).
    kernels = linear_kernels(model, precision, handle.device) if blocks is None else nullcontext()
    with frozen_weights(model), kernels:
        for layer in layers:
            result = layer_integrated_gradients(
                adapter, model, layer, states[layer], start_index, end_index, targets=targets,
                alphas=alphas, weights=weights, precision=precision, chunk=steps_per_batch, blocks=blocks,
            )
            for target in targets:
                rows.add(layer, target, result.attributions[target], result.at_input[target],
                         result.at_baseline[target])
    return rows.frames()


# ---- the verb ------------------------------------------------------------------------------------------
@renamed(method="quadrature", batch_size="steps_per_batch")
def layer_ig(
    handle,
    examples: pd.DataFrame,
    *,
    layers: str | int | Iterable[int] = "block_inputs",
    targets: str | Iterable[str] = ("start", "end"),
    n_steps: int = 50,
    quadrature: str = "riemann",
    precision: str = "fp32",
    steps_per_batch: int | None = None,
    predictions: pd.DataFrame | None = None,
    max_length: int | None = None,
    doc_stride: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> LayerIGResult:
    """Layer-wise Integrated Gradients of the predicted answer span (Ramnath et al. 2020).

    For every example, the window holding the predicted answer (:func:`bert_insight.qa.analysis_windows`)
    is attributed: for each hidden state ``layer`` and ``target``, IG integrates the gradient of the
    target logit along the straight path from a zero hidden state to the real one.

    Parameters
    ----------
    handle: a :class:`~bert_insight.models.handle.QAModelHandle`.
    examples: examples frame (example_id, question, context, ...), e.g. from ``load_squad``.
    layers: hidden states (``bert_insight.layers``): "block_inputs" (default) = 0..L-1; "block_outputs" =
        1..L, the paper's L0..L11 as its released code counts them (it interpolates block l's output), but
        with a logit target hidden state L is degenerate: only the target token's own vector reaches the
        linear QA head, so all importance sits on that token (the authors' code attributed the max
        *probability*, whose softmax spreads the gradient); "all" = 0..L; or layer numbers in 0..L.
    targets: "start" and/or "end" (the logit of the predicted start / end token, the paper's text; both
        share one forward pass) and/or "start+end" (their sum, what the paper's released code attributed,
        with n_steps=20).
    n_steps: path points; quadrature: "riemann" (alphas k/n_steps, k=1..n_steps, weights 1/n_steps:
        Algorithm 1 of the paper, captum's "riemann_right") or "gausslegendre" (captum's default rule).
    precision: "fp32", or "bf16" (matrix products in bfloat16: on CPU the linear layers and, on the
        prepared-block path (docs/layer_ig.md#speed), attention's products too; on GPUs the blocks under
        autocast; inputs, outputs and summed gradients stay fp32; faster only where the hardware has bf16
        matrix units: 1.7-1.9x fp32's speed on an AMD Zen 4 CPU with AVX512-BF16).
    steps_per_batch: path points per forward pass (None: as many as fit about 1.5 GiB of activations; on
        CPU none of a chunk's activations above 32 MiB, glibc's heap threshold, and in fp32 at most 1,536
        rows, points x tokens, which keeps a chunk in the caches).
    predictions: from :func:`bert_insight.predict`; they choose the windows and their settings
        (computed when None, with ``max_length`` / ``doc_stride`` or the defaults 384 / 128).
    cache_dir: directory of the results cache: a killed run resumes where it stopped, and runs sharing
        the directory share the work.

    Returns
    -------
    LayerIGResult(attributions, convergence):
      attributions: one row per (example_id, layer, target, token_index) with columns example_id, method
        ("layer_ig"), quadrature, layer, target, token_index, word_index (word in the question or
        context, -1 for special tokens), segment (question / context / special), score (signed sum of
        the attribution over the hidden dimension), norm (its L2 norm over the hidden dimension),
        importance (norm / sum of the context tokens' norms; 0 outside the passage).
      convergence: example_id, method, quadrature, layer, target, delta (sum of attributions -
        (F(h) - F(0)), the completeness gap) and relative_delta (|delta| / |F(h) - F(0)|); raise
        n_steps where it is large.
      Both frames' ``attrs`` carry model, fingerprint, n_steps, quadrature, precision and all parameters.
    """
    _check_choices(n_steps, quadrature, precision, steps_per_batch)
    layer_list = resolve_layers(layers, handle.num_layers, axis="hidden_states")
    target_list = check_targets(targets)
    examples = validate_examples(examples, allow_empty=False)
    max_length, doc_stride = window_settings(predictions, max_length, doc_stride)
    n_steps = int(n_steps)
    if precision == "bf16" and not bf16_is_fast(handle.device):
        warnings.warn("precision='bf16' on a CPU without native bfloat16 instructions is emulated and "
                      "slower than fp32 here; use precision='fp32'.", RuntimeWarning, stacklevel=2)

    params = {"layers": layer_list, "targets": list(target_list), "n_steps": n_steps, "quadrature": quadrature,
              "precision": precision, "max_length": max_length, "doc_stride": doc_stride}

    # The CPU fast path where the model fits it (None: the family's own block forward), prepared once per
    # call at the first window that is not cached (44-54 ms for MiniLM on AMD Zen 4).
    prepared_blocks = functools.cache(lambda: prepare_blocks(handle.adapter, handle.model, precision, handle.device))

    def attribute(window, start_index: int, end_index: int) -> dict[str, pd.DataFrame]:
        return _attribute_window(handle, window, start_index, end_index, layers=layer_list, targets=target_list,
                                 quadrature=quadrature, n_steps=n_steps, precision=precision,
                                 steps_per_batch=steps_per_batch, blocks=prepared_blocks())

    fingerprint = handle.fingerprint
    # One reused heap for the whole call: freed activation buffers are reused rather than page-faulted in
    # on every pass, and each window's reuse the pages the last one touched.
    with reused_heap():
        frames = attribute_examples(handle, examples, function="layer_ig", params=params, fingerprint=fingerprint,
                                    predictions=predictions,
                                    max_length=max_length, doc_stride=doc_stride, cache_dir=cache_dir,
                                    progress=progress, attribute=attribute)
    attrs = frame_attrs(handle, "bert_insight.layer_ig", params, fingerprint=fingerprint, method=METHOD, n_steps=n_steps,
                        quadrature=quadrature, precision=precision)
    for frame in frames.values():
        frame.attrs = dict(attrs)
    return LayerIGResult(frames["attributions"], frames["convergence"])
