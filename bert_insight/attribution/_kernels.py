"""Linear layers for the frozen-weight IG path on CPU: kernels chosen by measurement, input gradients only.

IG needs the gradient with respect to a hidden state, never with respect to a weight. On CPU torch
sends fp32 ``nn.Linear`` to MKL, which on the AMD Zen 5 and Zen 4 machines measured runs well below
oneDNN's fp32 kernels (Zen 5: 170 against 265 GFLOP/s for a 7,800 x 384 x 1,536 product) and on the
Intel Xeon with AMX measured is the faster of the two. Inside :func:`linear_kernels` every ``nn.Linear``
of the model computes ``x W^T + b`` with the kernel measured fastest for its shape (oneDNN's
``torch.ops.mkldnn._linear_pointwise`` or ``F.linear``) through an autograd function whose backward
returns only ``grad x`` (never ``grad W``), with ``W`` and ``W^T`` converted once to the compute dtype:

* ``precision="fp32"``: fp32 weights, same results as ``F.linear`` up to summation order;
* ``precision="bf16"``: bf16 weights and inputs; outputs fp32 except the feed-forward's widening
  layer, whose bf16 output goes through the activation to the next linear layer. Attention,
  residual sums and LayerNorm stay fp32, so attention keeps SDPA's fused fp32 kernel, whose backward
  is faster on CPU than its bf16 one.

The prepared blocks of :mod:`._ig_blocks` call :func:`frozen_linear` with the same measured choice
(:func:`linear_backend`, once per machine); where oneDNN's op is missing (other torch builds)
``F.linear`` runs. On GPUs
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


def _linear(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            backend: str = "onednn") -> torch.Tensor:
    flat = inputs.reshape(-1, inputs.shape[-1]).contiguous()
    if backend == "onednn" and _onednn_linear_available(weight.dtype):
        out = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
    else:
        out = torch.nn.functional.linear(flat, weight, bias)
    return out.reshape(*inputs.shape[:-1], weight.shape[0])


# ---- kernels chosen by measurement ------------------------------------------------------------------------
BACKENDS = ("onednn", "aten")
#: Rows of the products timed when choosing: a chunk of path points times a window (9-17 x 156 = 1,404-2,652
#: for 156 tokens) in the forward; the backward's products carry both targets' cotangents, twice the rows.
_CHOICE_ROWS = {"forward": 2048, "backward": 4096}
#: Timed runs per kernel, the two kernels alternating so that a drift in machine load hits both alike.
_CHOICE_REPEATS = 6
_CHOICES_FILE = "linear_kernels.json"
_choices: dict[str, str] | None = None


def _choice_key(dtype: torch.dtype, in_features: int, out_features: int, bias: bool) -> str:
    from ..device import cpu_description

    return (f"{cpu_description()} | torch {torch.__version__} | {torch.get_num_threads()} threads | "
            f"{str(dtype).removeprefix('torch.')} | {in_features}x{out_features} {'with' if bias else 'without'} bias")


def _choices_path():
    from ..models.store import cache_root

    return cache_root() / _CHOICES_FILE


def _load_choices() -> dict[str, str]:
    global _choices
    if _choices is None:
        import json

        try:
            _choices = json.loads(_choices_path().read_text())
        except (OSError, ValueError):
            _choices = {}
    return _choices


def _time_backends(dtype: torch.dtype, in_features: int, out_features: int, bias: bool) -> dict[str, float]:
    """Seconds of one ``rows x in_features -> out_features`` product per kernel, best of
    :data:`_CHOICE_REPEATS`; with ``bias``, the bias is added as the forward adds it."""
    import time

    generator = torch.Generator().manual_seed(0)
    rows = _CHOICE_ROWS["forward" if bias else "backward"]
    inputs = torch.randn(rows, in_features, generator=generator).to(dtype)
    weight = torch.randn(out_features, in_features, generator=generator).to(dtype)
    bias_values = torch.randn(out_features, generator=generator).to(dtype) if bias else None
    best = dict.fromkeys(BACKENDS, float("inf"))
    for backend in BACKENDS:  # the first run builds the kernels
        _linear(inputs, weight, bias_values, backend)
    for _ in range(_CHOICE_REPEATS):
        for backend in BACKENDS:
            start = time.perf_counter()
            _linear(inputs, weight, bias_values, backend)
            best[backend] = min(best[backend], time.perf_counter() - start)
    return best


def linear_backend(dtype: torch.dtype, in_features: int, out_features: int, bias: bool = False) -> str:
    """The faster CPU kernel for an ``in_features -> out_features`` product in ``dtype`` on this machine:
    "onednn" (``torch.ops.mkldnn._linear_pointwise``) or "aten" (``F.linear``: MKL for fp32). ``bias``:
    the forward product, which adds a bias (oneDNN fuses it, aten's ``addmm`` does not); without, the
    backward's input-gradient product (``grad W``, asked as ``out_features -> in_features``).

    Timed at first use, then remembered per CPU model, torch version, thread count, dtype, shape and bias in
    ``<cache_root>/linear_kernels.json`` (:func:`bert_insight.models.store.cache_root`). oneDNN wins on the
    AMD Zen 4 and Zen 5 machines measured so far, but the margin is a property of the machine, not of the
    library. ``$BERT_INSIGHT_LINEAR_KERNEL`` = onednn / aten forces one (tests, comparisons).
    """
    import os

    forced = os.environ.get("BERT_INSIGHT_LINEAR_KERNEL")
    if forced in BACKENDS:
        return forced
    if not _onednn_linear_available(dtype):
        return "aten"
    choices = _load_choices()
    key = _choice_key(dtype, in_features, out_features, bias)
    if key not in choices:
        times = _time_backends(dtype, in_features, out_features, bias)
        choices[key] = min(times, key=times.get)
        _save_choices(choices)
    return choices[key]


def _save_choices(choices: dict[str, str]) -> None:
    import json
    import os
    import tempfile

    path = _choices_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            json.dump(choices, file, indent=1, sort_keys=True)
        os.replace(temporary, path)
    except OSError:  # a read-only cache: measure again next process, never fail the analysis
        pass


def linear_backends(dtype: torch.dtype, in_features: int, out_features: int, bias: bool) -> tuple[str, str]:
    """:func:`linear_backend` for a layer's forward product (with its bias, if it has one) and for its
    backward's input-gradient product."""
    return (linear_backend(dtype, in_features, out_features, bias=bias),
            linear_backend(dtype, out_features, in_features))


def linear_product(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   output_dtype: torch.dtype, backend: str) -> torch.Tensor:
    """``inputs W^T + b`` in ``weight``'s dtype by ``backend``, output in ``output_dtype``; not recorded by
    autograd (:func:`frozen_linear` is the differentiable form)."""
    return _linear(inputs.to(weight.dtype), weight, bias, backend).to(output_dtype)


def linear_input_gradient(grad_output: torch.Tensor, weight_t: torch.Tensor, output_dtype: torch.dtype,
                          backend: str) -> torch.Tensor:
    """``grad_output W`` (``weight_t`` = ``W^T`` contiguous) by ``backend``: the gradient of a linear layer's
    output with respect to its input, in ``output_dtype``."""
    return _linear(grad_output.to(weight_t.dtype), weight_t, None, backend).to(output_dtype)


class _FrozenLinear(torch.autograd.Function):
    """``x W^T + b`` in ``W``'s dtype, output in ``output_dtype``; the backward gives only ``grad x``."""

    @staticmethod
    def forward(ctx, inputs, weight, weight_t, bias, output_dtype, backend, backward_backend):
        ctx.save_for_backward(weight_t)
        ctx.input_dtype, ctx.backward_backend = inputs.dtype, backward_backend
        return linear_product(inputs, weight, bias, output_dtype, backend)

    @staticmethod
    def backward(ctx, grad_output):
        (weight_t,) = ctx.saved_tensors
        grad_input = linear_input_gradient(grad_output, weight_t, ctx.input_dtype, ctx.backward_backend)
        return grad_input, None, None, None, None, None, None


def frozen_linear(inputs: torch.Tensor, weight: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None,
                  output_dtype: torch.dtype, backend: str = "onednn",
                  backward_backend: str | None = None) -> torch.Tensor:
    """``inputs W^T + b`` in ``weight``'s dtype (``weight_t`` = ``W^T`` contiguous, for the backward), output
    in ``output_dtype``, by ``backend`` and its input gradient by ``backward_backend`` (default: the same;
    :func:`linear_backend`); differentiable in ``inputs`` only."""
    return _FrozenLinear.apply(inputs, weight, weight_t, bias, output_dtype, backend, backward_backend or backend)


def _frozen_forward(weight, weight_t, bias, output_dtype, backend, backward_backend, inputs):
    return _FrozenLinear.apply(inputs, weight, weight_t, bias, output_dtype, backend, backward_backend)


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
            backend, backward_backend = linear_backends(dtype, module.in_features, module.out_features,
                                                        bias is not None)
            module.forward = functools.partial(_frozen_forward, weight, weight_t, bias, output_dtype, backend,
                                               backward_backend)
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
