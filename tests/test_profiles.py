"""cluster_profiles: shares by counting, clusters that are known by construction, the chi-square test
against its textbook formula, and bad input; then on real layer_deeplift frames of a tiny model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bert_insight.attribution.profiles import PROFILE_GROUPS, cluster_profiles, layer_focus, profile_shares
from bert_insight.errors import BertInsightInputError
from bert_insight.frames import ATTRIBUTION_COLUMNS

ROLES = ["special", "question", "question", "special", "answer", "supporting", "question_word", "other", "special"]
SEGMENTS = ["special", "question", "question", "special", "context", "context", "context", "context", "special"]
PIECES = ["[CLS]", "what", "?", "[SEP]", "paris", ",", "near", "city", "[SEP]"]


def frames_for(weights_of: dict[str, list[float]], layers=(0, 1)):
    """Attributions and tokens frames with the producers' columns: example e's token scores are
    ``weights_of[e]`` (signs alternate: shares use magnitudes) at every layer, for targets start and end."""
    attribution_rows, token_rows = [], []
    for example_id, weights in weights_of.items():
        for index, (role, segment) in enumerate(zip(ROLES, SEGMENTS)):
            token_rows.append({"example_id": example_id, "token_index": index, "role": role, "segment": segment,
                               "token": PIECES[index]})
            for layer in layers:
                for target in ("start", "end"):
                    score = weights[index] * (-1) ** index
                    attribution_rows.append({
                        "example_id": example_id, "method": "layer_deeplift", "quadrature": "none", "layer": layer,
                        "target": target, "token_index": index, "word_index": index, "segment": segment,
                        "score": score, "norm": abs(score), "importance": 0.0})
    return pd.DataFrame(attribution_rows, columns=list(ATTRIBUTION_COLUMNS)), pd.DataFrame(token_rows)


def test_shares_are_the_counted_magnitudes_per_group():
    weights = [1, 2, 2, 1, 4, 3, 1, 5, 1]  # special 3, question 4, answer 4, supporting 3 + 1, other 5
    attributions, tokens = frames_for({"a": weights})
    shares = profile_shares(attributions, tokens=tokens).set_index(["layer", "group"])["share"]
    expected = {"special": 3 / 20, "question": 4 / 20, "answer": 4 / 20, "supporting": 4 / 20, "other": 5 / 20}
    for group, value in expected.items():
        assert shares.loc[(1, group)] == pytest.approx(value)


def test_layer_focus_counts_cls_sep_punctuation_question_answer_and_passage():
    weights = [1, 2, 2, 1, 4, 3, 1, 5, 1]
    attributions, tokens = frames_for({"a": weights, "b": [2 * w for w in weights]})
    focus = layer_focus(attributions, tokens=tokens).query("layer == 0 and target == 'start'").set_index("kind")
    expected = {"cls": 1 / 20, "sep": 2 / 20, "punctuation": 5 / 20, "question": 2 / 20, "answer": 4 / 20,
                "passage": 6 / 20}
    for kind, value in expected.items():
        assert focus.loc[kind, "share"] == pytest.approx(value)
    assert (focus["n_examples"] == 2).all()


def two_kinds_of_example(n_each: int = 6):
    rng = np.random.default_rng(0)
    weights_of, questions = {}, {}
    for position in range(2 * n_each):
        answer_heavy = position < n_each
        base = np.array([1, 1, 1, 1, 10, 1, 1, 1, 1] if answer_heavy else [6, 1, 1, 6, 1, 1, 1, 1, 6], float)
        weights_of[f"e{position}"] = list(base + rng.uniform(0, 0.3, size=9))
        questions[f"e{position}"] = "When did it happen?" if answer_heavy else "Who built it?"
    attributions, tokens = frames_for(weights_of)
    examples = pd.DataFrame({"example_id": list(questions), "question": list(questions.values()),
                             "is_impossible": [position % 2 == 0 for position in range(2 * n_each)]})
    return attributions, tokens, examples


def test_auto_k_finds_the_two_kinds_and_the_test_sees_question_type_follow_them():
    attributions, tokens, examples = two_kinds_of_example()
    result = cluster_profiles(attributions, tokens=tokens, examples=examples)
    assert result.silhouette.set_index("k")["silhouette"].idxmax() == 2
    cluster_of = result.clusters.set_index("example_id")["cluster"]
    assert cluster_of[[f"e{i}" for i in range(6)]].nunique() == 1
    assert cluster_of[[f"e{i}" for i in range(6)]].iloc[0] != cluster_of[[f"e{i}" for i in range(6, 12)]].iloc[0]
    answer_share = result.profiles.query("layer == 0 and group == 'answer'").set_index("cluster")["share"]
    assert answer_share.max() > 0.5 > answer_share.min()
    tests = result.independence.set_index("variable")
    # Textbook Pearson chi-square of a perfect 2 x 2 split, 6 and 6, with Yates' correction (scipy's default
    # for one degree of freedom): sum (|O - E| - 0.5)^2 / E with O in {6, 0}, E = 3.
    assert tests.loc["question_type", "chi2"] == pytest.approx(4 * (3 - 0.5) ** 2 / 3)
    assert tests.loc["question_type", "p_value"] < 0.05 and tests.loc["question_type", "cramers_v"] > 0.6
    # answerability alternates within both kinds: independent of the clusters
    assert tests.loc["answerable", "p_value"] > 0.5
    mix = result.mix.query("variable == 'question_type'")
    assert mix.groupby("cluster")["share"].sum().round(12).eq(1).all()
    # with predictions: an empty prediction for every answer-heavy example follows the clusters exactly
    predictions = pd.DataFrame({"example_id": examples["example_id"],
                                "pred_text": ["" if i < 6 else "x" for i in range(12)]})
    with_predictions = cluster_profiles(attributions, tokens=tokens, examples=examples, predictions=predictions)
    test = with_predictions.independence.set_index("variable").loc["prediction"]
    assert test["p_value"] < 0.05 and test["cramers_v"] > 0.6


def test_given_k_is_used_and_clusters_are_numbered_by_size():
    attributions, tokens, examples = two_kinds_of_example()
    result = cluster_profiles(attributions, tokens=tokens, examples=examples, k=3, features=["answer", "special"])
    sizes = result.clusters["cluster"].value_counts().sort_index()
    assert len(sizes) == 3 and sizes.is_monotonic_decreasing
    assert set(result.profiles["group"]) == {"answer", "special"}


@pytest.mark.parametrize("change, says", [
    (dict(k=1), "k=1"),
    (dict(k=12), "k=12"),
    (dict(features=["verbs"]), "features="),
])
def test_bad_input_says_what_to_do(change, says):
    attributions, tokens, examples = two_kinds_of_example()
    with pytest.raises(BertInsightInputError, match=says):
        cluster_profiles(attributions, tokens=tokens, examples=examples, **change)


def test_tokens_of_other_windows_are_refused():
    attributions, tokens, examples = two_kinds_of_example()
    with pytest.raises(BertInsightInputError, match="same examples and predictions"):
        cluster_profiles(attributions, tokens=tokens[tokens["token_index"] < 5], examples=examples)


def test_on_real_deeplift_frames_shares_sum_to_one(tiny_handle):
    from bert_insight import predict, tokens as token_frame
    from bert_insight.attribution.layer_deeplift import layer_deeplift
    from tests.test_layer_ig import WINDOW, make_examples

    examples = make_examples(4)
    predictions = predict(tiny_handle, examples, progress=False, **WINDOW)
    attributions, _, _ = layer_deeplift(tiny_handle, examples, predictions=predictions, layers=[0, 3],
                                        progress=False)
    tokens = token_frame(tiny_handle, examples, predictions=predictions)
    shares = profile_shares(attributions, tokens=tokens)
    assert set(shares["group"]) == set(PROFILE_GROUPS)
    assert shares.groupby(["example_id", "layer"])["share"].sum().round(9).eq(1).all()
    result = cluster_profiles(attributions, tokens=tokens, examples=examples, k=2)
    assert sorted(result.clusters["example_id"]) == sorted(examples["example_id"])


def synthetic_focus(sep_peak: int, question_by_layer: list[float]) -> pd.DataFrame:
    rows = []
    for layer, question in enumerate(question_by_layer):
        sep = 0.5 if layer == sep_peak else 0.1
        punctuation = 0.3 if layer == 3 else 0.05
        rest = 1 - sep - punctuation - question
        for target in ("start", "end"):
            for kind, share in (("cls", 0.0), ("sep", sep), ("punctuation", punctuation), ("question", question),
                                ("answer", rest / 2), ("passage", rest / 2)):
                rows.append((layer, target, kind, share))
    return pd.DataFrame(rows, columns=["layer", "target", "kind", "share"])


def test_deeplift2019_comparison_reads_each_finding_from_the_measurements():
    from bert_insight.attribution.deeplift2019 import deeplift2019_comparison

    tokens = pd.DataFrame({"example_id": ["a"] * 4, "token_index": range(4), "token": ["[CLS]", "who", "x", "y"],
                           "segment": ["special", "question", "context", "context"],
                           "role": ["special", "question", "answer", "other"]})
    outputs = pd.DataFrame({"example_id": ["a"] * 4, "token_index": range(4),
                            "start_probability": [0.1, 0.0, 0.8, 0.1], "end_probability": [0.2, 0.0, 0.7, 0.1]})
    paper_like = deeplift2019_comparison(synthetic_focus(0, [0.2, 0.2, 0.05, 0.05, 0.2, 0.2]), outputs=outputs,
                                         tokens=tokens).set_index("finding")
    assert paper_like["agrees"].all()
    assert paper_like.loc["answer_at_output", "ours"] == "0.750"
    flat = outputs.assign(start_probability=0.25, end_probability=0.25)
    unlike = deeplift2019_comparison(synthetic_focus(5, [0.05, 0.05, 0.2, 0.2, 0.05, 0.05]), outputs=flat,
                                     tokens=tokens).set_index("finding")
    assert not unlike.loc[["sep_first", "punctuation_next", "question_dip", "answer_at_output"], "agrees"].any()
    # a [SEP] peak early is not "focus" when [SEP] gets less than twice its share of the tokens
    crowded = tokens.assign(segment=["special", "special", "special", "context"])  # 2 of 4 tokens are [SEP]
    weak = deeplift2019_comparison(synthetic_focus(0, [0.2, 0.2, 0.05, 0.05, 0.2, 0.2]), outputs=outputs,
                                   tokens=crowded).set_index("finding")
    assert not weak.loc["sep_first", "agrees"]
