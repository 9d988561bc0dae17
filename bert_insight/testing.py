"""Independent references for the tests and benchmarks (like ``captum.testing``): not the fast path.

* :func:`captum_layer_ig` runs captum's ``LayerIntegratedGradients`` on the model's own Hugging Face
  forward, so it shares nothing with :mod:`bert_insight.attribution._ig_core` but the model weights;
* :func:`redraw_parameters` makes tiny random models non-degenerate for layer IG;
* :func:`top_word_sets` turns an attributions frame into the set of top-k passage words per
  (example, layer, target), for "same top-5 words" agreement checks.
"""

from __future__ import annotations

import pandas as pd
import torch

from .attribution.analysis import top_words
from .models.adapters import module_at

#: Our quadrature names -> captum's.
CAPTUM_METHOD = {"riemann": "riemann_right", "gausslegendre": "gausslegendre"}


def redraw_parameters(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """BERT's default init (zero biases, LayerNorm 1/0) makes layer IG degenerate: redraw them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name:
                noise = torch.randn(parameter.shape, generator=generator) * 0.1
                parameter.copy_(noise + (1.0 if name.endswith("weight") else 0.0))
    return model


def module_holding_layer(handle, layer: int) -> torch.nn.Module:
    """The module whose output is hidden state ``layer`` inside the model's own forward."""
    adapter, model = handle.adapter, handle.model
    if layer == 0:
        return module_at(adapter.base_model(model), adapter.embedding_projection_path or adapter.embeddings_path)
    if adapter.family == "albert":
        raise ValueError("ALBERT's blocks share one module; only layer 0 has a module of its own")
    return adapter.blocks(model)[layer - 1]


def captum_layer_ig(handle, window, layer: int, target: str, index: int, method: str, n_steps: int,
                    internal_batch_size: int | None = None) -> tuple[torch.Tensor, float]:
    """captum's LayerIntegratedGradients at hidden state ``layer`` with a zero baseline there.

    Returns the (T, D) attribution and captum's convergence delta. Why this construction is honest:
    captum interpolates between the layer's values at the input and at the baseline *input*, both
    obtained by running forward_func. No token sequence embeds to an all-zero hidden state, so
    forward_func takes a scalar gate (input 1, baseline 0) and a forward hook multiplies the layer's
    output by it; captum's own hook is registered after ours and replaces the output with its
    interpolated tensor along the path, so the gate only makes the baseline exactly zero. Everything
    else -- embeddings, the blocks below and above, the QA head -- runs through the unmodified
    Hugging Face forward, not through the adapter the fast path uses.
    """
    from captum.attr import LayerIntegratedGradients

    model = handle.model
    module = module_holding_layer(handle, layer)
    gate_value = []

    def gate(_module, _inputs, output):
        scale = gate_value[0].view(-1, 1, 1)
        return (output[0] * scale, *output[1:]) if isinstance(output, tuple) else output * scale

    def forward(gate_input, input_ids, token_type_ids):
        gate_value[:] = [gate_input]
        kwargs = {"input_ids": input_ids}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        output = model(**kwargs)
        logits = {"start": output.start_logits, "end": output.end_logits}
        return logits[target][:, index]

    inputs = handle.batch_inputs([window])
    inputs = {name: tensor.cpu() for name, tensor in inputs.items()}
    hook = module.register_forward_hook(gate)
    try:
        attribution, delta = LayerIntegratedGradients(forward, module).attribute(
            torch.ones(1), baselines=torch.zeros(1),
            additional_forward_args=(inputs["input_ids"], inputs.get("token_type_ids")),
            n_steps=n_steps, method=CAPTUM_METHOD[method], internal_batch_size=internal_batch_size,
            return_convergence_delta=True,
        )
    finally:
        hook.remove()
    attribution = attribution[0] if isinstance(attribution, tuple) else attribution
    return attribution[0].detach(), float(delta)


def top_word_sets(attributions: pd.DataFrame, k: int = 5) -> pd.Series:
    """The set of the k most important passage words, indexed by (example_id, layer, target)."""
    top = top_words(attributions, top_k=k)
    return top.groupby(["example_id", "layer", "target"]).word_index.apply(frozenset)
