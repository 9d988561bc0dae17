"""layer_ig against captum's LayerIntegratedGradients, completeness, cache resume, state hygiene."""

from __future__ import annotations

import re
import warnings

import pandas as pd
import pytest
import torch

from bert_insight.attribution import _ig_core as ig_core
from bert_insight.attribution import layer_ig as layer_ig_module
from bert_insight.attribution._ig_core import (
    auto_chunk,
    frozen_weights,
    hidden_states_once,
    layer_integrated_gradients,
    quadrature,
)
from bert_insight.attribution._ig_blocks import prepare_blocks
from bert_insight.attribution.layer_ig import layer_ig
from bert_insight.device import bf16_is_fast
from bert_insight.errors import BertInsightInputError
from bert_insight.models.adapters import ArchitectureAdapter
from bert_insight.models.handle import from_model
from bert_insight.qa import analysis_windows
from bert_insight.testing import captum_layer_ig, module_holding_layer, top_word_sets
from tests.conftest import tiny_qa_model

CPU = torch.device("cpu")
WINDOW = dict(max_length=128, doc_stride=32)  # the tiny models embed 128 positions
CONTEXT = (
    "The harbour town of Kelsey grew around a fishing pier built by the first settlers. Every spring the "
    "council repaired the sea wall after the winter storms. At the summer fair of 1894 a stranger played the "
    "saxophone and the violin for the crowd. A lighthouse on the northern cliff guided the trawlers home."
)
QUESTIONS = [
    "What did the stranger play at the summer fair?",
    "Who repaired the sea wall every spring?",
    "What guided the trawlers home?",
    "When did the stranger play at the fair?",
    "What did the first settlers build?",
]


def make_examples(n: int = 2) -> pd.DataFrame:
    return pd.DataFrame({
        "example_id": [f"q{i}" for i in range(n)], "question": QUESTIONS[:n], "context": [CONTEXT] * n,
        "answers": [[] for _ in range(n)], "is_impossible": [False] * n, "title": ["harbour"] * n,
    })


def tiny_handle_of(family: str, tokenizer):
    return from_model(tiny_qa_model(family), tokenizer, name=f"tiny-{family}", device="cpu")


def assert_close_to_captum(ours: torch.Tensor, reference: torch.Tensor, tolerance: float = 1e-4) -> None:
    scale = float(reference.abs().max())
    assert scale > 0
    assert float((ours - reference).abs().max()) <= tolerance * scale


@pytest.fixture(scope="module")
def tiny_window(tiny_handle):
    window, start, end = analysis_windows(tiny_handle, make_examples(1), **WINDOW)[0]
    return window, start, end


# ---- equivalence with captum ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["family_forward", "prepared_blocks"])
@pytest.mark.parametrize("method", ["riemann", "gausslegendre"])
def test_core_equals_captum_for_every_layer_and_target(tiny_handle, tiny_window, method, path):
    window, start, end = tiny_window
    adapter, model = tiny_handle.adapter, tiny_handle.model
    states = hidden_states_once(adapter, model, torch.tensor([window.input_ids]),
                                torch.tensor([window.token_type_ids]), tiny_handle.num_layers)
    alphas, weights = quadrature(method, 16)
    blocks = prepare_blocks(adapter, model, "fp32", CPU) if path == "prepared_blocks" else None
    assert (blocks is None) == (path == "family_forward")
    for layer in range(tiny_handle.num_layers + 1):
        with frozen_weights(model):
            result = layer_integrated_gradients(adapter, model, layer, states[layer], start, end,
                                                targets=("start", "end", "start+end"), alphas=alphas,
                                                weights=weights, chunk=5,  # uneven chunks on purpose
                                                blocks=blocks)
        references = {}
        for target, index in (("start", start), ("end", end)):
            references[target], _ = captum_layer_ig(tiny_handle, window, layer, target, index, method, 16)
            assert_close_to_captum(result.attributions[target], references[target])
        # IG is linear in the target, so the summed target equals the sum of captum's two attributions.
        assert_close_to_captum(result.attributions["start+end"], references["start"] + references["end"])


@pytest.mark.parametrize("method", ["riemann", "gausslegendre"])
def test_frames_equal_captum_per_token(tiny_handle, tiny_window, method):
    window, start, end = tiny_window
    attributions, convergence = layer_ig(tiny_handle, make_examples(1), layers=[0, 2], n_steps=12,
                                         quadrature=method, progress=False, **WINDOW)
    for layer in (0, 2):
        for target, index in (("start", start), ("end", end)):
            reference, captum_delta = captum_layer_ig(tiny_handle, window, layer, target, index, method, 12)
            rows = attributions[(attributions.layer == layer) & (attributions.target == target)]
            rows = rows.sort_values("token_index")
            assert rows.token_index.tolist() == list(range(len(window)))
            assert_close_to_captum(torch.tensor(rows.score.to_numpy()), reference.double().sum(-1))
            assert_close_to_captum(torch.tensor(rows.norm.to_numpy()), reference.double().norm(dim=-1))
            ours_delta = convergence[(convergence.layer == layer) & (convergence.target == target)].delta.item()
            assert ours_delta == pytest.approx(captum_delta, abs=1e-4 * max(1.0, abs(captum_delta)))


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert", "electra"])
def test_every_family_runs_and_agrees_with_captum(family, tokenizer):
    handle = tiny_handle_of(family, tokenizer)
    layer = 0 if family == "albert" else 1  # ALBERT's shared blocks leave captum only the embedding output
    window, start, end = analysis_windows(handle, make_examples(1), **WINDOW)[0]
    attributions, convergence = layer_ig(handle, make_examples(1), layers=[layer], targets="end",
                                         n_steps=8, quadrature="gausslegendre", progress=False, **WINDOW)
    reference, _ = captum_layer_ig(handle, window, layer, "end", end, "gausslegendre", 8)
    rows = attributions.sort_values("token_index")
    assert_close_to_captum(torch.tensor(rows.norm.to_numpy()), reference.double().norm(dim=-1))
    assert_close_to_captum(torch.tensor(rows.score.to_numpy()), reference.double().sum(-1))


# ---- completeness and importance -----------------------------------------------------------------------
def independent_logit_change(handle, window, layer: int, target: str, index: int) -> float:
    """F(h) - F(0) from the Hugging Face forward, zeroing hidden state ``layer`` with a hook."""
    model = handle.model
    module = module_holding_layer(handle, layer)
    # Unpadded, so no attention mask: the same kernels as the fast path (a mask changes SDPA's rounding).
    inputs = {name: value for name, value in handle.batch_inputs([window]).items() if name != "attention_mask"}

    def logit() -> float:
        with torch.no_grad():
            output = model(**inputs)
        return float({"start": output.start_logits, "end": output.end_logits}[target][0, index])

    at_input = logit()
    hook = module.register_forward_hook(lambda _m, _i, output: output * 0 if torch.is_tensor(output)
                                        else (output[0] * 0, *output[1:]))
    try:
        at_baseline = logit()
    finally:
        hook.remove()
    return at_input - at_baseline


def test_completeness_gap_is_the_reported_delta_and_shrinks_with_steps(tiny_handle, tiny_window):
    window, start, end = tiny_window
    gaps = []
    for n_steps in (2, 4, 8, 16):
        attributions, convergence = layer_ig(tiny_handle, make_examples(1), layers="all", n_steps=n_steps,
                                             quadrature="gausslegendre", progress=False, **WINDOW)
        worst = 0.0
        for layer in range(tiny_handle.num_layers):
            for target, index in (("start", start), ("end", end)):
                rows = attributions[(attributions.layer == layer) & (attributions.target == target)]
                change = independent_logit_change(tiny_handle, window, layer, target, index)
                reported = convergence[(convergence.layer == layer) & (convergence.target == target)]
                assert rows.score.sum() - change == pytest.approx(reported.delta.item(), abs=1e-5)
                assert reported.relative_delta.item() == pytest.approx(abs(reported.delta.item() / change), rel=1e-5)  # fp32 rounding of two forwards
                worst = max(worst, reported.relative_delta.item())
        gaps.append(worst)
    assert gaps[-1] < 1e-3
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:]))


def test_last_hidden_state_is_exact_because_only_the_linear_head_remains(tiny_handle):
    _, convergence = layer_ig(tiny_handle, make_examples(1), layers=[tiny_handle.num_layers], n_steps=1,
                              progress=False, **WINDOW)
    assert convergence.relative_delta.max() < 1e-5


def test_importance_is_a_distribution_over_the_passage(tiny_handle):
    attributions, _ = layer_ig(tiny_handle, make_examples(2), layers=[0, 1], targets=("start", "start+end"),
                               n_steps=4, progress=False, **WINDOW)
    sums = attributions.groupby(["example_id", "layer", "target"]).importance.sum()
    assert sums.to_numpy() == pytest.approx(1.0)
    outside = attributions[attributions.segment != "context"]
    assert (outside.importance == 0).all() and (outside.norm > 0).any()
    context = attributions[attributions.segment == "context"]
    assert (context.importance > 0).all() and (context.word_index >= 0).all()
    assert (attributions[attributions.segment == "special"].word_index == -1).all()


def test_frames_name_the_method_and_the_quadrature_apart(tiny_handle):
    attributions, convergence = layer_ig(tiny_handle, make_examples(1), layers=[1], n_steps=3,
                                         quadrature="gausslegendre", progress=False, **WINDOW)
    for frame in (attributions, convergence):
        assert set(frame.method) == {"layer_ig"} and set(frame.quadrature) == {"gausslegendre"}
    assert attributions.attrs["quadrature"] == "gausslegendre" and attributions.attrs["method"] == "layer_ig"


def test_layer_selections_and_old_parameter_names(tiny_handle):
    settings = dict(n_steps=2, progress=False, **WINDOW)
    block_inputs, _ = layer_ig(tiny_handle, make_examples(1), **settings)  # the default
    block_outputs, _ = layer_ig(tiny_handle, make_examples(1), layers="block_outputs", **settings)
    every, _ = layer_ig(tiny_handle, make_examples(1), layers="all", **settings)
    assert sorted(block_outputs.layer.unique()) == list(range(1, tiny_handle.num_layers + 1))
    assert sorted(block_inputs.layer.unique()) == list(range(tiny_handle.num_layers))
    assert sorted(every.layer.unique()) == list(range(tiny_handle.num_layers + 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old, _ = layer_ig(tiny_handle, make_examples(1), layers=[1], method="gausslegendre", batch_size=1,
                          **settings)
    said = " ".join(str(w.message) for w in caught if issubclass(w.category, DeprecationWarning))
    assert "pass quadrature=" in said and "pass steps_per_batch=" in said
    new, _ = layer_ig(tiny_handle, make_examples(1), layers=[1], quadrature="gausslegendre", steps_per_batch=1,
                      **settings)
    pd.testing.assert_frame_equal(old, new)


# ---- cache, resume, state hygiene ----------------------------------------------------------------------
def test_an_in_place_weight_edit_is_never_served_from_the_cache(tokenizer, tmp_path):
    handle = tiny_handle_of("bert", tokenizer)
    settings = dict(layers=[1], n_steps=3, progress=False, cache_dir=tmp_path, **WINDOW)
    before, _ = layer_ig(handle, make_examples(1), **settings)
    fingerprint = handle.fingerprint
    with torch.no_grad():
        handle.model.bert.encoder.layer[2].attention.self.value.weight.data[0, 0] += 1.0  # bypasses autograd
    assert handle.fingerprint != fingerprint
    after, _ = layer_ig(handle, make_examples(1), **settings)
    fresh, _ = layer_ig(handle, make_examples(1), **{**settings, "cache_dir": None})
    pd.testing.assert_frame_equal(after, fresh)
    assert not after.score.equals(before.score)



def test_killed_run_resumes_from_the_cache(tiny_handle, tmp_path, monkeypatch):
    examples = make_examples(5)
    settings = dict(layers=[0, 2], n_steps=4, progress=False, cache_dir=tmp_path, **WINDOW)
    real = layer_ig_module._attribute_window
    computed = []

    def dies_after_two(handle, window, *args, **kwargs):
        if len(computed) == 2:
            raise KeyboardInterrupt("killed")
        computed.append(window.example_id)
        return real(handle, window, *args, **kwargs)

    monkeypatch.setattr(layer_ig_module, "_attribute_window", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        layer_ig(tiny_handle, examples, **settings)
    assert computed == ["q0", "q1"]

    def counting(handle, window, *args, **kwargs):
        computed.append(window.example_id)
        return real(handle, window, *args, **kwargs)

    monkeypatch.setattr(layer_ig_module, "_attribute_window", counting)
    resumed = layer_ig(tiny_handle, examples, **settings)
    assert computed == ["q0", "q1", "q2", "q3", "q4"]

    monkeypatch.setattr(layer_ig_module, "_attribute_window", real)
    fresh = layer_ig(tiny_handle, examples, **{**settings, "cache_dir": None})
    pd.testing.assert_frame_equal(resumed.attributions, fresh.attributions)
    pd.testing.assert_frame_equal(resumed.convergence, fresh.convergence)
    # Different parameters never reuse the entries.
    computed.clear()
    monkeypatch.setattr(layer_ig_module, "_attribute_window", counting)
    layer_ig(tiny_handle, examples.head(2), **{**settings, "n_steps": 5})
    assert computed == ["q0", "q1"]


def test_auto_chunk_keeps_the_memory_budget_the_row_cap_and_the_tensor_cap():
    budget_only = auto_chunk(50, 156, 384, 12, 6)
    assert 1 < budget_only <= 50
    capped = auto_chunk(50, 156, 384, 12, 6, max_rows=1536)
    assert capped == 1536 // 156 and capped * 156 <= 1536 < (capped + 1) * 156
    # The budget still rules where it is the tighter limit, and a window longer than the cap gets one point.
    assert auto_chunk(50, 156, 384, 12, 6, budget=2**20, max_rows=1536) == auto_chunk(50, 156, 384, 12, 6, budget=2**20)
    assert auto_chunk(50, 2000, 384, 12, 6, max_rows=1536) == 1
    # One block leaves the budget room for all 50 points; the tensor cap keeps the largest activation, here
    # the 12 heads' 156 x 156 fp32 maps (wider than the 4 x 384 feed-forward), within the heap threshold.
    assert auto_chunk(50, 156, 384, 12, 1) == 50
    per_point = 4 * 156 * 12 * 156
    tensor_capped = auto_chunk(50, 156, 384, 12, 1, max_tensor_bytes=32 * 2**20)
    assert tensor_capped * per_point <= 32 * 2**20 < (tensor_capped + 1) * per_point
    # BERT-base widths: the 4 x 768 feed-forward is the widest.
    assert auto_chunk(50, 156, 768, 12, 1, max_tensor_bytes=32 * 2**20) == 32 * 2**20 // (4 * 156 * 3072)


def test_blocks_are_prepared_once_per_call_and_not_for_cached_windows(tiny_handle, tmp_path, monkeypatch):
    real = layer_ig_module.prepare_blocks
    calls = []

    def counting(*args):
        calls.append(args[2])
        return real(*args)

    monkeypatch.setattr(layer_ig_module, "prepare_blocks", counting)
    settings = dict(layers=[0, 2], n_steps=3, progress=False, cache_dir=tmp_path, **WINDOW)
    first = layer_ig(tiny_handle, make_examples(3), **settings)
    assert calls == ["fp32"]  # three windows, one preparation
    again = layer_ig(tiny_handle, make_examples(3), **settings)
    assert calls == ["fp32"]  # every window from the cache: nothing prepared
    pd.testing.assert_frame_equal(first.attributions, again.attributions)
    layer_ig(tiny_handle, make_examples(3), **{**settings, "cache_dir": None})
    assert calls == ["fp32", "fp32"]


@pytest.mark.parametrize("path", ["family_forward", "prepared_blocks"])
def test_no_state_survives_an_exception_mid_path(tokenizer, monkeypatch, path):
    handle = tiny_handle_of("bert", tokenizer)
    model = handle.model
    model.qa_outputs.weight.requires_grad_(False)  # a user's own choice must come back as it was
    before = {name: parameter.requires_grad for name, parameter in model.named_parameters()}
    calls = []
    real_run_block = ArchitectureAdapter.run_block
    real_block_forward = ig_core.block_forward

    def fails_inside_the_path(self, model, layer, hidden, attention_mask=None):
        calls.append(hidden.requires_grad)
        if hidden.requires_grad:  # i.e. inside the interpolated, differentiated batch
            raise RuntimeError("out of memory (simulated)")
        return real_run_block(self, model, layer, hidden, attention_mask)

    def prepared_fails_inside_the_path(block, hidden, **kwargs):
        calls.append(hidden.requires_grad)
        if hidden.requires_grad:
            raise RuntimeError("out of memory (simulated)")
        return real_block_forward(block, hidden, **kwargs)

    if path == "family_forward":
        monkeypatch.setattr(layer_ig_module, "prepare_blocks", lambda *args: None)
        monkeypatch.setattr(ArchitectureAdapter, "run_block", fails_inside_the_path)
    else:
        monkeypatch.setattr(ig_core, "block_forward", prepared_fails_inside_the_path)
    with pytest.raises(RuntimeError, match="simulated"):
        layer_ig(handle, make_examples(1), layers=[1], n_steps=3, progress=False, **WINDOW)
    assert True in calls
    assert {name: parameter.requires_grad for name, parameter in model.named_parameters()} == before
    assert torch.is_grad_enabled() and not model.training
    for module in model.modules():
        assert not (module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)
        assert "forward" not in vars(module)  # the linear kernels' switch is undone too


# ---- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, says", [
    ({"quadrature": "trapezoid"}, "riemann"),
    ({"precision": "fp16"}, "bf16"),
    ({"targets": ("start", "middle")}, "start+end"),
    ({"targets": ()}, "start+end"),
    ({"layers": [4]}, "out of range"),
    ({"layers": [-1]}, "out of range"),
    ({"layers": "first"}, "'all' or 'block_inputs' or 'block_outputs'"),
    ({"n_steps": 0}, ">= 1"),
    ({"n_steps": 2.5}, ">= 1"),
    ({"steps_per_batch": 0}, "path points per forward"),
])
def test_bad_input_says_what_to_do(tiny_handle, kwargs, says):
    with pytest.raises(BertInsightInputError, match=re.escape(says)):
        layer_ig(tiny_handle, make_examples(1), progress=False, **WINDOW, **kwargs)


# ---- the real model (slow) -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def squad_example():
    from bert_insight.data import load_squad

    examples = load_squad(limit=60)
    # A short passage keeps the slow tests quick.
    lengths = examples.context.str.len() + examples.question.str.len()
    return examples.loc[[lengths.idxmin()]].reset_index(drop=True)


@pytest.mark.slow
def test_real_model_equals_captum_on_a_squad_example(default_handle, squad_example):
    window, start, end = analysis_windows(default_handle, squad_example)[0]
    attributions, _ = layer_ig(default_handle, squad_example, layers=[1, 4], n_steps=8, progress=False)
    for layer in (1, 4):
        for target, index in (("start", start), ("end", end)):
            reference, _ = captum_layer_ig(default_handle, window, layer, target, index, "riemann", 8)
            rows = attributions[(attributions.layer == layer) & (attributions.target == target)]
            rows = rows.sort_values("token_index")
            assert_close_to_captum(torch.tensor(rows.norm.to_numpy()), reference.double().norm(dim=-1))
            assert_close_to_captum(torch.tensor(rows.score.to_numpy()), reference.double().sum(-1))


@pytest.mark.slow
def test_bf16_keeps_the_top_words_of_fp32(default_handle, squad_example):
    # bf16 is emulated (slow) on CPUs without bf16 units: few layers and steps keep this test quick.
    settings = dict(layers=[4, 5], n_steps=6, progress=False)
    exact, _ = layer_ig(default_handle, squad_example, **settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast, _ = layer_ig(default_handle, squad_example, precision="bf16", **settings)
    # The emulated-bf16 warning appears exactly where bf16 is slow.
    emulated = [w for w in caught if issubclass(w.category, RuntimeWarning) and "emulated" in str(w.message)]
    assert bool(emulated) == (not bf16_is_fast(default_handle.device))
    agree = (top_word_sets(exact) == top_word_sets(fast)).mean()
    assert agree >= 0.75
    correlation = exact.importance.corr(fast.importance)
    assert correlation > 0.99
