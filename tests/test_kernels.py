"""The frozen-weight linear kernels of the IG path agree with torch's own nn.Linear and leave no trace."""

from __future__ import annotations

import pytest
import torch

from bert_insight.attribution import _kernels
from bert_insight.attribution._kernels import linear_kernels
from tests.conftest import tiny_qa_model

CPU = torch.device("cpu")


def output_and_input_gradient(model, hidden):
    hidden = hidden.clone().requires_grad_(True)
    output = model.bert.encoder.layer[0](hidden)
    output = output[0] if isinstance(output, tuple) else output
    weights = torch.linspace(-1, 1, output.numel()).reshape(output.shape)
    (gradient,) = torch.autograd.grad((output * weights).sum(), hidden)
    return output.detach(), gradient


@pytest.mark.parametrize("onednn", [True, False, "as dispatched"])
@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("bf16", 3e-2)])
def test_block_output_and_input_gradient_match_torch(monkeypatch, onednn, precision, tolerance):
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    if onednn is True and not _kernels._onednn_linear_available(dtype):
        pytest.skip(f"no oneDNN {precision} linear kernel on this CPU/torch build (bf16 needs AVX-512)")
    if onednn != "as dispatched":  # "as dispatched": the real probe decides, as in layer_ig
        monkeypatch.setattr(_kernels, "_onednn_linear_available", lambda dtype=None: onednn)
    model = tiny_qa_model("bert")
    hidden = torch.randn(3, 11, 32, generator=torch.Generator().manual_seed(1))
    expected_output, expected_gradient = output_and_input_gradient(model, hidden)
    with linear_kernels(model, precision, CPU):
        output, gradient = output_and_input_gradient(model, hidden)
    for ours, reference in ((output, expected_output), (gradient, expected_gradient)):
        assert ours.dtype == torch.float32
        assert float((ours - reference).abs().max()) <= tolerance * float(reference.abs().max())
    if precision == "bf16":  # really computed in bf16, not silently in fp32
        assert not torch.equal(output, expected_output)


def test_switch_is_undone_even_after_an_exception_and_nests():
    model = tiny_qa_model("bert")
    linear = model.qa_outputs
    with pytest.raises(RuntimeError, match="boom"):
        with linear_kernels(model, "fp32", CPU):
            assert "forward" in vars(linear)
            inner_forward = linear.forward
            with linear_kernels(model, "fp32", CPU):  # an enclosing switch stays in charge
                assert linear.forward is inner_forward
            assert "forward" in vars(linear)
            raise RuntimeError("boom")
    assert all("forward" not in vars(module) for module in model.modules())
    assert all(not name.startswith("_bert_insight") for module in model.modules() for name in vars(module))


def test_no_weight_gradient_flows_and_gpus_are_left_alone():
    model = tiny_qa_model("bert")
    hidden = torch.randn(2, 5, 32, requires_grad=True)
    with linear_kernels(model, "fp32", CPU):
        model.bert.encoder.layer[0](hidden)[0].sum().backward()
    assert hidden.grad is not None
    linears = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    assert all(linear.weight.grad is None and linear.bias.grad is None for linear in linears)
    with linear_kernels(model, "bf16", torch.device("meta")):  # not a CPU: nothing is switched
        assert all("forward" not in vars(module) for module in model.modules())
