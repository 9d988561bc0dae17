"""layer_deeplift: summation-to-delta on every family, captum's DeepLift where captum is exact, the
linear-network identities, the rules one by one, the output view, cache and bad input."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from bert_insight.attribution._deeplift_core import DeepLiftMode, deeplift, layer_norm_rule, softmax_rule
from bert_insight.attribution.layer_deeplift import layer_deeplift
from bert_insight.attribution.layer_ig import layer_ig
from bert_insight.errors import BertInsightInputError
from bert_insight.models.handle import from_model
from bert_insight.qa import analysis_windows
from tests.conftest import tiny_qa_model
from tests.test_layer_ig import WINDOW, make_examples

FAMILIES = ["bert", "roberta", "distilbert", "albert", "electra"]
ALL_TARGETS = ("start", "end", "start+end")


def handle_of(family: str, tokenizer, attention: str = "eager", dtype=torch.float32):
    model = tiny_qa_model(family, attention=attention).to(dtype)
    return from_model(model, tokenizer, name=f"tiny-{family}-{attention}", device="cpu")


# ---- summation-to-delta ------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
@pytest.mark.parametrize("baseline", ["zero", "reference_input"])
def test_scores_add_up_to_the_output_change_on_every_family(family, attention, baseline, tokenizer):
    import transformers

    if family == "electra" and attention == "sdpa" and int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4.x has no SDPA attention for ELECTRA")
    handle = handle_of(family, tokenizer, attention)
    _, convergence, _ = layer_deeplift(handle, make_examples(2), targets=ALL_TARGETS, baseline=baseline,
                                       progress=False, **WINDOW)
    assert len(convergence) == 2 * (handle.num_layers + 1) * 3
    # Relative to the output change, floored at 0.01 (a tenth of these tiny models' logits): a change
    # that is ~0 by chance makes any relative gap ill-conditioned, whatever computes the sum.
    change = (convergence["delta"] / convergence["relative_delta"]).abs()
    assert (convergence["delta"].abs() <= 1e-4 * change.clip(lower=0.01)).all()
    assert convergence["relative_delta"].median() < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_in_float64_the_gap_is_float64_rounding_so_every_rule_is_exact(family, tokenizer):
    # fp32 rounding could hide a small inexact rule; in float64 an inexact rule would stand out by 1e6.
    handle = handle_of(family, tokenizer, dtype=torch.float64)
    for baseline in ("zero", "reference_input"):
        _, convergence, _ = layer_deeplift(handle, make_examples(1), targets=ALL_TARGETS, baseline=baseline,
                                           progress=False, **WINDOW)
        assert convergence["relative_delta"].max() < 1e-10


def test_bf16_gap_is_reported_not_hidden(tokenizer):
    handle = handle_of("bert", tokenizer)
    _, exact, _ = layer_deeplift(handle, make_examples(1), progress=False, **WINDOW)
    _, rounded, _ = layer_deeplift(handle, make_examples(1), precision="bf16", progress=False, **WINDOW)
    assert rounded["relative_delta"].max() > 100 * exact["relative_delta"].max()


# ---- captum where captum is exact; the linear identities ------------------------------------------------------
def small_network(final: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(3)
    layers = [nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 5), nn.Sigmoid(), nn.Linear(5, 1)]
    network = nn.Sequential(*layers).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def test_equals_captum_deeplift_on_a_network_of_operations_captum_supports():
    from captum.attr import DeepLift

    network = small_network()
    inputs, references = torch.randn(4, 6), torch.randn(4, 6)
    ours, change = deeplift(lambda batch: network(batch)[:, 0], inputs, references)
    for parameter in network.parameters():
        parameter.requires_grad_(True)  # captum needs a graph through the weights' users
    theirs, delta = DeepLift(network).attribute(inputs, baselines=references, target=0, return_convergence_delta=True)
    assert torch.allclose(ours, theirs.detach(), atol=1e-6, rtol=1e-5)
    assert torch.allclose(ours.sum(1), change, atol=1e-5) and float(delta.abs().max()) < 1e-5


def test_on_a_linear_network_deeplift_is_gradient_times_input_and_integrated_gradients():
    from captum.attr import InputXGradient, IntegratedGradients

    torch.manual_seed(4)
    network = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3), nn.Linear(3, 1)).eval()
    inputs = torch.randn(3, 5)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    ours, _ = deeplift(lambda batch: network(batch)[:, 0], inputs, torch.zeros_like(inputs))
    gradient_x_input = InputXGradient(network).attribute(inputs.clone().requires_grad_(True), target=0)
    integrated = IntegratedGradients(network).attribute(inputs, target=0, n_steps=4)
    assert torch.allclose(ours, gradient_x_input.detach(), atol=1e-6)
    assert torch.allclose(ours, integrated.detach(), atol=1e-6)


# ---- the rules, each against what it must be ----------------------------------------------------------------
def test_product_split_is_the_shapley_value_of_the_two_factors():
    # f(x1, x2) = (2 x1) * (3 x2): the two-player Shapley value of x1 is (f(x1, x2') ... averaged):
    # phi_1 = 1/2 [f(x1, x2') - f(x1', x2')] + 1/2 [f(x1, x2) - f(x1', x2)].
    def f(batch):
        return (2 * batch[:, :1]) * (3 * batch[:, 1:])

    x, reference = torch.tensor([[1.5, -2.0]]), torch.tensor([[0.5, 1.0]])
    contributions, change = deeplift(lambda batch: f(batch)[:, 0], x, reference)

    def value(x1, x2):
        return float(f(torch.tensor([[x1, x2]]))[0, 0])

    (x1, x2), (r1, r2) = x[0].tolist(), reference[0].tolist()
    shapley_1 = 0.5 * (value(x1, r2) - value(r1, r2)) + 0.5 * (value(x1, x2) - value(r1, x2))
    shapley_2 = 0.5 * (value(r1, x2) - value(r1, r2)) + 0.5 * (value(x1, x2) - value(x1, r2))
    assert contributions[0].tolist() == pytest.approx([shapley_1, shapley_2])
    assert float(change[0]) == pytest.approx(value(x1, x2) - value(r1, r2))


def test_softmax_and_layer_norm_rules_compute_what_torch_computes_and_add_up():
    torch.manual_seed(5)
    # A reference 60 logits below the input: exp would underflow a per-half shift in fp32.
    x, reference = torch.randn(2, 7) * 4, torch.randn(2, 7) - 60
    with DeepLiftMode():
        stacked = torch.cat([x, reference]).requires_grad_(True)
        assert torch.allclose(torch.softmax(stacked, -1), softmax_rule(stacked.detach(), -1), atol=1e-7)
    for index in range(7):
        contributions, change = deeplift(lambda batch: torch.softmax(batch, -1)[:, index], x, reference)
        assert torch.isfinite(contributions).all()
        assert torch.allclose(contributions.sum(1), change, atol=1e-6)
    weight, bias = torch.randn(7), torch.randn(7)
    normalised = layer_norm_rule(torch.cat([x, reference]), (7,), weight, bias, 1e-12)
    assert torch.allclose(normalised, nn.functional.layer_norm(torch.cat([x, reference]), (7,), weight, bias, 1e-12),
                          atol=1e-5)
    for reference in (torch.randn(2, 7), torch.ones(2, 7)):
        # A constant reference (zero variance) makes the multipliers ~1/sqrt(eps): exact, but only float64
        # can hold the cancelling terms; an ordinary reference is exact in fp32 too.
        dtype = torch.float64 if reference.std() == 0 else torch.float32
        contributions, change = deeplift(
            lambda batch: nn.functional.layer_norm(batch, (7,), weight.to(dtype), bias.to(dtype), 1e-12)[:, 2],
            x.to(dtype), reference.to(dtype))
        assert torch.allclose(contributions.sum(1), change, rtol=1e-5, atol=1e-6)


def test_an_operation_without_a_rule_is_refused_not_approximated():
    with pytest.raises(BertInsightInputError, match="no exact rule for einsum"):
        deeplift(lambda batch: torch.einsum("bi,bi->b", batch, batch), torch.randn(2, 3), torch.zeros(2, 3))
    assert not torch._C._is_torch_function_mode_enabled()  # the mode left with the error


# ---- frames ----------------------------------------------------------------------------------------------
def test_frames_are_layer_igs_and_serve_its_analyses(tiny_handle):
    from bert_insight.attribution.analysis import word_importance

    examples = make_examples(2)
    deeplift_frame, _, _ = layer_deeplift(tiny_handle, examples, layers=[0, 2], progress=False, **WINDOW)
    ig_frame, _ = layer_ig(tiny_handle, examples, layers=[0, 2], n_steps=4, progress=False, **WINDOW)
    assert list(deeplift_frame.columns) == list(ig_frame.columns)
    assert set(deeplift_frame["method"]) == {"layer_deeplift"} and set(deeplift_frame["quadrature"]) == {"none"}
    keys = ["example_id", "layer", "target", "token_index", "word_index", "segment"]
    pd.testing.assert_frame_equal(deeplift_frame[keys], ig_frame[keys])
    words = word_importance(deeplift_frame)
    assert words.groupby(["example_id", "layer", "target"])["importance"].sum().round(9).eq(1).all()


def test_output_view_is_the_models_own_start_and_end_distribution(tiny_handle):
    examples = make_examples(2)
    _, _, outputs = layer_deeplift(tiny_handle, examples, layers=[1], progress=False, **WINDOW)
    windows = analysis_windows(tiny_handle, examples, **WINDOW)
    for (window, _, _), (example_id, rows) in zip(windows, outputs.groupby("example_id", sort=False)):
        inputs = tiny_handle.batch_inputs([window])
        with torch.no_grad():
            out = tiny_handle.model(**inputs)  # the Hugging Face forward, not the adapter's
        assert rows["start_probability"].to_numpy() == pytest.approx(out.start_logits[0].softmax(-1).numpy(),
                                                                     abs=1e-6)
        assert rows["end_probability"].to_numpy() == pytest.approx(out.end_logits[0].softmax(-1).numpy(), abs=1e-6)
        assert rows["start_probability"].sum() == pytest.approx(1.0, abs=1e-6)


def test_reference_input_keeps_special_tokens_so_their_layer0_scores_vanish(tiny_handle):
    attributions, _, _ = layer_deeplift(tiny_handle, make_examples(1), layers=[0], baseline="reference_input",
                                        progress=False, **WINDOW)
    special = attributions[attributions["segment"] == "special"]
    assert special["score"].abs().max() == 0 and attributions["score"].abs().max() > 0


def test_cache_returns_the_same_frames(tiny_handle, tmp_path):
    first = layer_deeplift(tiny_handle, make_examples(2), layers=[1], cache_dir=tmp_path, progress=False, **WINDOW)
    again = layer_deeplift(tiny_handle, make_examples(2), layers=[1], cache_dir=tmp_path, progress=False, **WINDOW)
    for fresh, cached in zip(first, again):
        pd.testing.assert_frame_equal(fresh, cached)


def test_weights_are_unfrozen_and_no_mode_is_left_after_a_run(tokenizer):
    handle = handle_of("bert", tokenizer)
    before = [parameter.requires_grad for parameter in handle.model.parameters()]
    layer_deeplift(handle, make_examples(1), layers=[1], progress=False, **WINDOW)
    assert [parameter.requires_grad for parameter in handle.model.parameters()] == before
    assert not torch._C._is_torch_function_mode_enabled()


@pytest.mark.parametrize("kwargs, says", [
    (dict(baseline="blur"), "baseline="),
    (dict(baseline="reference_input", reference_token="unk"), "reference_token="),
    (dict(precision="fp16"), "precision="),
    (dict(targets=("middle",)), "targets="),
    (dict(layers=[99]), "layer"),
])
def test_bad_input_says_what_to_do(tiny_handle, kwargs, says):
    with pytest.raises(BertInsightInputError, match=says):
        layer_deeplift(tiny_handle, make_examples(1), progress=False, **WINDOW, **kwargs)


# ---- the real model ------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("baseline", ["zero", "reference_input"])
def test_default_model_scores_add_up_at_every_layer(default_handle, baseline):
    from bert_insight.data import load_squad

    examples = load_squad(split="heldout", limit=2)
    _, convergence, _ = layer_deeplift(default_handle, examples, baseline=baseline, targets=ALL_TARGETS,
                                       progress=False)
    assert len(convergence) == 2 * 7 * 3
    assert convergence["relative_delta"].max() < 1e-4
