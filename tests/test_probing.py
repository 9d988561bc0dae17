"""Edge probing (Tenney et al. 2019): summary statistics, micro-F1, the probe bank, encoding, EdgeProbe."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_classifier
from sklearn.base import clone
from sklearn.metrics import precision_recall_fscore_support

from bert_insight import BertInsightInputError, from_model
from bert_insight.data.edge_tasks import make_task
from bert_insight.probing import (
    EdgeProbe,
    center_of_gravity,
    differential_scores,
    encode_targets,
    expected_layer,
    kl_to_uniform,
    micro_f1,
    probe_traces,
)
from bert_insight.probing.bank import ProbeBank, ProbeSpec
from bert_insight.probing.edge import plan_probes, probe_encoded
from bert_insight.probing.encode import EncodedTargets
from bert_insight.probing.train import ProbeSettings, macro_f1, predict_bank, train_bank


# ---- summary statistics (hand-computed) ---------------------------------------------------------------------
def test_center_of_gravity_is_the_mean_layer_of_the_weights():
    assert center_of_gravity([0.1, 0.2, 0.7]) == pytest.approx(0 * 0.1 + 1 * 0.2 + 2 * 0.7)
    assert center_of_gravity([0, 0, 0, 1]) == 3
    with pytest.raises(BertInsightInputError, match="sum to 1"):
        center_of_gravity([0.5, 0.6])


def test_expected_layer_follows_equation_4_with_negative_and_zero_sum_deltas():
    np.testing.assert_allclose(differential_scores([50, 60, 70, 75]), [10, 10, 5])
    assert expected_layer([50, 60, 70, 75]) == pytest.approx((1 * 10 + 2 * 10 + 3 * 5) / 25)
    # A distracting layer (negative delta) enters with its sign.
    assert expected_layer([50, 70, 65, 75]) == pytest.approx((1 * 20 + 2 * -5 + 3 * 10) / 25)
    # No net gain above layer 0: undefined, NaN, not a division by zero.
    assert math.isnan(expected_layer([50, 60, 50]))
    assert math.isnan(expected_layer([70, 60, 65]))
    with pytest.raises(BertInsightInputError, match="two scores"):
        expected_layer([50])


def test_kl_to_uniform_is_zero_for_uniform_and_log_n_for_one_hot():
    assert kl_to_uniform([0.25] * 4) == pytest.approx(0.0)
    assert kl_to_uniform([0, 0, 1, 0]) == pytest.approx(math.log(4))
    p = np.array([0.5, 0.3, 0.2])
    assert kl_to_uniform(p) == pytest.approx(float((p * np.log(p * 3)).sum()))
    # Deltas: negatives count as 0 before normalising; none positive -> NaN.
    assert kl_to_uniform([2, -1, 2]) == pytest.approx(kl_to_uniform([0.5, 0, 0.5]))
    assert math.isnan(kl_to_uniform([-1, 0, -2]))


def test_micro_f1_equals_sklearn_on_multilabel_decisions():
    rng = np.random.default_rng(0)
    probabilities = rng.random((200, 7))
    labels = rng.random((200, 7)) < 0.3
    precision, recall, f1, _ = precision_recall_fscore_support(labels, probabilities > 0.5, average="micro")
    np.testing.assert_allclose(micro_f1(probabilities, labels), [100 * precision, 100 * recall, 100 * f1])
    # A binary task (one label): the positive label's F1.
    one = rng.random((50, 1))
    gold = rng.random((50, 1)) < 0.5
    from sklearn.metrics import f1_score

    assert micro_f1(one, gold)[2] == pytest.approx(100 * f1_score(gold[:, 0], one[:, 0] > 0.5))
    assert micro_f1(np.zeros((3, 2)), np.zeros((3, 2), dtype=bool)) == (0.0, 0.0, 0.0)


def test_macro_f1_equals_sklearn_per_label_mean_and_binary_two_class_mean():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    probabilities = rng.random((300, 5))
    labels = rng.random((300, 5)) < 0.4
    expected = f1_score(labels, probabilities > 0.5, average="macro", zero_division=1)
    assert macro_f1(probabilities, labels) == pytest.approx(100 * expected)
    # Binary: the mean of the positive and the negative class's F1 (sklearn's macro over both classes).
    one = rng.random((80, 1))
    gold = rng.random((80, 1)) < 0.3
    assert macro_f1(one, gold) == pytest.approx(100 * f1_score(gold[:, 0], one[:, 0] > 0.5, average="macro"))
    # The majority class everywhere: the positive class scores 0, the negative one 2p / (1 + p).
    majority = np.zeros((10, 1))
    gold = np.zeros((10, 1), dtype=bool)
    gold[:3] = True
    assert macro_f1(majority, gold) == pytest.approx(100 * (0 + 2 * 0.7 / 1.7) / 2)


# ---- a synthetic task with its label planted in one layer -------------------------------------------------
def planted(n_texts: int, *, layer: int, n_layers: int = 5, size: int = 16, n_labels: int = 3, seed: int = 0,
            strength: float = 2.0,
            two_spans: bool = False) -> EncodedTargets:
    """Three tokens per text, one target per text over tokens [0, 2) (and span2 = token 2): only hidden
    state ``layer`` carries the label (a class direction plus noise); every other layer is noise."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_labels, size)) * strength
    labels = rng.integers(0, n_labels, size=n_texts)
    states = rng.normal(size=(3 * n_texts, n_layers, size))
    for text, label in enumerate(labels):
        states[3 * text: 3 * text + 3, layer] += directions[label]
    span1 = np.stack([3 * np.arange(n_texts), 3 * np.arange(n_texts) + 2], axis=1)
    span2 = span1[:, :1] + np.array([[2, 3]]) if two_spans else None
    names = tuple(f"c{k}" for k in range(n_labels))
    targets = pd.DataFrame({"split": "train", "text_id": [f"t{i}" for i in range(n_texts)],
                            "target_id": [f"t{i}:0" for i in range(n_texts)], "span1_start": 0, "span1_end": 2,
                            "span2_start": -1, "span2_end": -1, "labels": [(names[k],) for k in labels]})
    return EncodedTargets(states.astype(np.float16), tuple(range(n_layers)), span1, span2,
                          np.eye(n_labels, dtype=bool)[labels], names, targets, "planted")


FAST = ProbeSettings(hidden_size=32, dropout=0.0, lr=3e-3, batch_size=32, max_epochs=25, patience=25)


def test_probes_find_the_layer_that_holds_the_label():
    # A weak signal (noise from the other layers matters), so the mix gains by concentrating on layer 3.
    train = planted(600, layer=3, seed=1, strength=0.8)
    evaluation = planted(900, layer=3, seed=1, strength=0.8).subset(np.arange(600, 900))
    result = probe_encoded(train, evaluation, modes=("layer", "cumulative", "mix"), layers=range(5), num_layers=4,
                           settings=FAST, seed=0)
    f1 = result.scores[result.scores["metric"] == "f1"]
    single = f1[f1["mode"] == "layer"].set_index("layer")["value"]
    assert single.idxmax() == 3 and single[3] > 95 and single.drop(3).max() < 60
    cumulative = f1[f1["mode"] == "cumulative"].set_index("layer")["value"]
    assert cumulative[3] > 95 and cumulative[:2].max() < 60
    delta = result.deltas.set_index("layer")["delta"]
    assert delta.idxmax() == 3
    summary = result.summary.iloc[0]
    assert abs(summary["expected_layer"] - 3) < 0.35
    weights = result.weights.set_index("layer")["weight"]
    assert weights.idxmax() == 3 and weights[3] > 2 / 5  # twice the uniform weight
    assert summary["center_of_gravity"] > 2.2  # uniform weights give 2.0
    assert summary["kl_weights"] > 0.05 and summary["kl_delta"] > 1.0  # Delta sits on one layer: KL near log 4
    assert weights.sum() == pytest.approx(1.0)
    # the full mix is P^(L), trained once
    assert result.probes[("mix", 4)] == result.probes[("cumulative", 4)]
    assert result.probes[("layer", 0)] == result.probes[("cumulative", 0)]


def test_a_probe_trains_the_same_alone_or_in_a_bank():
    """Separate parameters, a summed loss and element-wise Adam: training together changes nothing."""
    data = planted(200, layer=2, seed=3, two_spans=True)
    a, b = ProbeSpec("layer", 2, (2,)), ProbeSpec("cumulative", 3, (0, 1, 2, 3))
    settings = ProbeSettings(hidden_size=16, dropout=0.0, lr=1e-3, batch_size=16, max_epochs=3, patience=3)
    together, _ = train_bank([a, b], data, settings=settings, seed=5)
    alone, _ = train_bank([b], data, settings=settings, seed=5)
    joint = together.probe_state(1)
    single = alone.probe_state(0)
    for name in single:
        torch.testing.assert_close(joint[name], single[name], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(predict_bank(together, data)[1], predict_bank(alone, data)[0], atol=1e-4)


def test_bank_initialisation_does_not_depend_on_the_other_probes():
    a, b, c = ProbeSpec("layer", 0, (0,)), ProbeSpec("layer", 1, (1,)), ProbeSpec("mix", 2, (0, 1, 2))
    first = ProbeBank([a, b, c], n_layers=3, input_size=8, n_labels=2, two_spans=False, hidden_size=8, seed=1)
    second = ProbeBank([c], n_layers=3, input_size=8, n_labels=2, two_spans=False, hidden_size=8, seed=1)
    for name, value in second.probe_state(0).items():
        torch.testing.assert_close(first.probe_state(2)[name], value)
    weights = first.mix_weights().detach()
    torch.testing.assert_close(weights[0], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(weights[2], torch.full((3,), 1 / 3))


def test_plan_probes_trains_each_distinct_probe_once():
    specs, rows = plan_probes(("layer", "cumulative", "mix"), [0, 1, 2], 2)
    assert [spec.allowed for spec in specs] == [(0,), (1,), (2,), (0, 1), (0, 1, 2)]
    assert rows[("cumulative", 0)] == rows[("layer", 0)] and rows[("mix", 2)] == rows[("cumulative", 2)]


# ---- EdgeProbe: estimator conventions ---------------------------------------------------------------------
def test_edge_probe_estimator_contract():
    data = planted(300, layer=1, n_layers=3, seed=2)
    probe = EdgeProbe(layer=1, mix="cumulative", hidden_size=16, lr=3e-3, max_epochs=4, patience=4, seed=7)
    assert probe.get_params()["layer"] == 1 and not hasattr(probe, "weights_")
    assert clone(probe).get_params() == probe.get_params()
    assert probe.fit(data) is probe
    assert list(probe.layers_) == [0, 1] and probe.weights_.sum() == pytest.approx(1.0)
    first = probe.predict_proba(data)
    again = EdgeProbe(**probe.get_params()).fit(data).predict_proba(data)
    np.testing.assert_array_equal(first, again)  # refit with the same seed is deterministic
    assert probe.score(data) == pytest.approx(micro_f1(first, data.labels)[2])
    single = EdgeProbe(layer=2, mix="none", max_epochs=1, hidden_size=8).fit(data)
    np.testing.assert_array_equal(single.weights_, [1.0])


def test_edge_probe_bad_input_gets_clear_errors():
    data = planted(60, layer=1, n_layers=3)
    with pytest.raises(BertInsightInputError, match="needs layer"):
        EdgeProbe(mix="none").fit(data)
    with pytest.raises(BertInsightInputError, match="leave layer=None"):
        EdgeProbe(layer=1, mix="scalar").fit(data)
    with pytest.raises(BertInsightInputError, match="was not encoded"):
        EdgeProbe(layer=7).fit(data)
    with pytest.raises(BertInsightInputError, match="not fitted"):
        EdgeProbe(layer=1).predict(data)
    with pytest.raises(BertInsightInputError, match="EncodedTargets"):
        EdgeProbe(layer=1).fit(np.zeros((3, 4)))
    with pytest.raises(BertInsightInputError, match="dropout"):
        EdgeProbe(layer=1, dropout=1.5).fit(data)
    fitted = EdgeProbe(layer=1, max_epochs=1, hidden_size=8).fit(data)
    other = planted(60, layer=1, n_layers=3, n_labels=4)
    with pytest.raises(BertInsightInputError, match="labels differ"):
        fitted.predict(other)


# ---- encoding through a real (tiny) model -----------------------------------------------------------------
def word_task(sentences: list[list[str]], *, two_spans: bool = False):
    texts = [("train" if i % 4 else "dev", f"s{i}", words) for i, words in enumerate(sentences)]
    targets = []
    for split, text_id, words in texts:
        for j in range(len(words)):
            if two_spans:
                if j + 1 < len(words):
                    targets.append((split, text_id, j, j + 1, j + 1, len(words), "right" if j % 2 else "left"))
            else:
                targets.append((split, text_id, j, min(j + 2, len(words)), -1, -1, "long" if len(words[j]) > 3 else "short"))
    return make_task("toy", texts, targets, two_spans=two_spans)


SENTENCES = [["The", "unbelievably", "quick", "fox", "jumped", "."], ["Dogs", "bark", "!"],
             ["Tokenisation", "splits", "words", "into", "pieces", "sometimes"], ["A", "b"],
             ["Hello", ",", "world"], ["Zebras", "eat", "grass", "daily", "."]]


def test_encoded_states_are_the_models_hidden_states_of_the_span_pieces(tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    task = word_task(SENTENCES, two_spans=True)
    encoded = encode_targets(handle, task, batch_size=2, progress=False)
    assert len(encoded) == len(task.targets) and encoded.layers == (0, 1, 2, 3)
    assert list(encoded.targets["target_id"]) == list(task.targets["target_id"])
    for row, target in encoded.targets.iterrows():
        words = dict(zip(task.texts["text_id"], task.texts["words"]))[target["text_id"]]
        # Reference: the tokenizer's own word ids over the pre-split words, one unpadded forward.
        encoding = tokenizer(list(words), is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            hidden = torch.stack(handle.model(**encoding, output_hidden_states=True).hidden_states, dim=2)[0]
        word_ids = encoding.word_ids()
        for span, (start, end) in ((encoded.span1[row], (target["span1_start"], target["span1_end"])),
                                   (encoded.span2[row], (target["span2_start"], target["span2_end"]))):
            pieces = [i for i, w in enumerate(word_ids) if w is not None and start <= w < end]
            got = encoded.states[span[0]: span[1]].astype(np.float32)
            np.testing.assert_allclose(got, hidden[pieces].numpy(), atol=2e-2, rtol=1e-2)  # float16 storage
    np.testing.assert_array_equal(encoded.labels.sum(axis=1), 1)


def test_targets_past_max_length_are_dropped_and_counted(tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    long = [f"word{i}" for i in range(40)]  # two or more pieces each
    task = make_task("toy", [("train", "a", long)],
                     [("train", "a", i, i + 1, -1, -1, "x") for i in range(40)], two_spans=False)
    encoded = encode_targets(handle, task, max_length=16, progress=False)
    kept = len(encoded)
    assert 0 < kept < 40 and sum(encoded.dropped.values()) == 40 - kept
    assert all("max_length=16" in reason for reason in encoded.dropped)
    pieces = tokenizer(long, is_split_into_words=True, truncation=True, max_length=16).word_ids()
    complete = {w for w in pieces if w is not None and pieces.count(w) == tokenizer(long, is_split_into_words=True
                                                                                      ).word_ids().count(w)}
    assert set(encoded.targets["span1_start"]) == complete


def test_encoded_states_come_back_from_the_cache(tokenizer, tmp_path):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    task = word_task(SENTENCES)
    first = encode_targets(handle, task, cache_dir=tmp_path, progress=False)
    files = list((tmp_path / "edge_states").glob("*.npz"))
    assert len(files) == 1
    second = encode_targets(handle, task, cache_dir=tmp_path, progress=False)
    assert second.attrs.get("cached") == str(files[0])
    np.testing.assert_array_equal(first.states, second.states)
    np.testing.assert_array_equal(first.span1, second.span1)
    files[0].write_bytes(b"not an npz")  # a corrupt entry is recomputed
    third = encode_targets(handle, task, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first.states, third.states)


def test_probe_traces_pick_the_targets_with_a_weak_best_label():
    train = planted(300, layer=2, n_layers=3, seed=4)
    evaluation = planted(400, layer=2, n_layers=3, seed=4).subset(np.arange(300, 400))
    settings = ProbeSettings(hidden_size=16, dropout=0.0, lr=3e-3, max_epochs=3, patience=3)
    result = probe_encoded(train, evaluation, modes=("cumulative",), layers=range(3), num_layers=2, settings=settings)
    traces = probe_traces(result, max_mean_prob=0.7)
    probabilities = predict_bank(result.bank, evaluation)[[result.probes[("cumulative", l)] for l in range(3)]]
    hard = set(evaluation.targets["target_id"][probabilities.mean(axis=0).max(axis=1) <= 0.7])
    assert set(traces["target_id"]) == hard and hard
    one = traces[traces["target_id"] == sorted(hard)[0]]
    assert sorted(one["layer"].unique()) == [0, 1, 2]
    assert one.groupby("label")["is_gold"].first().sum() == 1 and one["label"].nunique() == 2
    with pytest.raises(BertInsightInputError, match="no 'layer' probes"):
        probe_traces(result, mode="layer")


def test_probe_trace_view_draws_the_gold_and_the_strongest_wrong_label_per_layer():
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    from bert_insight import viz
    from bert_insight.viz.probing import GOLD_COLOR, WRONG_COLOR

    traces = pd.DataFrame({"task": "pos", "text_id": "a", "target_id": "a:0", "span1_text": "<b>Lead</b>",
                           "span2_text": "", "layer": [0, 1, 2, 0, 1, 2], "label": ["NN"] * 3 + ["VB"] * 3,
                           "is_gold": [True] * 3 + [False] * 3, "probability": [0.2, 0.5, 0.9, 0.7, 0.4, 0.1]})
    layout = viz.probe_trace_view(traces)
    source = layout.select_one({"name": "trace-a:0"})
    shown = pd.DataFrame({key: list(source.data[key]) for key in ("layer", "label", "probability", "color")})
    expected = traces[["layer", "label", "probability"]].assign(
        color=[GOLD_COLOR] * 3 + [WRONG_COLOR] * 3).sort_values(["layer", "label"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(shown.sort_values(["layer", "label"]).reset_index(drop=True), expected)
    # gold bars sit left of the wrong ones at every layer
    x = dict(zip(zip(source.data["layer"], source.data["label"]), source.data["x"]))
    assert all(x[(layer, "NN")] < x[(layer, "VB")] for layer in range(3))
    assert "cdn.bokeh.org" not in file_html(layout, INLINE, "trace")
    with pytest.raises(BertInsightInputError, match="not in the traces"):
        viz.probe_trace_view(traces, target_id="zzz")
    with pytest.raises(BertInsightInputError, match="empty"):
        viz.probe_trace_view(traces.iloc[:0])


# ---- the task format -------------------------------------------------------------------------------------
def test_a_malformed_task_gets_one_clear_error():
    texts = [("train", "a", ["The", "cat", "sat"]), ("dev", "b", ["A", "dog"])]
    good = [("train", "a", 0, 1, -1, -1, "DT"), ("dev", "b", 1, 2, -1, -1, "NN")]
    make_task("pos", texts, good, two_spans=False)
    with pytest.raises(BertInsightInputError, match="has no targets"):
        make_task("pos", texts, [], two_spans=False)
    with pytest.raises(BertInsightInputError, match=r"span1 \[2, 4\) outside its text of 3 words"):
        make_task("pos", texts, [("train", "a", 2, 4, -1, -1, "NN")], two_spans=False)
    with pytest.raises(BertInsightInputError, match="outside its text"):
        make_task("pos", texts, [("train", "a", 1, 1, -1, -1, "NN")], two_spans=False)  # empty span
    with pytest.raises(BertInsightInputError, match=r"labels \['VB'\] that are not in the task's labels"):
        make_task("pos", texts, good + [("dev", "b", 0, 1, -1, -1, "VB")], labels=["DT", "NN"], two_spans=False)
    with pytest.raises(BertInsightInputError, match="single-span task but some targets have a span2"):
        make_task("pos", texts, [("train", "a", 0, 1, 1, 2, "DT")], two_spans=False)
    with pytest.raises(BertInsightInputError, match="not in texts"):
        make_task("pos", texts, [("train", "zzz", 0, 1, -1, -1, "DT")], two_spans=False)
    with pytest.raises(BertInsightInputError, match="unknown edge task"):
        __import__("bert_insight").load_edge_task("ner")


def test_jiant_json_round_trip_keeps_every_target(tmp_path):
    from bert_insight import read_jiant_json

    task = word_task(SENTENCES, two_spans=True)
    paths = task.to_jiant_json(tmp_path)
    assert sorted(paths) == ["dev", "train"]
    back = read_jiant_json(tmp_path, name="toy", labels=task.labels)
    assert back.two_spans and back.labels == task.labels
    columns = ["split", "text_id", "span1_start", "span1_end", "span2_start", "span2_end", "labels"]
    pd.testing.assert_frame_equal(back.targets[columns].sort_values(columns[:4]).reset_index(drop=True),
                                  task.targets[columns].sort_values(columns[:4]).reset_index(drop=True))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train.json").write_text('{"text": "a b", "targets": [{"span1": [0]}]}\n')
    with pytest.raises(BertInsightInputError, match="line 1: not a jiant edge-probing record"):
        read_jiant_json(tmp_path / "bad", name="bad")


def test_sample_keeps_whole_texts_and_the_budget():
    task = word_task(SENTENCES * 5)
    part = task.sample("train", 20, seed=3)
    assert len(part.targets) == 20 and set(part.targets["split"]) == {"train"}
    counts = task.targets.groupby("text_id").size()
    kept = part.targets.groupby("text_id").size()
    assert (kept == counts[kept.index]).sum() >= len(kept) - 1  # only the last text may be cut
    np.testing.assert_array_equal(task.sample("train", 20, seed=3).targets["target_id"], part.targets["target_id"])


def test_text_pairs_are_encoded_as_the_models_sentence_pairs(tokenizer):
    """A question and its passage: words[:n_words_a] are text_a, the rest text_b (token types 0 / 1)."""
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    question = ["Who", "wrote", "Hamlet", "?"]
    passage = ["Shakespeare", "wrote", "it", ".", "Hamlet", "is", "unbelievably", "long", "."]
    texts = [("train", "q1", question + passage, len(question))]
    targets = [("train", "q1", 0, 4, 4, 8, "supporting"), ("train", "q1", 2, 3, 8, 9, "other")]
    task = make_task("pairs", texts, targets, two_spans=True)
    encoded = encode_targets(handle, task, progress=False)
    encoding = tokenizer(question, passage, is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        hidden = torch.stack(handle.model(**encoding, output_hidden_states=True).hidden_states, dim=2)[0]
    sequence_ids, word_ids = encoding.sequence_ids(), encoding.word_ids()
    joined = [None if s is None else (w if s == 0 else w + len(question)) for s, w in zip(sequence_ids, word_ids)]
    for row, target in encoded.targets.iterrows():
        for span, (start, end) in ((encoded.span1[row], (target["span1_start"], target["span1_end"])),
                                   (encoded.span2[row], (target["span2_start"], target["span2_end"]))):
            pieces = [i for i, w in enumerate(joined) if w is not None and start <= w < end]
            np.testing.assert_allclose(encoded.states[span[0]: span[1]].astype(np.float32), hidden[pieces].numpy(),
                                       atol=2e-2, rtol=1e-2)
    with pytest.raises(BertInsightInputError, match="at least one word on each side"):
        make_task("pairs", [("train", "q1", question, 4)], [("train", "q1", 0, 1, 1, 2, "x")], two_spans=True)
