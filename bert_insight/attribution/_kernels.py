"""Linear layers for the frozen-weight IG path on CPU: oneDNN kernels, input gradients only.

IG needs the gradient with respect to a hidden state, never with respect to a weight, and on CPU
torch sends fp32 ``nn.Linear`` to MKL, which runs well below oneDNN's fp32 kernels (on the 2-core
Zen 5 development machine: 170 against 265 GFLOP/s for a 7,800 x 384 x 1,536 product). Inside
:func:`linear_kernels` every ``nn.Linear`` of the model computes ``x W^T + b`` with oneDNN
(``torch.ops.mkldnn._linear_pointwise``) through an autograd function whose backward returns only
``grad x`` (never ``grad W``), with ``W`` and ``W^T`` converted once to the compute dtype:

* ``precision="fp32"``: fp32 weights, same results as ``F.linear`` up to summation order;
* ``precision="bf16"``: bf16 weights and inputs; outputs fp32 except the feed-forward's widening
  layer, whose bf16 output goes through the activation to the next linear layer. Attention,
  residual sums and LayerNorm stay fp32, so attention keeps SDPA's fused fp32 kernel, whose backward
  is faster on CPU than its bf16 one.

Where oneDNN's op is missing (other torch builds) the same function runs ``F.linear``. On GPUs
nothing is replaced: ``precision="bf16"`` uses autocast there (:func:`precision_context`).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch
from torch import nn

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@functools.cache
def _onednn_linear_available(dtype: torch.dtype = torch.float32) -> bool:
    """Whether oneDNN's linear kernel runs in ``dtype`` here: its bf16 kernel needs AVX-512 (an AVX2-only
    CPU such as AMD Zen 3 has no bf16 primitive, and torch raises), so probe each dtype once."""
    try:
        op = torch.ops.mkldnn._linear_pointwise
        probe = torch.randn(3, 4).to(dtype)
        weight = torch.randn(5, 4).to(dtype)
        expected = (probe.float() @ weight.float().T)
        return bool(torch.backends.mkldnn.is_available()
                    and torch.allclose(op(probe, weight, None, "none", [], "").float(), expected, atol=5e-2))
    except (AttributeError, RuntimeError):
        return False


def _linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    flat = inputs.reshape(-1, inputs.shape[-1]).contiguous()
    if _onednn_linear_available(weight.dtype):
        out = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
    else:
        out = torch.nn.functional.linear(flat, weight, bias)
    return out.reshape(*inputs.shape[:-1], weight.shape[0])


class _FrozenLinear(torch.autograd.Function):
    """``x W^T + b`` in ``W``'s dtype, output in ``output_dtype``; the backward gives only ``grad x``."""

    @staticmethod
    def forward(ctx, inputs, weight, weight_t, bias, output_dtype):
        ctx.save_for_backward(weight_t)
        ctx.input_dtype = inputs.dtype
        return _linear(inputs.to(weight.dtype), weight, bias).to(output_dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (weight_t,) = ctx.saved_tensors
        grad_input = _linear(grad_output.to(weight_t.dtype), weight_t, None).to(ctx.input_dtype)
        return grad_input, None, None, None, None


def frozen_linear(inputs: torch.Tensor, weight: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None,
                  output_dtype: torch.dtype) -> torch.Tensor:
    """``inputs W^T + b`` in ``weight``'s dtype (``weight_t`` = ``W^T`` contiguous, for the backward), output
    in ``output_dtype``; differentiable in ``inputs`` only."""
    return _FrozenLinear.apply(inputs, weight, weight_t, bias, output_dtype)


def _frozen_forward(weight, weight_t, bias, output_dtype, inputs):
    return _FrozenLinear.apply(inputs, weight, weight_t, bias, output_dtype)


_MARK = "_bert_insight_linear_dtype"


@contextmanager
def linear_kernels(model: nn.Module, precision: str, device: torch.device) -> Iterator[None]:
    """On CPU, every ``nn.Linear`` of ``model`` runs :class:`_FrozenLinear` in ``precision`` until exit.

    Re-entrant: modules already switched (by an enclosing call) stay as they are. The modules'
    own ``forward`` comes back in ``finally``. Only for frozen weights: no weight gradients flow.
    """
    if device.type != "cpu":
        yield
        return
    dtype = _DTYPES[precision]
    switched = []
    try:
        for module in model.modules():
            if not isinstance(module, nn.Linear) or _MARK in module.__dict__:
                continue
            weight = module.weight.detach().to(dtype).contiguous()
            weight_t = weight.t().contiguous()
            bias = None if module.bias is None else module.bias.detach().to(dtype)
            # A widening layer (the feed-forward's first) hands bf16 to the activation and the narrowing
            # layer after it: four casts of the widest tensor fewer per block and pass. Every other
            # output is fp32, so attention inputs, residual sums and LayerNorm stay fp32.
            output_dtype = dtype if module.out_features > module.in_features else torch.float32
            module.forward = functools.partial(_frozen_forward, weight, weight_t, bias, output_dtype)
            setattr(module, _MARK, dtype)
            switched.append(module)
        yield
    finally:
        for module in switched:
            del module.forward
            delattr(module, _MARK)


def precision_context(precision: str, device: torch.device):
    """bf16 on GPUs: the blocks' forward under autocast. On CPU :func:`linear_kernels` does bf16."""
    if precision == "bf16" and device.type != "cpu":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
