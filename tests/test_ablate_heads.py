"""Head disabling (Kovaleva et al. 2019, section 4.6): the library's hooks against a textbook BERT layer
written here, against transformers 4's head_mask, the sweep against one full forward per ablation, and
the paired bootstrap against sklearn / scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
from conftest import tiny_classifier, tiny_qa_model

from bert_insight import BertInsightInputError, from_model
from bert_insight.attention.ablation import ablate_heads, disabled_heads, parse_ablations, sweep_outputs
from bert_insight.classification import evaluate_classifier, score_predictions
from bert_insight.models.adapters import ADAPTERS
from bert_insight.qa import evaluate, predict
from bert_insight.resampling import metric_values, paired_bootstrap, resample_indices
from bert_insight.windows import encode_sentences

FAMILIES = sorted(ADAPTERS)
TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])


def sentence_examples(n: int, seed: int = 0, labels: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = "the cat , sat on a mat . while dogs ran through green fields of tall grass !".split()
    return pd.DataFrame([{"example_id": f"s{i}", "text_a": " ".join(rng.choice(words, size=rng.integers(3, 14))),
                          "text_b": " ".join(rng.choice(words, size=rng.integers(2, 9))),
                          "label": float(rng.uniform(0, 5)) if labels == 1 else int(rng.integers(0, labels))}
                         for i in range(n)])


def qa_examples(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = "alpha beta gamma delta river stone north green tower bridge".split()
    rows = []
    for i in range(n):
        context = " ".join(rng.choice(words, size=int(rng.integers(20, 60))))
        start = int(rng.integers(0, 10))
        answer = " ".join(context.split()[start: start + 2])
        rows.append({"example_id": f"q{i}", "question": "where is the " + str(rng.choice(words)) + " ?",
                     "context": context, "answers": {"text": [answer], "answer_start": [context.index(answer)]}})
    return pd.DataFrame(rows)


def classifier_handle(family: str, tokenizer, *, num_labels: int = 2, task: str = "mrpc", seed: int = 0):
    return from_model(peaked(tiny_classifier(family, num_labels=num_labels, seed=seed)), tokenizer, device="cpu",
                      task=task)


def peaked(model: torch.nn.Module) -> torch.nn.Module:
    """A random init attends almost uniformly and its 0.02-scale head hides any change: sharpen the
    attention and enlarge the values and the classifier head so that disabling a head shows in logits."""
    scales = {"query": 12.0, "key": 12.0, "q_lin": 12.0, "k_lin": 12.0, "value": 8.0, "v_lin": 8.0}
    with torch.no_grad():
        for name, module in model.named_modules():
            if not isinstance(module, torch.nn.Linear):
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf in scales:
                module.weight.mul_(scales[leaf])
            elif "classifier" in name or "pooler" in name:
                module.weight.mul_(20.0)
    return model


def no_hooks_left(model: torch.nn.Module) -> bool:
    """No hook of the library's is left on ``model`` (transformers 5 keeps its own output-capturing hooks)."""
    hooks = [hook for module in model.modules()
             for hook in [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]]
    return not any(getattr(hook, "__module__", "").startswith("bert_insight") for hook in hooks)


# ---- a textbook BERT forward with the attention probabilities in the test's hands -----------------------
def textbook_bert(model, input_ids, token_type_ids, disable: dict[int, list[int]], how: str):
    """BertForSequenceClassification by hand, one unpadded input; ``disable`` layer -> heads whose
    attention probabilities are replaced: by 1/T over the tokens ("uniform") or by 0 ("zero").
    Returns (last hidden state, logits)."""
    config = model.config
    heads, size = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    hidden = model.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
    length = input_ids.shape[1]
    for index, block in enumerate(model.bert.encoder.layer):
        attention = block.attention.self

        def split(x):
            return x.view(1, length, heads, size).transpose(1, 2)

        query, key, value = split(attention.query(hidden)), split(attention.key(hidden)), split(attention.value(hidden))
        probabilities = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(size), dim=-1)
        for head in disable.get(index, []):
            probabilities[:, head] = 1.0 / length if how == "uniform" else 0.0
        context = (probabilities @ value).transpose(1, 2).reshape(1, length, heads * size)
        attended = block.attention.output.LayerNorm(block.attention.output.dense(context) + hidden)
        hidden = block.output.LayerNorm(block.output.dense(block.intermediate(attended)) + attended)
    return hidden, model.classifier(model.bert.pooler(hidden))


@pytest.mark.parametrize("how", ["uniform", "zero"])
def test_disabling_equals_a_forward_with_replaced_attention_probabilities(how, tokenizer):
    handle = classifier_handle("bert", tokenizer)
    encoded = tokenizer("the cat sat on the mat", "a dog ran", return_tensors="pt")
    with torch.no_grad():
        intact_hidden, intact = textbook_bert(handle.model, encoded["input_ids"], encoded["token_type_ids"], {}, how)
        own = handle.model(**encoded, output_hidden_states=True)
        torch.testing.assert_close(intact, own.logits, atol=1e-5, rtol=0)  # the textbook forward is the model's
        torch.testing.assert_close(intact_hidden, own.hidden_states[-1], atol=1e-5, rtol=0)
        disable = {1: [2], 2: [0, 3]}
        expected_hidden, expected = textbook_bert(handle.model, encoded["input_ids"], encoded["token_type_ids"],
                                                  disable, how)
        with disabled_heads(handle, [(1, 2), (2, 0), (2, 3)], mode=how):
            got = handle.model(**encoded, output_hidden_states=True)
    torch.testing.assert_close(got.logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.hidden_states[-1], expected_hidden, atol=1e-5, rtol=0)
    # the ablation changed something the test can see (a tiny random classifier's logits barely move)
    assert (got.hidden_states[-1] - own.hidden_states[-1]).abs().max() > 1e-2
    assert no_hooks_left(handle.model)


@pytest.mark.skipif(TRANSFORMERS_MAJOR >= 5, reason="head_mask exists only in transformers 4 (test-compat runs it)")
@pytest.mark.parametrize("family", ["bert", "roberta", "electra", "distilbert"])
def test_zero_mode_equals_transformers4_head_mask(family, tokenizer):
    handle = classifier_handle(family, tokenizer)
    windows = encode_sentences(tokenizer, sentence_examples(4, seed=3))
    inputs = handle.batch_inputs(windows)  # padded
    head_mask = torch.ones(handle.num_layers, handle.num_heads)
    head_mask[0, 1] = head_mask[2, 3] = 0.0
    with torch.no_grad():
        expected = handle.model(**inputs, head_mask=head_mask).logits
        with disabled_heads(handle, [(0, 1), (2, 3)], mode="zero"):
            got = handle.model(**inputs).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_logits_from_the_last_hidden_state_equal_the_model(family, tokenizer):
    handle = classifier_handle(family, tokenizer, num_labels=3, task="three-way")
    window = encode_sentences(tokenizer, sentence_examples(1, seed=4))[0]
    inputs = handle.batch_inputs([window])
    with torch.no_grad():
        output = handle.model(**inputs, output_hidden_states=True)
        got = handle.adapter.classifier_logits(handle.model, output.hidden_states[-1])
    torch.testing.assert_close(got, output.logits, atol=1e-5, rtol=0)


# ---- the sweep against one full (padded) forward per ablation -----------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("mode", ["uniform", "zero"])
def test_sweep_equals_one_padded_forward_per_ablation(family, mode, tokenizer):
    handle = classifier_handle(family, tokenizer, seed=5)
    examples = sentence_examples(6, seed=6)
    windows = encode_sentences(tokenizer, examples)
    ablations = parse_ablations([(0, 1), (1, 3), [(1, 0), (2, 2)], [(2, h) for h in range(4)], (2, 1)], 3, 4)
    intact, ablated = sweep_outputs(handle, windows, ablations, mode=mode, batch_size=2, progress=False)
    inputs = handle.batch_inputs(windows)  # every example in one padded batch
    with torch.no_grad():
        reference_intact = handle.model(**inputs).logits
        for ablation, outputs in zip(ablations, ablated):
            with disabled_heads(handle, list(ablation), mode=mode):
                reference = handle.model(**inputs).logits
            torch.testing.assert_close(torch.stack(outputs), reference, atol=2e-5, rtol=0)
            assert (reference - reference_intact).abs().max() > 1e-4  # each ablation matters here
    torch.testing.assert_close(torch.stack(intact), reference_intact, atol=2e-5, rtol=0)
    assert no_hooks_left(handle.model)


def test_ablate_heads_scores_equal_evaluate_classifier_under_disabled_heads(tokenizer):
    handle = classifier_handle("bert", tokenizer, seed=7)
    examples = sentence_examples(40, seed=8)
    frame = ablate_heads(handle, examples, ablations=[(0, 0), (1, 2), [(2, h) for h in range(4)]], batch_size=3,
                         n_resamples=200, progress=False)
    assert set(frame["metric"]) == {"accuracy", "f1"}  # MRPC's metrics
    intact, _ = evaluate_classifier(handle, examples, progress=False)
    for row in frame.itertuples():
        assert row.baseline == pytest.approx(intact.set_index("metric").loc[row.metric, "value"], abs=1e-9)
        ablation = [(row.layer, h) for h in range(4)] if row.head == "all" else [(row.layer, row.head)]
        with disabled_heads(handle, ablation, mode="uniform"):
            scores, _ = evaluate_classifier(handle, examples, batch_size=7, progress=False)
        assert row.value == pytest.approx(scores.set_index("metric").loc[row.metric, "value"], abs=1e-9)
        assert row.delta == pytest.approx(row.value - row.baseline, abs=1e-9)
        assert row.ci_low <= row.delta <= row.ci_high
    assert frame.loc[frame["ablation"] == "2-all", "head"].tolist() == ["all", "all"]


def test_ablate_heads_on_a_regression_head_uses_correlations(tokenizer):
    handle = classifier_handle("bert", tokenizer, num_labels=1, task="stsb", seed=9)
    examples = sentence_examples(30, seed=10, labels=1)
    frame = ablate_heads(handle, examples, ablations="layers", mode="zero", n_resamples=200, progress=False)
    assert sorted(set(frame["metric"])) == ["pearson", "spearman"]
    with disabled_heads(handle, [(1, h) for h in range(4)], mode="zero"):
        scores, _ = evaluate_classifier(handle, examples, progress=False)
    row = frame[(frame["ablation"] == "1-all") & (frame["metric"] == "spearman")].iloc[0]
    assert row.value == pytest.approx(scores.set_index("metric").loc["spearman", "value"], abs=1e-6)


def test_ablate_heads_on_qa_equals_predict_under_disabled_heads(tokenizer):
    handle = from_model(tiny_qa_model("bert", seed=3), tokenizer, device="cpu")
    examples = qa_examples(12, seed=1)
    frame = ablate_heads(handle, examples, ablations=[(0, 2), [(1, h) for h in range(4)]], max_length=48,
                         doc_stride=16, n_resamples=200, progress=False)  # several windows per example
    for row in frame.itertuples():
        ablation = [(row.layer, h) for h in range(4)] if row.head == "all" else [(row.layer, row.head)]
        with disabled_heads(handle, ablation):
            predictions = predict(handle, examples, max_length=48, doc_stride=16, batch_size=5, progress=False)
        expected = evaluate(predictions, examples=examples).set_index("group").loc["all", row.metric]
        assert row.value == pytest.approx(expected, abs=1e-9)


# ---- errors and cleanup ----------------------------------------------------------------------------
def test_hooks_are_removed_after_an_exception(tokenizer, monkeypatch):
    handle = classifier_handle("albert", tokenizer)
    encoded = tokenizer("a b c", return_tensors="pt")
    with torch.no_grad():
        before = handle.model(**encoded).logits
        with pytest.raises(RuntimeError, match="inside"):
            with disabled_heads(handle, (1, 1)):
                raise RuntimeError("inside")
        assert no_hooks_left(handle.model)
        from bert_insight.models.adapters import ArchitectureAdapter

        def fails(*args, **kwargs):
            raise RuntimeError("inside the sweep")

        monkeypatch.setattr(ArchitectureAdapter, "run_block", fails)
        with pytest.raises(RuntimeError, match="inside the sweep"):
            ablate_heads(handle, sentence_examples(3), ablations=[(0, 0)], progress=False)
        monkeypatch.undo()
        assert no_hooks_left(handle.model)
        torch.testing.assert_close(handle.model(**encoded).logits, before)


@pytest.mark.parametrize("ablations, message", [
    ([(3, 0)], "out of range"), ([(0, 4)], "out of range"), ([[]], "empty list"), ([], "empty"),
    ("every", "'each', 'layers'"), ([("a", 1)], "not a \\(layer, head\\) pair"),
])
def test_bad_ablations_get_one_clear_error(ablations, message, tokenizer):
    handle = classifier_handle("bert", tokenizer)
    with pytest.raises(BertInsightInputError, match=message):
        ablate_heads(handle, sentence_examples(3), ablations=ablations, progress=False)


def test_bad_mode_metric_and_handle_get_clear_errors(tokenizer):
    handle = classifier_handle("bert", tokenizer)
    with pytest.raises(BertInsightInputError, match="mode="):
        ablate_heads(handle, sentence_examples(3), mode="mean", progress=False)
    with pytest.raises(BertInsightInputError, match="accuracy, f1"):
        ablate_heads(handle, sentence_examples(3), metric="pearson", progress=False)
    with pytest.raises(BertInsightInputError, match="needs gold|no label|label"):
        ablate_heads(handle, sentence_examples(3).assign(label=np.nan), progress=False)


# ---- the bootstrap ---------------------------------------------------------------------------------
def test_metric_values_on_the_full_sample_equal_sklearn_and_scipy():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200).astype(float)
    predicted = np.where(rng.uniform(size=200) < 0.8, gold, 1 - gold)
    everything = np.arange(200)[None, :]
    frame = pd.DataFrame({"label": gold, "prediction": predicted})
    expected = score_predictions(frame, ("accuracy", "f1"))
    assert metric_values("mean", (predicted == gold).astype(float), None, everything)[0] == pytest.approx(expected["accuracy"])
    assert metric_values("f1", predicted, gold, everything)[0] == pytest.approx(expected["f1"])
    scores, truth = rng.normal(size=200), rng.normal(size=200)
    scores = scores + truth
    scores[:20] = scores[20]  # ties, for the ranks
    frame = pd.DataFrame({"label": truth, "prediction": scores})
    expected = score_predictions(frame, ("pearson", "spearman"))
    assert metric_values("pearson", scores, truth, everything)[0] == pytest.approx(expected["pearson"])
    assert metric_values("spearman", scores, truth, everything)[0] == pytest.approx(expected["spearman"])


def test_paired_bootstrap_matches_scipy_and_separates_chance_from_a_real_gain():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(1)
    a = (rng.uniform(size=400) < 0.70).astype(float)
    b = np.where(rng.uniform(size=400) < 0.1, 1.0, a)  # b fixes about 10% of a's errors: a small real gain
    indices = resample_indices(400, n_resamples=4000, seed=2)
    result = paired_bootstrap("mean", a, b, None, indices)
    assert result.delta == pytest.approx(100 * (b.mean() - a.mean()))
    reference = bootstrap((a, b), lambda x, y, axis: 100 * (y.mean(axis) - x.mean(axis)), paired=True,
                          vectorized=True, n_resamples=4000, method="percentile", random_state=3).confidence_interval
    assert result.ci_low == pytest.approx(reference.low, abs=0.4)
    assert result.ci_high == pytest.approx(reference.high, abs=0.4)
    assert result.ci_low > 0 and result.p_value < 0.01
    same = paired_bootstrap("mean", a, a.copy(), None, indices)
    assert (same.delta, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    shuffled = paired_bootstrap("mean", a, rng.permutation(a), None, indices)  # same accuracy, other examples
    assert shuffled.p_value > 0.2 and shuffled.ci_low < 0 < shuffled.ci_high
