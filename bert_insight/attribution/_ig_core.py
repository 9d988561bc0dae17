"""Tensor core of layer-wise Integrated Gradients: one window, one layer, start/end targets.

IG at layer ``l`` integrates the gradient of a target logit along the straight path from a zero
hidden state to hidden state ``l``. The fast path (the point of this module):

* the blocks below ``l`` run once per example without gradients (``hidden_states_once``), never once
  per interpolation step;
* only blocks ``l..L-1`` see the batch of interpolated hidden states;
* the start and end targets share one forward of that batch and differ only in the backward;
* the weights never require gradients (``frozen_weights``), so autograd records no weight branches,
  and on CPU the linear layers run the kernel measured fastest on this machine, computing input
  gradients only (:mod:`._kernels`);
* the sequence carries no padding, so the blocks run without an attention mask;
* on CPU, given prepared blocks (:mod:`._ig_blocks`), only the target rows go through the last block,
  the first block's projections are computed once per layer, and the blocks below the last run one
  backward for both targets without autograd (:func:`_prepared_layer_ig`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from ..device import MMAP_THRESHOLD
from ._ig_blocks import PreparedBlock, block_backward, block_forward, block_forward_taped, block_input_gradient
from ._kernels import linear_kernels, precision_context

#: What each target integrates: the logit of the predicted start token, of the predicted end token,
#: or their sum (what Ramnath et al.'s released code attributed).
TARGETS = ("start", "end", "start+end")
METHODS = ("riemann", "gausslegendre")
PRECISIONS = ("fp32", "bf16")

#: Autograd memory budget used to pick how many interpolation points share one forward.
DEFAULT_MEMORY_BUDGET = 1.5 * 2**30
#: fp32 on CPU: at most this many rows (path points x tokens) per forward, so a chunk's activations stay
#: in the caches. MiniLM, 156 tokens, all layers (Intel Xeon with AMX, family 6 model 167): 9 points
#: per forward 6.0-6.2 s against 7.0-7.1 s for the 25 the memory budget allows; BERT-base unchanged
#: (its products dominate). bf16 keeps the budget's chunk: its products favour more rows (9 points
#: were 5-8% slower there).
CPU_FP32_ROWS_PER_FORWARD = 1536
#: On CPU no activation of a forward is larger than glibc's heap threshold (32 MiB): larger buffers are
#: mmapped afresh on every allocation and page-faulted in on every pass. MiniLM bf16, 156 tokens (AMD
#: Zen 4, family 25 model 17): the top three layers' 50-point chunks ran softmax, its backward and the
#: first block's projections 5-7x slower per element than 25-point chunks; capped, 2-4% faster in all.
CPU_TENSOR_BYTES = MMAP_THRESHOLD


def quadrature(method: str, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Path points ``alphas`` in (0, 1] and their weights, both float64 of length ``n_steps``.

    "riemann" is captum's ``riemann_right`` (alphas k/m, k = 1..m, weights 1/m; Algorithm 1 of
    Ramnath et al.); "gausslegendre" is captum's default rule. Both come from captum's own
    ``approximation_parameters`` so the two libraries integrate at the same points.
    """
    from captum.attr._utils.approximation_methods import approximation_parameters

    if method == "riemann" and n_steps == 1:
        # captum's Riemann builders refuse one step; right Riemann with one step is alpha = 1.
        return torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    step_sizes, alphas = approximation_parameters("riemann_right" if method == "riemann" else method)
    return (torch.tensor(alphas(n_steps), dtype=torch.float64),
            torch.tensor(step_sizes(n_steps), dtype=torch.float64))


@contextmanager
def frozen_weights(model: nn.Module) -> Iterator[None]:
    """Parameters stop requiring gradients (no weight-gradient graph); state restored in ``finally``."""
    saved = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    try:
        for parameter, _ in saved:
            parameter.requires_grad_(False)
        yield
    finally:
        for parameter, requires_grad in saved:
            parameter.requires_grad_(requires_grad)


def hidden_states_once(adapter, model: nn.Module, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
                       up_to: int, *, as_float32: bool = True) -> list[torch.Tensor]:
    """Hidden states 0..``up_to`` of one unpadded sequence, shape (1, T, D) each, no gradients; fp32
    unless ``as_float32=False`` (then the model's own dtype)."""
    with torch.no_grad():
        hidden = adapter.embed(model, input_ids, token_type_ids)
        states = [hidden]
        for block_index in range(up_to):
            hidden = adapter.run_block(model, block_index, hidden, None)
            states.append(hidden)
    return [state.float() for state in states] if as_float32 else states


def auto_chunk(n_steps: int, seq_len: int, hidden_size: int, n_heads: int, n_blocks: int,
               budget: float = DEFAULT_MEMORY_BUDGET, max_rows: int | None = None,
               max_tensor_bytes: float | None = None) -> int:
    """Interpolation points per forward so autograd's saved activations stay within ``budget`` bytes;
    given ``max_rows``, the points times ``seq_len`` within ``max_rows``; given ``max_tensor_bytes``, the
    largest single activation (fp32, feed-forward width 4 x hidden or the attention maps) within it."""
    # About 24 hidden-sized fp32 tensors plus the attention probabilities are kept per token and block.
    per_point = 4.0 * seq_len * max(1, n_blocks) * (24 * hidden_size + 2 * n_heads * seq_len)
    chunk = budget // per_point
    if max_rows is not None:
        chunk = min(chunk, max_rows // seq_len)
    if max_tensor_bytes is not None:
        chunk = min(chunk, max_tensor_bytes // (4.0 * seq_len * max(4 * hidden_size, n_heads * seq_len)))
    return int(max(1, min(n_steps, chunk)))


@dataclass
class LayerIG:
    """IG of one layer for one window: per target the (T, D) attribution and the completeness terms."""

    attributions: dict[str, torch.Tensor]
    #: F(h) and F(0) per target (same precision as the path), for the completeness delta.
    at_input: dict[str, float]
    at_baseline: dict[str, float]


def _target_logits(adapter, model, layer: int, hidden: torch.Tensor, start_index: int,
                   end_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    start, end = adapter.logits_from_layer(model, layer, hidden, None)
    return start[:, start_index].float(), end[:, end_index].float()


def layer_integrated_gradients(
    adapter,
    model: nn.Module,
    layer: int,
    hidden: torch.Tensor,
    start_index: int,
    end_index: int,
    *,
    targets: tuple[str, ...],
    alphas: torch.Tensor,
    weights: torch.Tensor,
    precision: str = "fp32",
    chunk: int | None = None,
    blocks: list[PreparedBlock] | None = None,
) -> LayerIG:
    """IG of the target logits with respect to hidden state ``layer`` (``hidden``: (1, T, D)), zero baseline.

    Call inside :func:`frozen_weights`. ``chunk`` interpolation points go through blocks
    ``layer..L-1`` per forward (default: all that fit :data:`DEFAULT_MEMORY_BUDGET`, and in fp32 on CPU
    at most :data:`CPU_FP32_ROWS_PER_FORWARD` rows). ``blocks`` (from
    :func:`._ig_blocks.prepare_blocks`, in ``precision``): run the fast path (target rows only in the last
    block, the first block's projections once); None: the family's own block forward.
    """
    device = hidden.device
    hidden = hidden.detach().float()
    n_steps = len(alphas)
    separate = [target for target in ("start", "end") if target in targets or "start+end" in targets]
    if targets == ("start+end",):
        separate = []  # one backward of the summed logit is enough
    if chunk is None:
        on_cpu = device.type == "cpu"
        # The prepared blocks' backward stacks the targets' cotangents (_ig_blocks.block_backward): its widest
        # tensor holds len(separate) x the elements of one, in the compute dtype (2 or 4 bytes against the 4
        # the cap is counted in). The family's forward runs one autograd backward per target: nothing stacked.
        stacked = 1.0 if blocks is None else max(1.0, max(1, len(separate)) * (4 if precision == "fp32" else 2) / 4)
        chunk = auto_chunk(n_steps, hidden.shape[1], hidden.shape[2], adapter.num_heads(model),
                           adapter.num_layers(model) - layer,
                           max_rows=CPU_FP32_ROWS_PER_FORWARD if on_cpu and precision == "fp32" else None,
                           max_tensor_bytes=CPU_TENSOR_BYTES / stacked if on_cpu else None)
        # Even chunks (50 -> 17, 17, 16 rather than 23, 23, 4): no small, inefficient last batch.
        chunk = math.ceil(n_steps / math.ceil(n_steps / chunk))
    alphas = alphas.to(device=device, dtype=torch.float32)
    weights = weights.to(device=device, dtype=torch.float32)
    if blocks is not None and layer < len(blocks):  # hidden state L runs no block: the QA head alone
        return _prepared_layer_ig(adapter, model, blocks, layer, hidden, start_index, end_index, targets=targets,
                                  separate=separate, alphas=alphas, weights=weights, chunk=chunk)
    grad_sums = {name: torch.zeros_like(hidden[0]) for name in (separate or ["start+end"])}

    with torch.enable_grad(), linear_kernels(model, precision, device):
        for first in range(0, n_steps, chunk):
            alpha = alphas[first: first + chunk]
            weight = weights[first: first + chunk]
            path = (alpha[:, None, None] * hidden).requires_grad_(True)
            with precision_context(precision, device):
                start, end = _target_logits(adapter, model, layer, path, start_index, end_index)
            if separate:
                outputs = {"start": start, "end": end}
                for position, name in enumerate(separate):
                    (gradient,) = torch.autograd.grad(outputs[name], path, grad_outputs=weight,
                                                      retain_graph=position < len(separate) - 1)
                    grad_sums[name] += gradient.sum(0)
            else:
                (gradient,) = torch.autograd.grad(start + end, path, grad_outputs=weight)
                grad_sums["start+end"] += gradient.sum(0)
            del path, start, end

    with torch.no_grad(), linear_kernels(model, precision, device), precision_context(precision, device):
        ends = torch.cat([hidden, torch.zeros_like(hidden)])
        start, end = _target_logits(adapter, model, layer, ends, start_index, end_index)
    return _layer_ig_result(hidden, grad_sums, targets, start, end)


def _layer_ig_result(hidden: torch.Tensor, grad_sums: dict[str, torch.Tensor], targets: tuple[str, ...],
                     start: torch.Tensor, end: torch.Tensor) -> LayerIG:
    """Attributions ``h * summed gradient`` and F at the input and the baseline (``start`` / ``end``:
    the target logits at alpha = 1 and 0)."""
    if "start+end" in targets and "start+end" not in grad_sums:
        # The gradient of a sum is the sum of the gradients: no extra backward.
        grad_sums = {**grad_sums, "start+end": grad_sums["start"] + grad_sums["end"]}
    values = {"start": start, "end": end, "start+end": start + end}
    return LayerIG(
        attributions={name: hidden[0] * grad_sums[name] for name in targets},
        at_input={name: float(values[name][0]) for name in targets},
        at_baseline={name: float(values[name][1]) for name in targets},
    )


def _prepared_layer_ig(adapter, model, blocks: list[PreparedBlock], layer: int, hidden: torch.Tensor,
                       start_index: int, end_index: int, *, targets: tuple[str, ...], separate: list[str],
                       alphas: torch.Tensor, weights: torch.Tensor, chunk: int) -> LayerIG:
    """:func:`layer_integrated_gradients` on prepared blocks (the CPU fast path; see :mod:`._ig_blocks`).

    On the path ``alpha * h`` the first block's fused projection is ``alpha * (h W^T) + b`` and the
    residual branch is ``alpha * h``: both are the autograd leaves, their path-weighted gradients are summed
    over the chunks, and the gradient with respect to the hidden state is ``G_qkv W + G_residual``, one
    product per layer instead of one per path point and target. Blocks below the last run on tapes and
    their backward carries every target's cotangent at once (:func:`._ig_blocks.block_backward`) where
    their activation is GELU; otherwise autograd runs one backward per target.
    """
    last = len(blocks) - 1
    first = blocks[layer]
    rows = sorted({start_index, end_index})
    start_row, end_row = rows.index(start_index), rows.index(end_index)
    projected = first.qkv_of(hidden)  # (1, T, 3D) fp32, without the bias

    def first_projection(scale: torch.Tensor) -> torch.Tensor:
        """alpha * (h W^T) + b in one pass, written straight in the compute dtype (no fp32 copy to cast)."""
        qkv = projected.new_empty((len(scale), *projected.shape[1:]), dtype=first.compute_dtype)
        return torch.addcmul(first.qkv_bias_fp32, scale, projected, out=qkv)

    def target_logits(alpha: torch.Tensor, track: bool):
        scale = alpha[:, None, None]
        qkv = first_projection(scale).requires_grad_(track)
        residual = (scale * hidden).requires_grad_(track)
        state = block_forward(first, residual, qkv=qkv, rows=rows if layer == last else None)
        for index in range(layer + 1, last + 1):
            state = block_forward(blocks[index], state, rows=rows if index == last else None)
        start, end = adapter.qa_logits(model, state)
        return (qkv, residual), start[:, start_row].float(), end[:, end_row].float()

    names = separate or ["start+end"]
    qkv_sums = {name: torch.zeros_like(projected[0]) for name in names}
    residual_sums = {name: torch.zeros_like(hidden[0]) for name in names}
    taped = layer < last and all(block.gelu_approximate is not None for block in blocks[layer:last])

    def taped_gradients(alpha: torch.Tensor, weight: torch.Tensor) -> None:
        """One chunk: blocks ``layer..L-2`` forward on tapes, the last block and the head by autograd, then
        the blocks' backward with every target's cotangent at once (:func:`._ig_blocks.block_backward`)."""
        scale = alpha[:, None, None]
        state, tape = block_forward_taped(first, scale * hidden, qkv=first_projection(scale))
        tapes = [tape]
        for index in range(layer + 1, last):
            state, tape = block_forward_taped(blocks[index], state)
            tapes.append(tape)
        with torch.enable_grad():
            top = state.requires_grad_(True)
            start, end = adapter.qa_logits(model, block_forward(blocks[last], top, rows=rows))
            outputs = {"start": start[:, start_row].float(), "end": end[:, end_row].float()}
            outputs["start+end"] = outputs["start"] + outputs["end"]
            grads = [torch.autograd.grad(outputs[name], top, grad_outputs=weight,
                                         retain_graph=position < len(names) - 1)[0]
                     for position, name in enumerate(names)]
        del top, start, end, outputs, state
        for index in range(last - 1, layer, -1):
            grad_qkv, grad_residual = block_backward(blocks[index], tapes.pop(), grads)
            grads = block_input_gradient(blocks[index], grad_qkv, grad_residual)
        grad_qkv, grad_residual = block_backward(first, tapes.pop(), grads)
        for position, name in enumerate(names):
            qkv_sums[name] += grad_qkv[position].sum(0, dtype=torch.float32)
            residual_sums[name] += grad_residual[position].sum(0)

    if taped:
        with torch.no_grad():
            for first_step in range(0, len(alphas), chunk):
                taped_gradients(alphas[first_step: first_step + chunk], weights[first_step: first_step + chunk])
    else:
        with torch.enable_grad():
            for first_step in range(0, len(alphas), chunk):
                weight = weights[first_step: first_step + chunk]
                leaves, start, end = target_logits(alphas[first_step: first_step + chunk], True)
                outputs = {"start": start, "end": end, "start+end": start + end}
                for position, name in enumerate(names):
                    qkv_gradient, residual_gradient = torch.autograd.grad(
                        outputs[name], leaves, grad_outputs=weight, retain_graph=position < len(names) - 1)
                    qkv_sums[name] += qkv_gradient.sum(0, dtype=torch.float32)
                    residual_sums[name] += residual_gradient.sum(0)
                del leaves, start, end, outputs
    grad_sums = {name: qkv_sums[name] @ first.qkv_weight_fp32 + residual_sums[name] for name in names}

    with torch.no_grad():
        _, start, end = target_logits(torch.tensor([1.0, 0.0], device=hidden.device), False)
    return _layer_ig_result(hidden, grad_sums, targets, start, end)
