"""Encoder blocks run from their weights, for the layer-IG fast path on CPU.

The family's own block forward (what :meth:`ArchitectureAdapter.run_block` calls) does work IG does not
need. Running the same post-LayerNorm block from its weights (:class:`PreparedBlock`) lets the IG core
(:mod:`._ig_core`) skip it:

* **target rows only in the last block.** The QA head reads the last block's output at the start and end
  positions only, so there the queries, attention output, feed-forward and both LayerNorms run on those
  rows (:func:`block_forward` with ``rows``). Nor are keys and values projected for every row: with R
  querying rows, head h's scores are ``(q_h W_k,h) . x_t`` (the key bias adds the same number to every
  score of a row, which softmax ignores) and its output ``(sum_t p_t x_t) W_v,h^T + b_v,h`` (the
  probabilities sum to 1), products of R x H x T x D instead of T x 2D x D (:func:`_target_rows_attention`;
  by hand about 4.7% of a MiniLM layer_ig call's FLOPs, 2.6% of BERT-base's).
* **the first block's projections once.** On the path ``alpha * h`` the first block's queries, keys and
  values are ``alpha * (h W^T) + b``: ``h W^T`` is computed once per layer (:meth:`PreparedBlock.qkv_of`),
  and because the backward of a linear map is linear, the gradients with respect to the projections are
  summed over the path first and multiplied by ``W`` once (the core's job).
* **one fused query-key-value product** (one input cast, one larger matrix product instead of three),
  the attention scale folded into the query weights, GELU's derivative computed once in the forward and
  reused by the start and the end backward (:class:`_Gelu`).
* **one backward for both targets below the last block**: :func:`block_forward_taped` runs a block
  outside autograd and keeps what its backward needs (:class:`BlockTape`); :func:`block_backward` carries
  the start and the end cotangent together, so each linear layer's input gradient is one product of twice
  the rows and no graph is recorded or walked (GELU activations; the last block stays on autograd).
* ``precision="bf16"``: the matrix products in bfloat16 including attention's (:class:`_Attention`,
  torch's bf16 softmax computes in fp32 inside); residual sums, LayerNorms and the QA head stay fp32. ``"fp32"``:
  everything fp32 (the same attention function), equal to the family's forward up to summation order
  (tests/test_ig_blocks.py).

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

from ._kernels import frozen_linear, linear_backends, linear_input_gradient, linear_product

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass
class _Weights:
    """One linear layer's frozen weight in the compute dtype, its transpose (the backward) and bias."""

    weight: torch.Tensor
    weight_t: torch.Tensor
    bias: torch.Tensor | None
    #: "onednn" or "aten", measured for this shape and dtype on this machine (_kernels.linear_backend): for
    #: the forward product (with its bias) and for the backward's input-gradient product.
    backend: str
    backward_backend: str

    @classmethod
    def of(cls, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype) -> "_Weights":
        weight = weight.detach().to(dtype).contiguous()
        out_features, in_features = weight.shape
        return cls(weight, weight.t().contiguous(), None if bias is None else bias.detach().to(dtype).contiguous(),
                   *linear_backends(dtype, in_features, out_features, bias is not None))

    def __call__(self, inputs: torch.Tensor, output_dtype: torch.dtype) -> torch.Tensor:
        return frozen_linear(inputs, self.weight, self.weight_t, self.bias, output_dtype, self.backend,
                             self.backward_backend)

    def untracked(self, inputs: torch.Tensor, output_dtype: torch.dtype) -> torch.Tensor:
        """``inputs W^T + b`` outside autograd (the taped forward of :func:`block_forward_taped`)."""
        return linear_product(inputs, self.weight, self.bias, output_dtype, self.backend)

    def input_gradient(self, grad_output: torch.Tensor, output_dtype: torch.dtype) -> torch.Tensor:
        """``grad_output W``: the gradient with respect to the layer's input, in ``output_dtype``."""
        return linear_input_gradient(grad_output, self.weight_t, output_dtype, self.backward_backend)


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


def _split_heads(tensor: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, H * d) with any strides -> contiguous (B * H, T, d)."""
    batch, length, width = tensor.shape
    return tensor.reshape(batch, length, n_heads, width // n_heads).transpose(1, 2).reshape(
        batch * n_heads, length, width // n_heads)


def _merge_heads(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """(B * H, T, d) -> a new contiguous (B, T, H * d)."""
    heads_total, length, head_dim = tensor.shape
    merged = tensor.new_empty(batch, length, heads_total // batch * head_dim)
    _merge_heads_into(merged, tensor)
    return merged


def _merge_heads_into(out: torch.Tensor, tensor: torch.Tensor) -> None:
    """Write (B * H, T, d) into ``out``, a (B, T, H * d) view with any row stride (a slot of a packed tensor)."""
    heads_total, length, head_dim = tensor.shape
    batch = out.shape[0]
    out.view(batch, length, heads_total // batch, head_dim).copy_(
        tensor.view(batch, heads_total // batch, length, head_dim).transpose(1, 2))


class _Attention(torch.autograd.Function):
    """softmax(q k^T) v per head from the fused projection, in its dtype (q already carries the 1/sqrt(d)).

    ``qkv``: (B, T, 3D), or ``query`` (B, Tq, D) and ``key_value`` (B, T, 2D) with ``qkv=None`` (the last
    block's target rows). Batched matrix products, torch's softmax and its fused backward, all in the input
    dtype (torch's bf16 softmax computes in fp32 inside), and the gradient comes back already packed as its
    input was, so no zero-filled slice gradients are made around it. On CPU it is faster than SDPA in bf16
    (SDPA's bf16 backward is slower than its fp32 one) and as fast as SDPA in fp32 within the noise of
    the AMD Zen 4 machine measured.
    """

    @staticmethod
    def forward(ctx, qkv, query, key_value, n_heads):
        if qkv is not None:
            width = qkv.shape[-1] // 3
            query, key_value = qkv[..., :width], qkv[..., width:]
        batch, width = query.shape[0], query.shape[-1]
        query = _split_heads(query, n_heads)
        key = _split_heads(key_value[..., :width], n_heads)
        value = _split_heads(key_value[..., width:], n_heads)
        probabilities = torch.softmax(torch.bmm(query, key.transpose(1, 2)), dim=-1)
        ctx.save_for_backward(query, key, value, probabilities)
        ctx.packed, ctx.batch = qkv is not None, batch
        return _merge_heads(torch.bmm(probabilities, value), batch)

    @staticmethod
    def backward(ctx, grad_context):
        query, key, value, probabilities = ctx.saved_tensors
        batch = ctx.batch
        width = query.shape[0] // batch * query.shape[-1]
        # Each head's gradient is copied once, straight into its slot of the packed gradient (a torch.cat
        # of merged parts copied everything twice: 5-10% of this function's time).
        if ctx.packed:
            grad_qkv = query.new_empty(batch, key.shape[1], 3 * width)
            grad_query, grad_key_value = grad_qkv[..., :width], grad_qkv[..., width:]
        else:
            grad_query = query.new_empty(batch, query.shape[1], width)
            grad_key_value = query.new_empty(batch, key.shape[1], 2 * width)
        _attention_gradient_into(grad_query, grad_key_value, grad_context, query, key, value, probabilities)
        if ctx.packed:
            return grad_qkv, None, None, None
        return None, grad_query, grad_key_value, None


def _attention_gradient_into(grad_query: torch.Tensor, grad_key_value: torch.Tensor, grad_context: torch.Tensor,
                             query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             probabilities: torch.Tensor) -> None:
    """Attention's backward for one cotangent ``grad_context`` (B, Tq, D): the gradients with respect to
    the queries (B, Tq, D) and the keys and values (B, T, 2D) written into the given views (any row
    stride); ``query``, ``key``, ``value`` (B * H, T, d) and ``probabilities`` as the forward saved them."""
    width = grad_query.shape[-1]
    n_heads = width // query.shape[-1]
    grad_context = _split_heads(grad_context.to(query.dtype), n_heads)
    grad_scores = torch.ops.aten._softmax_backward_data(
        torch.bmm(grad_context, value.transpose(1, 2)), probabilities, -1, query.dtype)
    _merge_heads_into(grad_query, torch.bmm(grad_scores, key))
    _merge_heads_into(grad_key_value[..., :width], torch.bmm(grad_scores.transpose(1, 2), query))
    _merge_heads_into(grad_key_value[..., width:], torch.bmm(probabilities.transpose(1, 2), grad_context))


@dataclass
class PreparedBlock:
    """One encoder block's frozen weights, ready for :func:`block_forward` in one precision."""

    n_heads: int
    compute_dtype: torch.dtype
    #: Queries (scaled by 1/sqrt(head_dim)), keys and values in one product: (3D, D).
    qkv: _Weights
    #: The query part alone, and the key and value weights per head (H, head_dim, D) with the value bias,
    #: in the compute dtype, for the last block's target rows (:func:`_target_rows_attention`).
    query: _Weights
    key_heads: torch.Tensor
    value_heads: torch.Tensor
    value_bias: torch.Tensor
    #: fp32 copy of the fused projection, for the first block's once-per-layer product and gradient.
    qkv_weight_fp32: torch.Tensor
    qkv_bias_fp32: torch.Tensor
    attention_output: _Weights
    attention_norm: nn.LayerNorm
    ffn_in: _Weights
    activation: Callable[[torch.Tensor], torch.Tensor]
    #: "none" or "tanh" where the activation is GELU (then :func:`block_forward_taped` applies), else None.
    gelu_approximate: str | None
    ffn_out: _Weights
    output_norm: nn.LayerNorm

    def qkv_of(self, hidden: torch.Tensor) -> torch.Tensor:
        """``hidden W_qkv^T`` in fp32, without the bias (the first block's product, once per layer)."""
        return hidden.float() @ self.qkv_weight_fp32.t()


def _gelu_approximate(module: nn.Module) -> str | None:
    """F.gelu's ``approximate`` for the family's activation module, None where it is not GELU."""
    from transformers.activations import GELUActivation, NewGELUActivation

    if type(module) is GELUActivation and getattr(module, "act", None) is F.gelu:
        return "none"
    if type(module) is NewGELUActivation:  # the tanh formula, which F.gelu(approximate="tanh") computes
        return "tanh"
    return None


def _activation(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    approximate = _gelu_approximate(module)
    if approximate is None:
        return module  # anything else: the module itself, differentiated by autograd

    def gelu(inputs: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and inputs.requires_grad:
            return _Gelu.apply(inputs, approximate)
        return F.gelu(inputs, approximate=approximate)  # F(h), F(0): no derivative to keep

    return gelu


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
            n_heads=n_heads, compute_dtype=dtype,
            qkv=_Weights.of(weight, bias, dtype),
            query=_Weights.of(weight[:hidden_size], bias[:hidden_size], dtype),
            key_heads=weight[hidden_size:2 * hidden_size].reshape(n_heads, -1, hidden_size).to(dtype).contiguous(),
            value_heads=weight[2 * hidden_size:].reshape(n_heads, -1, hidden_size).to(dtype).contiguous(),
            value_bias=bias[2 * hidden_size:].to(dtype).contiguous(),
            qkv_weight_fp32=weight.contiguous(), qkv_bias_fp32=bias.contiguous(),
            attention_output=_Weights.of(parts["attention_output"].weight, parts["attention_output"].bias, dtype),
            attention_norm=parts["attention_norm"],
            ffn_in=_Weights.of(parts["ffn_in"].weight, parts["ffn_in"].bias, dtype),
            activation=_activation(parts["activation"]), gelu_approximate=_gelu_approximate(parts["activation"]),
            ffn_out=_Weights.of(parts["ffn_out"].weight, parts["ffn_out"].bias, dtype),
            output_norm=parts["output_norm"],
        ))
    return blocks


def _bias(linear: nn.Linear) -> torch.Tensor:
    return linear.bias if linear.bias is not None else linear.weight.new_zeros(linear.out_features)


def _norm(norm: nn.LayerNorm, inputs: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(inputs, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _target_rows_attention(block: PreparedBlock, query: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Attention output (B, R, D) of R querying rows, without projecting keys and values.

    ``query``: the rows' scaled queries (B, R, D); ``hidden``: the block input (B, T, D); both in the
    compute dtype. Head h's score of token t is ``q_h . (W_k,h x_t + b_k,h)``: ``q_h W_k,h`` is one
    D-vector per row and head, and ``q_h . b_k,h`` is the same for every t, so softmax drops it. Its output
    is ``sum_t p_t (W_v,h x_t + b_v,h) = W_v,h (sum_t p_t x_t) + b_v,h`` since the p_t sum to 1.
    Autograd differentiates the products (all of R x H x T x D or smaller).
    """
    batch, n_rows, width = query.shape
    n_heads = block.n_heads
    # (B, R, H, d) x (H, d, D) -> (B, H * R, D): what each row and head looks for in the block input.
    probes = torch.einsum("brhj,hjk->bhrk", query.view(batch, n_rows, n_heads, -1), block.key_heads)
    scores = torch.bmm(probes.reshape(batch, n_heads * n_rows, width), hidden.transpose(1, 2))
    pooled = torch.bmm(torch.softmax(scores, dim=-1), hidden)  # (B, H * R, D)
    context = torch.einsum("bhrk,hjk->brhj", pooled.view(batch, n_heads, n_rows, width), block.value_heads)
    return context.reshape(batch, n_rows, width) + block.value_bias


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
        context = _target_rows_attention(block, block.query(hidden[:, rows], dtype), hidden.to(dtype))
    else:
        qkv = block.qkv(hidden, dtype) if qkv is None else qkv.to(dtype)
        if rows is None:
            context = _Attention.apply(qkv, None, None, block.n_heads)
        else:
            context = _Attention.apply(None, qkv[:, rows, :width], qkv[..., width:], block.n_heads)
    if rows is not None:
        hidden = hidden[:, rows]
    attended = _norm(block.attention_norm, block.attention_output(context, torch.float32) + hidden)
    inner = block.activation(block.ffn_in(attended, dtype))
    return _norm(block.output_norm, block.ffn_out(inner, torch.float32) + attended)


# ---- the taped forward and the backward of several cotangents at once --------------------------------------
@dataclass
class BlockTape:
    """What :func:`block_backward` needs of one forward of a block (:func:`block_forward_taped`): the
    tensors autograd would have saved, held by the caller instead of a graph."""

    query: torch.Tensor  #: (B * H, T, d), compute dtype, like key, value and probabilities (B * H, T, T)
    key: torch.Tensor
    value: torch.Tensor
    probabilities: torch.Tensor
    #: Inputs of the two LayerNorms (fp32) with their means and reciprocal deviations.
    attention_sum: torch.Tensor
    attention_mean: torch.Tensor
    attention_rstd: torch.Tensor
    output_sum: torch.Tensor
    output_mean: torch.Tensor
    output_rstd: torch.Tensor
    #: GELU's derivative at the feed-forward's inner layer (B, T, F), compute dtype.
    derivative: torch.Tensor


def block_forward_taped(block: PreparedBlock, hidden: torch.Tensor, *,
                        qkv: torch.Tensor | None = None) -> tuple[torch.Tensor, BlockTape]:
    """:func:`block_forward` (all rows) outside autograd, with the tape :func:`block_backward` reads.

    Only for blocks whose activation is GELU (``block.gelu_approximate`` set). ``qkv``: as in
    :func:`block_forward`, in the compute dtype.
    """
    dtype = block.compute_dtype
    width, n_heads = hidden.shape[-1], block.n_heads
    qkv = block.qkv.untracked(hidden, dtype) if qkv is None else qkv.to(dtype)
    query = _split_heads(qkv[..., :width], n_heads)
    key = _split_heads(qkv[..., width:2 * width], n_heads)
    value = _split_heads(qkv[..., 2 * width:], n_heads)
    probabilities = torch.softmax(torch.bmm(query, key.transpose(1, 2)), dim=-1)
    context = _merge_heads(torch.bmm(probabilities, value), hidden.shape[0])
    attention_sum = block.attention_output.untracked(context, torch.float32).add_(hidden)
    attended, attention_mean, attention_rstd = _norm_with_stats(block.attention_norm, attention_sum)
    inner = block.ffn_in.untracked(attended, dtype)
    derivative = torch.ops.aten.gelu_backward(torch.ones_like(inner), inner, approximate=block.gelu_approximate)
    inner = F.gelu(inner, approximate=block.gelu_approximate)
    output_sum = block.ffn_out.untracked(inner, torch.float32).add_(attended)
    output, output_mean, output_rstd = _norm_with_stats(block.output_norm, output_sum)
    return output, BlockTape(query, key, value, probabilities, attention_sum, attention_mean, attention_rstd,
                             output_sum, output_mean, output_rstd, derivative)


def block_backward(block: PreparedBlock, tape: BlockTape,
                   grad_output: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The backward of one taped forward for several cotangents (the start and the end target) at once.

    ``grad_output``: one fp32 (B, T, D) cotangent of the block's output per target. Returns the gradient
    with respect to the fused projection, stacked (K, B, T, 3D) in the compute dtype, and per target the
    gradient along the residual branch (fp32 (B, T, D)); the block input's gradient is their sum through
    the projection (:func:`block_input_gradient`). The matrix products take all targets' rows at once (one
    product of 2 x the rows instead of two), the cotangents are cast while they are stacked into the
    product input, and no autograd graph is built or walked.
    """
    dtype = block.compute_dtype
    grad_attended = _norm_backward(block.output_norm, grad_output, tape.output_sum, tape.output_mean,
                                   tape.output_rstd)
    grad_inner = block.ffn_out.input_gradient(_stacked(grad_attended, dtype), dtype).mul_(tape.derivative)
    grad_from_ffn = block.ffn_in.input_gradient(grad_inner, dtype)
    del grad_inner
    # In place: torch's out-of-place add of fp32 and bf16 is slower than a cast and an add.
    grad_attended = [grad.add_(grad_from_ffn[target]) for target, grad in enumerate(grad_attended)]  # fp32
    grad_sum = _norm_backward(block.attention_norm, grad_attended, tape.attention_sum, tape.attention_mean,
                              tape.attention_rstd)
    grad_context = block.attention_output.input_gradient(_stacked(grad_sum, dtype), dtype)
    width = grad_context.shape[-1]
    grad_qkv = grad_context.new_empty(*grad_context.shape[:-1], 3 * width)
    for target in range(len(grad_output)):
        _attention_gradient_into(grad_qkv[target, ..., :width], grad_qkv[target, ..., width:], grad_context[target],
                                 tape.query, tape.key, tape.value, tape.probabilities)
    return grad_qkv, grad_sum


def block_input_gradient(block: PreparedBlock, grad_qkv: torch.Tensor,
                         grad_residual: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per target, the gradient with respect to the block's input (fp32) from :func:`block_backward`'s parts."""
    through_projection = block.qkv.input_gradient(grad_qkv, block.compute_dtype)
    return [grad.add_(through_projection[target]) for target, grad in enumerate(grad_residual)]


def _stacked(tensors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    """(K, *shape) in ``dtype``: the per-target tensors copied (and cast) into one product input."""
    out = tensors[0].new_empty(len(tensors), *tensors[0].shape, dtype=dtype)
    for target, tensor in enumerate(tensors):
        out[target].copy_(tensor)
    return out


def _norm_with_stats(norm: nn.LayerNorm, inputs: torch.Tensor):
    return torch.native_layer_norm(inputs, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _norm_backward(norm: nn.LayerNorm, grads: list[torch.Tensor], inputs: torch.Tensor, mean: torch.Tensor,
                   rstd: torch.Tensor) -> list[torch.Tensor]:
    """LayerNorm's input gradient per cotangent (torch's fused kernel, which takes one cotangent)."""
    return [torch.ops.aten.native_layer_norm_backward(grad, inputs, norm.normalized_shape, mean, rstd, norm.weight,
                                                      norm.bias, [True, False, False])[0] for grad in grads]
