"""Encoder blocks run from their weights, for the layer-IG fast path on CPU.

The family's own block forward (what :meth:`ArchitectureAdapter.run_block` calls) does work IG does not
need. Running the same post-LayerNorm block from its weights (:class:`PreparedBlock`) lets the IG core
(:mod:`._ig_core`) skip it:

* **target rows only in the last block.** The QA head reads the last block's output at the start and end
  positions only, so there the queries, attention output, feed-forward and both LayerNorms run on those
  rows; keys and values still need every row (:func:`block_forward` with ``rows``).
* **the first block's projections once.** On the path ``alpha * h`` the first block's queries, keys and
  values are ``alpha * (h W^T) + b``: ``h W^T`` is computed once per layer (:meth:`PreparedBlock.qkv_of`),
  and because the backward of a linear map is linear, the gradients with respect to the projections are
  summed over the path first and multiplied by ``W`` once (the core's job).
* **one fused query-key-value product** (one input cast, one larger matrix product instead of three),
  the attention scale folded into the query weights, GELU's derivative computed once in the forward and
  reused by the start and the end backward (:class:`_Gelu`).
* ``precision="bf16"``: the matrix products in bfloat16 including attention's (:class:`_AttentionBF16`,
  softmax in fp32); residual sums and LayerNorms stay fp32. ``"fp32"``: everything fp32 (attention by
  SDPA), equal to the family's forward up to summation order (tests/test_ig_blocks.py).

Only for frozen weights (no weight gradients), eval mode, unpadded sequences. :func:`prepare_blocks`
returns None where a model does not fit (no layout, relative position embeddings, several layers per
ALBERT group, training mode, not a CPU); the core then runs the family's own forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._kernels import frozen_linear

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class _Weights:
    """One linear layer's frozen weight in the compute dtype, its transpose (the backward) and bias."""

    weight: torch.Tensor
    weight_t: torch.Tensor
    bias: torch.Tensor | None

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> "_Weights":
        weight = weight.detach().to(dtype).contiguous()
        return cls(weight, weight.t().contiguous(), None if bias is None else bias.detach().to(dtype).contiguous())

    def __call__(self, inputs: torch.Tensor, output_dtype: torch.dtype) -> torch.Tensor:
        return frozen_linear(inputs, self.weight, self.weight_t, self.bias, output_dtype)


class _Gelu(torch.autograd.Function):
    """Exact GELU whose derivative is computed in the forward: the start and the end backward of one
    forward each multiply by it instead of re-evaluating GELU's derivative (an erf per element)."""

    @staticmethod
    def forward(ctx, inputs, approximate):
        ctx.save_for_backward(torch.ops.aten.gelu_backward(torch.ones_like(inputs), inputs, approximate=approximate))
        return F.gelu(inputs, approximate=approximate)

    @staticmethod
    def backward(ctx, grad_output):
        (derivative,) = ctx.saved_tensors
        return grad_output * derivative, None


class _AttentionBF16(torch.autograd.Function):
    """softmax(q k^T) v with bf16 products and an fp32 softmax; q already carries the 1/sqrt(d) scale.

    On CPU, SDPA's bf16 backward is slower than its fp32 one; this one is batched matrix products
    (oneDNN's bf16 kernels) plus torch's fused softmax backward, on (B, H, T, d) inputs.
    """

    @staticmethod
    def forward(ctx, query, key, value):
        batch, heads, n_queries, head_dim = query.shape
        n_keys = key.shape[2]
        query = query.reshape(batch * heads, n_queries, head_dim)
        key = key.reshape(batch * heads, n_keys, head_dim)
        value = value.reshape(batch * heads, n_keys, head_dim)
        probabilities = torch.softmax(torch.bmm(query, key.transpose(1, 2)), dim=-1, dtype=torch.float32)
        probabilities_low = probabilities.to(query.dtype)
        ctx.save_for_backward(query, key, value, probabilities, probabilities_low)
        return torch.bmm(probabilities_low, value).view(batch, heads, n_queries, head_dim)

    @staticmethod
    def backward(ctx, grad_output):
        query, key, value, probabilities, probabilities_low = ctx.saved_tensors
        shape = grad_output.shape
        grad_output = grad_output.reshape(query.shape[0], shape[2], shape[3]).to(query.dtype)
        grad_value = torch.bmm(probabilities_low.transpose(1, 2), grad_output)
        grad_probabilities = torch.bmm(grad_output, value.transpose(1, 2)).float()
        grad_scores = torch.ops.aten._softmax_backward_data(
            grad_probabilities, probabilities, -1, torch.float32).to(query.dtype)
        grad_query = torch.bmm(grad_scores, key)
        grad_key = torch.bmm(grad_scores.transpose(1, 2), query)
        batch, heads = shape[0], shape[1]
        return (grad_query.view(batch, heads, -1, shape[3]), grad_key.view(batch, heads, -1, shape[3]),
                grad_value.view(batch, heads, -1, shape[3]))


@dataclass
class PreparedBlock:
    """One encoder block's frozen weights, ready for :func:`block_forward` in one precision."""

    n_heads: int
    head_dim: int
    compute_dtype: torch.dtype
    #: Queries (scaled by 1/sqrt(head_dim)), keys and values in one product: (3D, D).
    qkv: _Weights
    #: The query part alone and the key-value part, for the last block's target rows.
    query: _Weights
    key_value: _Weights
    #: fp32 copy of the fused projection, for the first block's once-per-layer product and gradient.
    qkv_weight_fp32: torch.Tensor
    qkv_bias_fp32: torch.Tensor
    attention_output: _Weights
    attention_norm: nn.LayerNorm
    ffn_in: _Weights
    activation: Callable[[torch.Tensor], torch.Tensor]
    ffn_out: _Weights
    output_norm: nn.LayerNorm

    def qkv_of(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden W_qkv^T`` in fp32, without the bias (the first block's product, once per layer)."""
        return hidden.float() @ self.qkv_weight_fp32.t()


def _activation(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    from transformers.activations import GELUActivation, NewGELUActivation

    if type(module) is GELUActivation and getattr(module, "act", None) is F.gelu:
        return lambda inputs: _Gelu.apply(inputs, "none")
    if type(module) is NewGELUActivation:  # the tanh formula, which F.gelu(approximate="tanh") computes
        return lambda inputs: _Gelu.apply(inputs, "tanh")
    return module  # anything else: the module itself, differentiated by autograd


def prepare_blocks(adapter, model: nn.Module, precision: str, device: torch.device) -> list[PreparedBlock] | None:
    """The model's blocks as :class:`PreparedBlock` in ``precision``, or None where the fast path does not
    apply (then the family's own forward runs): not a CPU, training mode, no block layout for the family,
    relative position embeddings, several layers per ALBERT group, or parts that are not plain
    Linear / LayerNorm modules."""
    if device.type != "cpu" or model.training:
        return None
    if getattr(model.config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return None
    dtype = _DTYPES[precision]
    n_heads = adapter.num_heads(model)
    blocks = []
    for layer in range(adapter.num_layers(model)):
        parts = adapter.block_parts(model, layer)
        if parts is None:
            return None
        linears = [parts[name] for name in ("query", "key", "value", "attention_output", "ffn_in", "ffn_out")]
        norms = [parts["attention_norm"], parts["output_norm"]]
        if (not all(type(module) is nn.Linear for module in linears)
                or not all(type(module) is nn.LayerNorm for module in norms)):
            return None
        query, key, value = parts["query"], parts["key"], parts["value"]
        hidden_size = query.in_features
        if query.out_features != hidden_size or hidden_size % n_heads:
            return None
        scale = (hidden_size // n_heads) ** -0.5
        with torch.no_grad():
            weight = torch.cat([query.weight * scale, key.weight, value.weight]).float()
            bias = torch.cat([_bias(query) * scale, _bias(key), _bias(value)]).float()
        blocks.append(PreparedBlock(
            n_heads=n_heads, head_dim=hidden_size // n_heads, compute_dtype=dtype,
            qkv=_Weights.of(weight, bias, dtype),
            query=_Weights.of(weight[:hidden_size], bias[:hidden_size], dtype),
            key_value=_Weights.of(weight[hidden_size:], bias[hidden_size:], dtype),
            qkv_weight_fp32=weight.contiguous(), qkv_bias_fp32=bias.contiguous(),
            attention_output=_Weights.of(parts["attention_output"].weight, parts["attention_output"].bias, dtype),
            attention_norm=parts["attention_norm"],
            ffn_in=_Weights.of(parts["ffn_in"].weight, parts["ffn_in"].bias, dtype),
            activation=_activation(parts["activation"]),
            ffn_out=_Weights.of(parts["ffn_out"].weight, parts["ffn_out"].bias, dtype),
            output_norm=parts["output_norm"],
        ))
    return blocks


def _bias(linear: nn.Linear) -> torch.Tensor:
    return linear.bias if linear.bias is not None else linear.weight.new_zeros(linear.out_features)


def _heads(tensor: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, D / H), a view."""
    batch, length, width = tensor.shape
    return tensor.view(batch, length, n_heads, width // n_heads).transpose(1, 2)


def _norm(norm: nn.LayerNorm, inputs: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(inputs, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def block_forward(block: PreparedBlock, hidden: torch.Tensor, *, qkv: torch.Tensor | None = None,
                  rows: list[int] | None = None) -> torch.Tensor:
    """The block's output for input ``hidden`` (B, T, D), fp32.

    ``qkv``: the fused projection of ``hidden`` with its bias (B, T, 3D), when the caller has it (the
    first block of the IG path); computed here otherwise. ``rows``: return only these positions' outputs
    (B, len(rows), D): every row still gives keys and values, only these rows query.
    """
    dtype = block.compute_dtype
    width = hidden.shape[-1]
    if qkv is None and rows is not None:
        key_value = block.key_value(hidden, dtype)
        query, key, value = block.query(hidden[:, rows], dtype), key_value[..., :width], key_value[..., width:]
    else:
        if qkv is None:
            qkv = block.qkv(hidden, dtype)
        qkv = qkv.to(dtype)
        query, key, value = qkv[..., :width], qkv[..., width:2 * width], qkv[..., 2 * width:]
        if rows is not None:
            query = query[:, rows]
    if rows is not None:
        hidden = hidden[:, rows]
    query, key, value = (_heads(part, block.n_heads) for part in (query, key, value))
    if dtype == torch.float32:
        context = F.scaled_dot_product_attention(query, key, value, scale=1.0)
    else:
        context = _AttentionBF16.apply(query, key, value)
    context = context.transpose(1, 2).reshape(*hidden.shape[:2], width)
    attended = _norm(block.attention_norm, block.attention_output(context, torch.float32) + hidden)
    inner = block.activation(block.ffn_in(attended, dtype))
    return _norm(block.output_norm, block.ffn_out(inner, torch.float32) + attended)
