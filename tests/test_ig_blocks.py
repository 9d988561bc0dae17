"""The layer-IG fast path's blocks (attribution/_ig_blocks.py) against the families' own forward, their
attention and GELU against textbook autograd, the measured kernel choice and the heap setting."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from bert_insight import device as device_module
from bert_insight.attribution import _kernels
from bert_insight.attribution._ig_blocks import (
    _Attention, _Gelu, block_backward, block_forward, block_forward_taped, block_input_gradient, prepare_blocks)
from bert_insight.attribution._ig_core import hidden_states_once
from bert_insight.models.adapters import adapter_for
from tests.conftest import tiny_qa_model

CPU = torch.device("cpu")
FAMILIES = ["bert", "roberta", "distilbert", "albert", "electra"]


def family_states(family: str, length: int = 23):
    model = tiny_qa_model(family)
    adapter = adapter_for(model)
    torch.manual_seed(1)
    input_ids = torch.randint(5, 1000, (1, length))
    token_type_ids = torch.zeros_like(input_ids) if adapter.uses_token_type_ids else None
    states = hidden_states_once(adapter, model, input_ids, token_type_ids, adapter.num_layers(model))
    return model, adapter, states


def relative_gap(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).abs().max() / reference.double().abs().max())


@pytest.mark.parametrize("family", FAMILIES)
def test_prepared_blocks_equal_the_family_forward(family):
    model, adapter, states = family_states(family)
    blocks = prepare_blocks(adapter, model, "fp32", CPU)
    assert blocks is not None and len(blocks) == adapter.num_layers(model)
    rows = [3, 11, 17]
    with torch.no_grad():
        for layer, block in enumerate(blocks):
            batch = torch.cat([states[layer], 0.4 * states[layer]])  # two path points
            reference = torch.cat([adapter.run_block(model, layer, state[None]) for state in batch])
            assert relative_gap(block_forward(block, batch), reference) < 1e-5
            # Only some rows query: those rows' outputs, keys and values still from every row.
            assert relative_gap(block_forward(block, batch, rows=rows), reference[:, rows]) < 1e-5
            # The caller's fused projection (the first block of the IG path) gives the same block.
            qkv = block.qkv_of(batch) + block.qkv_bias_fp32
            assert relative_gap(block_forward(block, batch, qkv=qkv), reference) < 1e-5
            assert relative_gap(block_forward(block, batch, qkv=qkv, rows=rows), reference[:, rows]) < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_taped_backward_of_several_cotangents_equals_autograd(family):
    """block_backward carries the start and the end cotangent together through a taped forward; autograd
    through block_forward, one cotangent at a time, is the reference (fp32, so up to summation order)."""
    model, adapter, states = family_states(family)
    blocks = prepare_blocks(adapter, model, "fp32", CPU)
    torch.manual_seed(2)
    for layer, block in enumerate(blocks):
        assert block.gelu_approximate in ("none", "tanh")  # every tiny family uses a GELU
        batch = torch.cat([states[layer], 0.4 * states[layer]])
        cotangents = [torch.randn_like(batch) for _ in range(2)]
        with torch.no_grad():
            output, tape = block_forward_taped(block, batch)
            grad_qkv, grad_residual = block_backward(block, tape, cotangents)
            ours = block_input_gradient(block, grad_qkv, grad_residual)
        leaf = batch.clone().requires_grad_(True)
        reference = block_forward(block, leaf)
        assert relative_gap(output, reference) < 1e-5
        for cotangent, gradient in zip(cotangents, ours):
            (expected,) = torch.autograd.grad(reference, leaf, cotangent, retain_graph=True)
            assert relative_gap(gradient, expected) < 1e-5
        # The first block of the path: the caller's projection and the residual branch are the leaves.
        qkv = (block.qkv_of(batch) + block.qkv_bias_fp32).requires_grad_(True)
        residual = batch.clone().requires_grad_(True)
        reference = block_forward(block, residual, qkv=qkv)
        with torch.no_grad():
            _, tape = block_forward_taped(block, batch, qkv=qkv.detach())
            grad_qkv, grad_residual = block_backward(block, tape, cotangents)
        for target, cotangent in enumerate(cotangents):
            expected_qkv, expected_residual = torch.autograd.grad(reference, (qkv, residual), cotangent,
                                                                  retain_graph=True)
            assert relative_gap(grad_qkv[target], expected_qkv) < 1e-5
            assert relative_gap(grad_residual[target], expected_residual) < 1e-5


@pytest.mark.parametrize("family", ["bert", "albert"])
def test_bf16_blocks_stay_near_fp32(family):
    model, adapter, states = family_states(family)
    blocks = prepare_blocks(adapter, model, "bf16", CPU)
    assert blocks[0].compute_dtype == torch.bfloat16
    with torch.no_grad():
        for layer, block in enumerate(blocks):
            reference = adapter.run_block(model, layer, states[layer])
            output = block_forward(block, states[layer])
            assert output.dtype == torch.float32
            assert 0 < relative_gap(output, reference) < 5e-2  # bf16 rounding, not a different function
            # The last block's target rows, whose attention never projects keys and values.
            rows_only = block_forward(block, states[layer], rows=[2, 9])
            assert 0 < relative_gap(rows_only, reference[:, [2, 9]]) < 5e-2


def textbook_attention(query, key, value, n_heads):
    """softmax(q k^T) v per head with autograd's own backward, (B, T, D) in and out."""
    def heads(tensor):
        batch, length, width = tensor.shape
        return tensor.reshape(batch, length, n_heads, width // n_heads).transpose(1, 2)
    context = torch.softmax(heads(query) @ heads(key).transpose(-1, -2), dim=-1) @ heads(value)
    return context.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)


@pytest.mark.parametrize("rows", [None, [0, 4]])
def test_attention_and_its_gradient_equal_the_textbook(rows):
    torch.manual_seed(0)
    batch, length, width, n_heads = 3, 7, 12, 3
    qkv = torch.randn(batch, length, 3 * width, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(batch, length if rows is None else len(rows), width, dtype=torch.float64)
    query, key, value = qkv[..., :width], qkv[..., width:2 * width], qkv[..., 2 * width:]
    if rows is None:
        ours = _Attention.apply(qkv, None, None, n_heads)
    else:
        ours = _Attention.apply(None, query[:, rows], qkv[..., width:], n_heads)
        query = query[:, rows]
    reference = textbook_attention(query, key, value, n_heads)
    assert torch.allclose(ours, reference, atol=1e-12)
    (ours_grad,) = torch.autograd.grad(ours, qkv, grad)
    (reference_grad,) = torch.autograd.grad(reference, qkv, grad)
    assert torch.allclose(ours_grad, reference_grad, atol=1e-12)
    if rows is not None:  # rows that never query get gradient only through their keys and values
        assert ours_grad[:, 1, :width].abs().max() == 0


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_with_its_derivative_saved_is_gelu(approximate):
    inputs = torch.linspace(-5, 5, 41, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(_Gelu.apply(inputs, approximate), F.gelu(inputs, approximate=approximate))
    assert torch.autograd.gradcheck(lambda x: _Gelu.apply(x, approximate), (inputs,))


def test_prepare_blocks_declines_what_it_cannot_run():
    model = tiny_qa_model("bert")
    adapter = adapter_for(model)
    assert prepare_blocks(adapter, model, "fp32", torch.device("meta")) is None  # not a CPU
    model.train()
    assert prepare_blocks(adapter, model, "fp32", CPU) is None  # dropout would be skipped
    model.eval()
    model.config.position_embedding_type = "relative_key"  # transformers 4.x attention adds position terms
    assert prepare_blocks(adapter, model, "fp32", CPU) is None
    albert = tiny_qa_model("albert")
    assert prepare_blocks(adapter_for(albert), albert, "fp32", CPU) is not None
    import transformers as tf

    config = tf.AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                             num_attention_heads=4, intermediate_size=64, inner_group_num=2)
    two_per_group = tf.AlbertForQuestionAnswering(config).eval()
    assert prepare_blocks(adapter_for(two_per_group), two_per_group, "fp32", CPU) is None


# ---- kernels chosen by measurement ---------------------------------------------------------------------
@pytest.fixture
def fresh_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("BERT_INSIGHT_CACHE", str(tmp_path))
    monkeypatch.delenv("BERT_INSIGHT_LINEAR_KERNEL", raising=False)
    monkeypatch.setattr(_kernels, "_choices", None)
    return tmp_path


def test_the_faster_kernel_is_chosen_once_and_remembered(fresh_choices, monkeypatch):
    timed = []

    def fake_timing(dtype, in_features, out_features, bias):
        timed.append((in_features, out_features, bias))
        # aten "faster" for the forward product with its bias, oneDNN for the backward's product
        return {"onednn": 2.0, "aten": 1.0} if bias else {"onednn": 1.0, "aten": 2.0}

    monkeypatch.setattr(_kernels, "_time_backends", fake_timing)
    monkeypatch.setattr(_kernels, "_onednn_linear_available", lambda dtype=torch.float32: True)
    assert _kernels.linear_backend(torch.float32, 24, 48, bias=True) == "aten"
    assert _kernels.linear_backend(torch.float32, 24, 48, bias=True) == "aten"
    assert _kernels.linear_backend(torch.float32, 48, 24) == "onednn"
    assert timed == [(24, 48, True), (48, 24, False)]  # each measured once
    saved = json.loads((fresh_choices / "linear_kernels.json").read_text())
    assert len(saved) == 2
    key = next(key for key in saved if key.endswith("with bias"))
    assert device_module.cpu_description() in key and torch.__version__ in key and "24x48" in key
    # A new process reads the file instead of measuring again.
    monkeypatch.setattr(_kernels, "_choices", None)
    assert _kernels.linear_backend(torch.float32, 24, 48, bias=True) == "aten" and len(timed) == 2
    monkeypatch.setenv("BERT_INSIGHT_LINEAR_KERNEL", "onednn")
    assert _kernels.linear_backend(torch.float32, 24, 48, bias=True) == "onednn"


def test_the_kernel_timing_measures_both_kernels_on_the_asked_product(monkeypatch):
    calls = []
    real = _kernels._linear
    monkeypatch.setattr(_kernels, "_linear", lambda inputs, weight, bias, backend: calls.append(
        (backend, tuple(inputs.shape), tuple(weight.shape), bias is not None)) or real(inputs, weight, bias, backend))
    monkeypatch.setattr(_kernels, "_CHOICE_ROWS", {"forward": 8, "backward": 16})
    times = _kernels._time_backends(torch.float32, 24, 48, bias=True)
    assert set(times) == set(_kernels.BACKENDS) and all(0 < value < float("inf") for value in times.values())
    assert {call[1:] for call in calls} == {((8, 24), (48, 24), True)}
    assert [call[0] for call in calls] == list(_kernels.BACKENDS) * (1 + _kernels._CHOICE_REPEATS)  # alternating


@pytest.mark.parametrize("backend", _kernels.BACKENDS)
def test_both_kernels_compute_the_linear_layer_and_its_input_gradient(backend):
    torch.manual_seed(0)
    inputs = torch.randn(2, 9, 24, requires_grad=True)
    weight, bias = torch.randn(40, 24), torch.randn(40)
    other = next(name for name in _kernels.BACKENDS if name != backend)
    ours = _kernels.frozen_linear(inputs, weight, weight.t().contiguous(), bias, torch.float32, backend, other)
    reference = F.linear(inputs, weight, bias)
    assert torch.allclose(ours, reference, atol=1e-5)
    grad = torch.randn_like(reference)
    assert torch.allclose(torch.autograd.grad(ours, inputs, grad)[0], torch.autograd.grad(reference, inputs, grad)[0],
                          atol=1e-5)


def test_reused_heap_restores_the_thresholds_and_trims_even_after_an_error(monkeypatch):
    calls = []
    monkeypatch.setattr(device_module, "_MALLOPT", lambda parameter, value: calls.append((parameter, value)))
    monkeypatch.setattr(device_module, "_MALLOC_TRIM", lambda pad: calls.append(("trim", pad)))
    with pytest.raises(RuntimeError, match="inside"):
        with device_module.reused_heap():
            assert calls == [(-3, 32 * 2**20), (-1, 2**31 - 1)]  # mmap threshold up, trimming off
            raise RuntimeError("inside")
    assert calls[2:] == [(-1, 64 * 2**20), ("trim", 0)]


def test_nested_reused_heaps_trim_once_at_the_outermost_exit(monkeypatch):
    calls = []
    monkeypatch.setattr(device_module, "_MALLOPT", lambda parameter, value: calls.append((parameter, value)))
    monkeypatch.setattr(device_module, "_MALLOC_TRIM", lambda pad: calls.append(("trim", pad)))
    with device_module.reused_heap():
        for _ in range(3):  # e.g. one layer_ig call per example inside a caller's reused_heap
            with device_module.reused_heap():
                pass
        assert calls == [(-3, 32 * 2**20), (-1, 2**31 - 1)]  # inner exits neither trim nor restore
    assert calls[2:] == [(-1, 64 * 2**20), ("trim", 0)]
    with device_module.reused_heap():  # and the next outermost use sets the thresholds again
        pass
    assert calls[4:] == [(-3, 32 * 2**20), (-1, 2**31 - 1), (-1, 64 * 2**20), ("trim", 0)]
