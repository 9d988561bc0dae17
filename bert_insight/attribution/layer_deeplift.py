"""Layer-wise DeepLIFT for extractive QA (the DeepLIFT study of BERT on SQuAD 2.0, arXiv 1910.06431).

DeepLIFT at hidden state ``l`` explains ``F(h_l) - F(h'_l)``, the change of a target logit between the
input and a reference, as a sum over the tokens and hidden units of hidden state ``l``: the scores add up
to that change exactly (summation-to-delta), to floating-point rounding. The rules that make this hold
through attention, softmax, GELU and LayerNorm are in :mod:`._deeplift_core` and docs/deeplift.md.
captum's ``LayerDeepLift`` does not hold it on Hugging Face transformers (softmax is a function call it
cannot hook, LayerNorm and HF's GELU have no rule; captum issues #519, #1085).

The frames are layer_ig's (``method = "layer_deeplift"``), so every analysis and view of the IG
notebook works on them unchanged; DeepLIFT needs one forward and one backward per target where IG
needs ``n_steps`` of each.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Iterable, NamedTuple

import numpy as np
import pandas as pd
import torch

from ..data.examples import validate_examples
from ..errors import BertInsightInputError
from ..frames import frame_attrs
from ..layers import resolve_layers
from ..qa import window_settings
from ._deeplift_core import layer_deeplift_window
from ._ig_core import PRECISIONS, frozen_weights, hidden_states_once
from ._kernels import linear_kernels, precision_context
from ._runner import FRAMES, WindowRows, attribute_examples, check_targets

__all__ = ["layer_deeplift", "LayerDeepLiftResult", "METHOD", "BASELINES", "REFERENCE_TOKENS"]

#: The ``method`` column of the frames this verb makes.
METHOD = "layer_deeplift"
#: DeepLIFT integrates nothing: the ``quadrature`` column says so.
QUADRATURE = "none"
BASELINES = ("zero", "reference_input")
REFERENCE_TOKENS = ("pad", "mask")
#: Output-layer view (the paper's Figure 13): one row per token of each analysis window.
OUTPUT_COLUMNS = ("example_id", "token_index", "word_index", "segment", "start_probability", "end_probability")


class LayerDeepLiftResult(NamedTuple):
    """What :func:`layer_deeplift` returns; unpacks as ``attributions, convergence, outputs = ...``."""

    attributions: pd.DataFrame
    convergence: pd.DataFrame
    outputs: pd.DataFrame


def _check_choices(baseline: str, reference_token: str, precision: str) -> None:
    if baseline not in BASELINES:
        raise BertInsightInputError(
            f"baseline={baseline!r}; use 'zero' (a zero hidden state at each layer, as layer_ig) or "
            "'reference_input' (the hidden states of the input with its question and context tokens replaced "
            "by reference_token, special tokens kept).")
    if reference_token not in REFERENCE_TOKENS:
        raise BertInsightInputError(f"reference_token={reference_token!r}; use 'pad' ([PAD]) or 'mask' ([MASK]).")
    if precision not in PRECISIONS:
        raise BertInsightInputError(
            f"precision={precision!r}; use 'fp32' (summation-to-delta at fp32 rounding, the default) or 'bf16' "
            "(linear layers in bfloat16: faster where bf16 is native, the summation gap grows to bf16 rounding).")


def _reference_token_id(tokenizer, reference_token: str) -> int:
    token_id = tokenizer.pad_token_id if reference_token == "pad" else tokenizer.mask_token_id
    if token_id is None:
        raise BertInsightInputError(
            f"reference_token={reference_token!r}: this tokenizer has no {reference_token} token; use the other "
            "one, or baseline='zero'.")
    return int(token_id)


def _attribute_window(handle, window, start_index: int, end_index: int, *, layers: list[int],
                      targets: tuple[str, ...], baseline: str, reference_id: int | None,
                      precision: str) -> dict[str, pd.DataFrame]:
    adapter, model = handle.adapter, handle.model
    inputs = handle.batch_inputs([window])  # one window: no padding, so the blocks need no mask
    token_types = inputs.get("token_type_ids")
    states = hidden_states_once(adapter, model, inputs["input_ids"], token_types, max(layers), as_float32=False)
    references = None
    if baseline == "reference_input":
        kept = torch.tensor([sequence is None for sequence in window.sequence_ids], device=handle.device)
        reference_ids = torch.where(kept, inputs["input_ids"][0], reference_id)[None]
        references = hidden_states_once(adapter, model, reference_ids, token_types, max(layers), as_float32=False)
    # fp32 keeps the model's own linear layers (and dtype: a float64 model gives float64-exact sums);
    # bf16 takes layer_ig's bf16 kernels on CPU and autocast on GPUs.
    kernels = linear_kernels(model, precision, handle.device) if precision == "bf16" else nullcontext()
    with frozen_weights(model), kernels, precision_context(precision, handle.device):
        result = layer_deeplift_window(adapter, model, layers, states, references, start_index, end_index,
                                       targets=targets)
    rows = WindowRows(window, METHOD, QUADRATURE)
    for layer in layers:
        for target in targets:
            rows.add(layer, target, result.attributions[target, layer], result.at_input[target, layer],
                     result.at_reference[target, layer])
    frames = rows.frames()
    frames["outputs"] = pd.DataFrame({
        "example_id": window.example_id, "token_index": np.arange(len(window)), "word_index": rows.word_index,
        "segment": rows.segment, "start_probability": result.start_probabilities.cpu().double().numpy(),
        "end_probability": result.end_probabilities.cpu().double().numpy(),
    }, columns=list(OUTPUT_COLUMNS))
    return frames


def layer_deeplift(
    handle,
    examples: pd.DataFrame,
    *,
    layers: str | int | Iterable[int] = "all",
    targets: str | Iterable[str] = ("start", "end"),
    baseline: str = "zero",
    reference_token: str = "pad",
    precision: str = "fp32",
    predictions: pd.DataFrame | None = None,
    max_length: int | None = None,
    doc_stride: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> LayerDeepLiftResult:
    """Layer-wise DeepLIFT of the predicted answer span, with exact summation-to-delta.

    For every example, the window holding the predicted answer (:func:`bert_insight.qa.analysis_windows`;
    for a SQuAD 2.0 "no answer" the [CLS] token) is attributed: for each hidden state ``layer`` and
    ``target``, DeepLIFT's multipliers (Rescale rule for elementwise nonlinearities, the exact symmetric
    split for products, softmax and LayerNorm decomposed into those; docs/deeplift.md) times the
    difference between the hidden state and its reference.

    Parameters
    ----------
    handle: a :class:`~bert_insight.models.handle.QAModelHandle`.
    examples: examples frame, e.g. from ``load_squad(version="2.0")``.
    layers: hidden states (``bert_insight.layers``): "all" (default) = 0..L, as the paper shows every
        layer; "block_inputs" = 0..L-1; or layer numbers in 0..L.
    targets: "start" and/or "end" (the logit of the most probable start / end token, the paper's targets)
        and/or "start+end".
    baseline: "zero" -- the reference of hidden state ``l`` is a zero hidden state there (propagated through
        blocks ``l..L-1``; the same baseline as layer_ig, one pass per layer) -- or "reference_input": the
        reference hidden states are those of the input with every question and context token replaced by
        ``reference_token`` ("pad" or "mask"; special tokens, positions and segments kept), one pass for all
        layers.
    precision: "fp32" (the default: the gap is fp32 rounding) or "bf16" (linear layers in bfloat16; on GPUs
        autocast; the gap then is bf16 rounding, see the convergence frame).
    predictions: from :func:`bert_insight.predict` (computed when None, with ``max_length`` / ``doc_stride``
        or the defaults 384 / 128; a SQuAD 2.0 model's card threshold decides "no answer").
    cache_dir: directory of the results cache (a killed run resumes where it stopped).

    Each window runs as one input-and-reference pair without padding; there is no ``batch_size``: padded
    batches would need attention masks in every transformers version's format, and one pair of a few
    hundred tokens already keeps the CPU busy.

    Returns
    -------
    LayerDeepLiftResult(attributions, convergence, outputs):
      attributions: layer_ig's columns: example_id, method ("layer_deeplift"), quadrature ("none"), layer,
        target, token_index, word_index (-1 for special tokens), segment (question / context / special),
        score (signed sum of the contributions over the hidden dimension), norm (their L2 norm over it),
        importance (norm / sum of the context tokens' norms; 0 outside the passage).
      convergence: example_id, method, quadrature, layer, target, delta (sum of scores - (F(h) - F(h'))),
        relative_delta (|delta| / |F(h) - F(h')|): summation-to-delta, zero up to rounding.
      outputs: example_id, token_index, word_index, segment, start_probability, end_probability (softmax of
        the start / end logits over the window's tokens: the paper's output-layer view).
      The frames' ``attrs`` carry model, fingerprint, method, baseline and all parameters.
    """
    _check_choices(baseline, reference_token, precision)
    layer_list = resolve_layers(layers, handle.num_layers, axis="hidden_states")
    target_list = check_targets(targets)
    examples = validate_examples(examples, allow_empty=False)
    max_length, doc_stride = window_settings(predictions, max_length, doc_stride)
    reference_id = (_reference_token_id(handle.tokenizer, reference_token) if baseline == "reference_input"
                    else None)
    params = {"layers": layer_list, "targets": list(target_list), "baseline": baseline,
              "reference_token": reference_token if baseline == "reference_input" else None,
              "precision": precision, "max_length": max_length, "doc_stride": doc_stride}

    def attribute(window, start_index: int, end_index: int) -> dict[str, pd.DataFrame]:
        return _attribute_window(handle, window, start_index, end_index, layers=layer_list, targets=target_list,
                                 baseline=baseline, reference_id=reference_id, precision=precision)

    fingerprint = handle.fingerprint
    frames = attribute_examples(handle, examples, function=METHOD, params=params, fingerprint=fingerprint,
                                predictions=predictions, max_length=max_length, doc_stride=doc_stride,
                                cache_dir=cache_dir, progress=progress, attribute=attribute,
                                frames=FRAMES + ("outputs",))
    attrs = frame_attrs(handle, f"bert_insight.{METHOD}", params, fingerprint=fingerprint, method=METHOD,
                        baseline=baseline, precision=precision)
    for frame in frames.values():
        frame.attrs = dict(attrs)
    return LayerDeepLiftResult(frames["attributions"], frames["convergence"], frames["outputs"])
