"""Tensor core of layer-wise DeepLIFT with exact summation-to-delta on transformer blocks.

DeepLIFT explains ``F(x) - F(x')`` (input against a reference) with *multipliers* ``m`` such that
``sum(m * (x - x')) == F(x) - F(x')``. Linear maps pass multipliers back unchanged, so a network made of
linear maps and of operations whose difference is written exactly as a linear map of their inputs'
differences keeps the sum exact through any depth. The rules (docs/deeplift.md has the reasoning):

* **Rescale** for every elementwise nonlinearity ``y = f(x)`` (GELU, tanh, erf, exp, the reciprocal
  and square roots inside softmax and LayerNorm): ``m = (f(x) - f(x')) / (x - x')``, and ``f'`` at the
  midpoint where the two are equal.
* **Product** for every product of two activations (``a * b``, ``a @ b``: attention scores ``q k^T``,
  attention weights times values, LayerNorm's centred input times its inverse deviation): the
  symmetric split ``Δ(ab) = Δa · (b + b')/2 + (a + a')/2 · Δb``, exact because products are bilinear
  (it is the Shapley value of the two factors).
* **softmax** and **LayerNorm** are not elementwise, so they are written as the operations above:
  ``exp(u - log(sum(exp(u))))`` with ``u = x - c`` and ``c`` the same detached constant for input and
  reference (Rescales only), and ``(x - mean) * (var + eps)^(-1/2) * gamma + beta``; both in float64,
  so that the large, cancelling terms of a reference with a tiny deviation (e.g. a zero hidden state)
  are combined before the result returns to fp32.

Input and reference run as one batch ``[inputs; references]`` (first half, second half of dim 0)
through the model's own modules; a ``TorchFunctionMode`` replaces each of the operations above by its
rule when an operand is an activation (a tensor that requires grad: the weights are frozen), so every
architecture family and both transformers 4.x and 5.x (eager or SDPA attention) are served without a
re-implementation of their blocks. Backward from the input half's target gives the multipliers of
every hidden state below it in one pass; the reference half receives no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..errors import BertInsightInputError

#: |x - x'| at or below this (relative to |x| + |x'|, plus a tiny absolute floor) takes the midpoint
#: derivative instead of the difference quotient, whose rounding error grows as 1 / |x - x'|.
RESCALE_TOLERANCE = 1e-6


def _halves(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = tensor.shape[0] // 2
    return tensor[:n], tensor[n:]


def _with_zero_reference_grad(grad_half: torch.Tensor) -> torch.Tensor:
    return torch.cat([grad_half, torch.zeros_like(grad_half)])


class _Rescale(torch.autograd.Function):
    """``y = f(x)`` elementwise; backward multiplies by the difference quotient of the two halves."""

    @staticmethod
    def forward(ctx, x, function):
        y = function(x)
        x_in, x_ref = _halves(x)
        y_in, y_ref = _halves(y)
        dx = x_in - x_ref
        close = dx.abs() <= RESCALE_TOLERANCE * (x_in.abs() + x_ref.abs()) + 1e-30
        multiplier = (y_in - y_ref) / torch.where(close, torch.ones_like(dx), dx)
        if bool(close.any()):
            with torch.enable_grad():
                middle = ((x_in + x_ref) / 2).detach().requires_grad_(True)
                (slope,) = torch.autograd.grad(function(middle).sum(), middle)
            multiplier = torch.where(close, slope, multiplier)
        ctx.save_for_backward(multiplier)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        (multiplier,) = ctx.saved_tensors
        return _with_zero_reference_grad(_halves(grad_output)[0] * multiplier), None


class _Product(torch.autograd.Function):
    """``a * b`` or ``a @ b`` of two activations with the symmetric (Shapley) split of the difference."""

    @staticmethod
    def forward(ctx, a, b, matmul: bool):
        y = torch.matmul(a, b) if matmul else a * b
        a_bar = sum(_halves(a)) / 2
        b_bar = sum(_halves(b)) / 2
        ctx.save_for_backward(a_bar, b_bar)
        ctx.matmul = matmul
        ctx.shapes = (_halves(a)[0].shape, _halves(b)[0].shape)
        return y

    @staticmethod
    def backward(ctx, grad_output):
        a_bar, b_bar = ctx.saved_tensors
        grad = _halves(grad_output)[0]
        if ctx.matmul:
            grad_a, grad_b = grad @ b_bar.transpose(-1, -2), a_bar.transpose(-1, -2) @ grad
        else:
            grad_a, grad_b = grad * b_bar, grad * a_bar
        shape_a, shape_b = ctx.shapes
        return (_with_zero_reference_grad(grad_a.sum_to_size(shape_a)),
                _with_zero_reference_grad(grad_b.sum_to_size(shape_b)), None)


def rescale(x: torch.Tensor, function) -> torch.Tensor:
    return _Rescale.apply(x, function)


def product(a, b, *, matmul: bool = False):
    """The product of two operands; the exact split only where both are activations."""
    if _is_activation(a) and _is_activation(b):
        return _Product.apply(a, b, matmul)
    return torch.matmul(a, b) if matmul else a * b


def _is_activation(value) -> bool:
    return isinstance(value, torch.Tensor) and value.requires_grad and not isinstance(value, torch.nn.Parameter)


# ---- the rules for composite operations ---------------------------------------------------------------
def softmax_rule(x: torch.Tensor, dim: int, dtype=None) -> torch.Tensor:
    """softmax as ``exp(u - log(sum(exp(u))))`` with ``u = x - c``: three Rescales and linear maps, no
    product, so no multiplier grows when the reference's logits sit far below the input's (a product
    ``exp(u) * (1 / sum)`` would multiply by 1 / sum of the reference, ~e^60 for logits 60 apart)."""
    out_dtype = dtype or x.dtype
    wide = x.double()
    shift = wide.detach().amax(dim, keepdim=True)
    # One constant for both halves: a different shift per half would be a difference no input explains.
    shift = torch.maximum(*_halves(shift)).repeat(2, *([1] * (x.dim() - 1)))
    shifted = wide - shift
    log_total = rescale(rescale(shifted, torch.exp).sum(dim, keepdim=True), torch.log)
    return rescale(shifted - log_total, torch.exp).to(out_dtype)


def layer_norm_rule(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> torch.Tensor:
    dims = tuple(range(-len(tuple(normalized_shape)), 0))
    wide = x.double()
    centred = wide - wide.mean(dims, keepdim=True)
    variance = rescale(centred, torch.square).mean(dims, keepdim=True)
    normalised = product(centred, rescale(variance + eps, torch.rsqrt)).to(x.dtype)
    if weight is not None:
        normalised = normalised * weight
    if bias is not None:
        normalised = normalised + bias
    return normalised


def attention_rule(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                   enable_gqa=False) -> torch.Tensor:
    """``scaled_dot_product_attention`` written as products and a softmax (eval: no dropout)."""
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeat, -3), value.repeat_interleave(repeat, -3)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = product(query, key.transpose(-2, -1), matmul=True) * scale
    length_q, length_k = query.shape[-2], key.shape[-2]
    if is_causal:
        allowed = torch.ones(length_q, length_k, dtype=torch.bool, device=query.device).tril()
        attn_mask = allowed if attn_mask is None else attn_mask & allowed
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, -1e30)
        else:
            scores = scores + attn_mask
    return product(softmax_rule(scores, -1), value, matmul=True)


def _elementwise(function):
    return lambda x, *args, **kwargs: rescale(x, lambda t: function(t, *args, **kwargs))


def _softmax_call(x, dim=None, _stacklevel=3, dtype=None):
    return softmax_rule(x, -1 if dim is None else dim, dtype)


def _divide(a, b, *args, **kwargs):
    if args or kwargs:  # rounding modes are not differentiable divisions
        return torch.div(a, b, *args, **kwargs)
    if _is_activation(b):
        return product(a, rescale(b, torch.reciprocal))
    return a / b


def _reverse_divide(b, a):  # a / b with a a number
    return a * rescale(b, torch.reciprocal)


_ELEMENTWISE = {
    F.gelu: F.gelu, torch.tanh: torch.tanh, torch.Tensor.tanh: torch.tanh, torch.erf: torch.erf,
    torch.Tensor.erf: torch.erf, torch.exp: torch.exp, torch.Tensor.exp: torch.exp, torch.sigmoid: torch.sigmoid,
    torch.Tensor.sigmoid: torch.sigmoid, F.silu: F.silu, F.relu: F.relu, torch.relu: torch.relu,
    torch.Tensor.relu: torch.relu, torch.sqrt: torch.sqrt, torch.Tensor.sqrt: torch.sqrt, torch.rsqrt: torch.rsqrt,
    torch.Tensor.rsqrt: torch.rsqrt, torch.reciprocal: torch.reciprocal, torch.Tensor.reciprocal: torch.reciprocal,
    torch.pow: torch.pow, torch.Tensor.pow: torch.pow, torch.Tensor.__pow__: torch.pow, torch.square: torch.square,
    torch.Tensor.square: torch.square, F.softplus: F.softplus, F.elu: F.elu, F.mish: F.mish,
}

_RULES = {
    **{op: _elementwise(function) for op, function in _ELEMENTWISE.items()},
    torch.matmul: lambda a, b: product(a, b, matmul=True),
    torch.Tensor.matmul: lambda a, b: product(a, b, matmul=True),
    torch.Tensor.__matmul__: lambda a, b: product(a, b, matmul=True),
    torch.bmm: lambda a, b: product(a, b, matmul=True),
    torch.mul: lambda a, b: product(a, b),
    torch.Tensor.mul: lambda a, b: product(a, b),
    torch.Tensor.__mul__: lambda a, b: product(a, b),
    torch.Tensor.__rmul__: lambda a, b: product(b, a),
    torch.div: _divide, torch.Tensor.div: _divide, torch.Tensor.__truediv__: _divide,
    torch.true_divide: _divide, torch.Tensor.__rtruediv__: _reverse_divide,
    torch.softmax: _softmax_call, torch.Tensor.softmax: _softmax_call, F.softmax: _softmax_call,
    F.layer_norm: layer_norm_rule,
    F.scaled_dot_product_attention: attention_rule,
}

#: Operations that are not linear in an activation and have no rule: a forward that meets one on an
#: activation is refused rather than given a silently inexact answer.
_REFUSED = {torch.einsum, torch.Tensor.__pow__, torch.amax, torch.max, torch.Tensor.max, torch.log,
            torch.Tensor.log, torch.baddbmm, torch.addmm, F.log_softmax, torch.log_softmax, torch.Tensor.abs,
            torch.abs, torch.Tensor.__abs__, torch.sign, torch.Tensor.__and__, torch.norm, torch.Tensor.norm}
_REFUSED -= set(_RULES)


class DeepLiftMode(TorchFunctionMode):
    """While active, the DeepLIFT rules replace the operations they cover on activations."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = _RULES.get(func)
        if rule is not None or func in _REFUSED:
            operands = list(args) + list(kwargs.values())
            if any(_is_activation(operand) for operand in operands):
                if rule is None:
                    raise BertInsightInputError(
                        f"layer_deeplift has no exact rule for {getattr(func, '__name__', func)} on activations, "
                        "which this model's forward uses; attribute it with layer_ig instead.")
                return rule(*args, **kwargs)
        return func(*args, **kwargs)


def deeplift(forward, inputs: torch.Tensor, references: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepLIFT contributions of ``inputs`` (against ``references``, same shape, batch first) to the
    scalar outputs ``forward(batch)`` returns per example, for any ``forward`` built from the covered
    operations. Returns ``(contributions, output_differences)``; the contributions of each example sum to
    its output difference. The weights of ``forward`` must not require gradients."""
    n = inputs.shape[0]
    stacked = torch.cat([inputs, references]).detach().requires_grad_(True)
    with torch.enable_grad(), DeepLiftMode():
        outputs = forward(stacked)
        (grad,) = torch.autograd.grad(outputs[:n].sum(), stacked)
    return (inputs - references) * grad[:n], (outputs[:n] - outputs[n:]).detach()


@dataclass
class LayerDeepLift:
    """DeepLIFT of one window: per target and layer the (T, D) contribution ``m * (h - h')``, the
    target's value at the input and at the reference, and the start / end probabilities (input)."""

    attributions: dict[tuple[str, int], torch.Tensor]
    at_input: dict[tuple[str, int], float]
    at_reference: dict[tuple[str, int], float]
    start_probabilities: torch.Tensor
    end_probabilities: torch.Tensor


def _targets(start, end, start_index, end_index, names):
    values = {"start": start[:, start_index], "end": end[:, end_index]}
    values["start+end"] = values["start"] + values["end"]
    return {name: values[name] for name in names}


def _contributions(outputs: dict, states: dict, targets, attributions, at_input, at_reference) -> None:
    """Backward from each target's input-half value to every state; contribution = Δstate x multiplier."""
    inputs = list(states.values())
    for position, name in enumerate(targets):
        value = outputs[name]
        grads = torch.autograd.grad(value[0], inputs, retain_graph=position < len(targets) - 1)
        for (layer, state), grad in zip(states.items(), grads):
            state_in, state_ref = _halves(state.detach())
            attributions[name, layer] = ((state_in - state_ref) * grad[: state_in.shape[0]])[0]
            at_input[name, layer] = float(value[0].detach())
            at_reference[name, layer] = float(value[1].detach())


def layer_deeplift_window(adapter, model, layers: list[int], input_states: list[torch.Tensor],
                          reference_states: list[torch.Tensor] | None, start_index: int, end_index: int, *,
                          targets: tuple[str, ...]) -> LayerDeepLift:
    """DeepLIFT of the target logits at each hidden state in ``layers`` for one unpadded window.

    ``input_states``: hidden states 0..max(layers) of the input (1, T, D) each. ``reference_states``:
    the same for a reference input (one pass serves every layer, the reference chain being the reference
    input's forward); None: a zero hidden state at each layer (one pass per layer, blocks l..L-1).
    Call inside ``frozen_weights``.
    """
    attributions, at_input, at_reference = {}, {}, {}
    n_blocks = adapter.num_layers(model)
    probabilities = None
    with torch.enable_grad(), DeepLiftMode():
        if reference_states is not None:
            first = min(layers)
            hidden = torch.cat([input_states[first], reference_states[first]]).requires_grad_(True)
            states = {first: hidden}
            for block in range(first, n_blocks):
                hidden = adapter.run_block(model, block, hidden, None)
                if block + 1 in layers:
                    states[block + 1] = hidden
            start, end = adapter.qa_logits(model, hidden)
            probabilities = (start, end)
            outputs = _targets(start, end, start_index, end_index, targets)
            _contributions(outputs, {layer: states[layer] for layer in layers}, targets, attributions,
                           at_input, at_reference)
        else:
            for layer in layers:
                state = input_states[layer]
                hidden = torch.cat([state, torch.zeros_like(state)]).requires_grad_(True)
                start, end = adapter.logits_from_layer(model, layer, hidden, None)
                if probabilities is None:
                    probabilities = (start, end)
                outputs = _targets(start, end, start_index, end_index, targets)
                _contributions(outputs, {layer: hidden}, targets, attributions, at_input, at_reference)
    start, end = (logits.detach()[0].float() for logits in probabilities)
    return LayerDeepLift(attributions, at_input, at_reference, start.softmax(-1), end.softmax(-1))
