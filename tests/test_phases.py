"""Transformation phases (van Aken et al. 2019) on hand-made token vectors whose geometry is planted, so
every measure has a value known in advance; projections against sklearn; views render and escape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bokeh.embed import file_html
from bokeh.resources import CDN

from bert_insight import viz
from bert_insight.errors import BertInsightInputError
from bert_insight.phases import (
    failure_separation,
    phase_curves,
    phase_roles,
    phase_scores,
    token_clusters,
    token_projection,
)
from bert_insight.representations import TokenVectors

EVIL = "<script>pwn()</script>"


def make_vectors(layers: dict[int, np.ndarray], roles, *, sentences=None, words=None, example_id="e1",
                 first_index=0) -> TokenVectors:
    """TokenVectors of one example with phase_role / sentence_index given directly (one row per point)."""
    n = len(roles)
    roles = list(roles)
    segments = ["special" if r == "special" else "question" if r == "question" else "context" for r in roles]
    words = words if words is not None else [f"w{i}" for i in range(n)]
    sentences = sentences if sentences is not None else [0 if s == "context" else -1 for s in segments]
    tokens = pd.DataFrame({
        "example_id": example_id, "token_index": np.arange(first_index, first_index + n),
        "token": [w.lower() for w in words], "word_index": np.arange(n), "word": words, "segment": segments,
        "role": roles, "char_start": np.arange(n) * 3, "char_end": np.arange(n) * 3 + 2,
        "in_answer": [r == "prediction" for r in roles], "phase_role": roles,
        "sentence_index": np.asarray(sentences, dtype=int),
    })
    return TokenVectors({layer: np.asarray(points, dtype=np.float32) for layer, points in layers.items()}, tokens)


def concat_vectors(parts: list[TokenVectors]) -> TokenVectors:
    layers = parts[0].layers
    return TokenVectors({layer: np.concatenate([p.vectors[layer] for p in parts]) for layer in layers},
                        pd.concat([p.tokens for p in parts], ignore_index=True))


def scores_of(vectors, **kwargs) -> pd.Series:
    frame = phase_scores(vectors, **kwargs)
    assert len(frame) == len(vectors.layers)
    return frame.iloc[0]


# ---- phase scores on planted geometry ------------------------------------------------------------------
@pytest.mark.parametrize("distance", [0.5, 4.0])
def test_answer_separation_is_centroid_distance_over_the_clouds_spread(distance):
    rng = np.random.default_rng(1)
    cloud = rng.normal(size=(80, 6))
    centre = cloud.mean(axis=0)
    spread = np.sqrt(((cloud - centre) ** 2).sum(axis=1).mean())  # independent of the library
    direction = np.eye(6)[2]
    answer = centre + distance * direction + rng.normal(scale=0.01, size=(3, 6))
    roles = ["special"] + ["other"] * 40 + ["question"] * 40 + ["prediction"] * 3
    points = np.vstack([rng.normal(size=(1, 6)) * 100, cloud, answer])  # a far special token: left out
    row = scores_of(make_vectors({0: points}, roles))
    expected = np.linalg.norm(answer.mean(axis=0) - centre) / spread
    assert row["answer_separation"] == pytest.approx(expected, rel=1e-4)
    assert row["answer_separation"] == pytest.approx(distance / spread, rel=0.02)
    assert row["n_tokens"] == 83


def test_question_fact_ratio_below_one_on_the_fact_above_one_on_the_others():
    rng = np.random.default_rng(2)
    fact = rng.normal(size=(15, 5))
    other = rng.normal(size=(20, 5)) + np.array([20.0, 0, 0, 0, 0])
    roles = ["supporting_fact"] * 15 + ["other"] * 20 + ["question"] * 10
    on_fact = np.vstack([fact, other, fact[:10] + rng.normal(scale=0.01, size=(10, 5))])
    on_other = np.vstack([fact, other, other[:10] + rng.normal(scale=0.01, size=(10, 5))])
    row = phase_scores(make_vectors({0: on_fact, 1: on_other}, roles)).set_index("layer")["question_fact_ratio"]
    assert row[0] < 0.3
    assert row[1] > 3.0
    # and it is the ratio of mean distances, computed here directly
    def mean_distance(a, b):
        return np.linalg.norm(a[:, None] - b[None], axis=-1).mean()
    question = on_fact[35:]
    assert row[0] == pytest.approx(mean_distance(question, fact) / mean_distance(question, other), rel=1e-4)


def test_sentence_purity_is_one_on_separated_sentences_and_chance_is_lower():
    rng = np.random.default_rng(3)
    centres = np.array([[0, 0, 0], [20, 0, 0], [0, 20, 0]], dtype=float)
    sentence = np.repeat([0, 1, 2], 12)
    points = centres[sentence] + rng.normal(size=(36, 3))
    roles = ["other"] * 36
    row = scores_of(make_vectors({0: points}, roles, sentences=sentence))
    assert row["sentence_purity"] == 1.0
    assert row["sentence_purity_chance"] < 0.6
    # with sentence labels that do not follow the blobs, purity falls to chance's level
    shuffled = rng.permutation(sentence)
    mixed = scores_of(make_vectors({0: points}, roles, sentences=shuffled))
    assert mixed["sentence_purity"] < 0.75


def test_role_silhouette_high_on_separated_roles_and_near_zero_on_shuffled_ones():
    rng = np.random.default_rng(4)
    roles = np.repeat(["question", "supporting_fact", "other", "prediction"], 25)
    centres = {"question": 0.0, "supporting_fact": 30.0, "other": 60.0, "prediction": 90.0}
    points = np.array([[centres[r], 0.0, 0.0] for r in roles]) + rng.normal(size=(100, 3))
    assert scores_of(make_vectors({0: points}, roles))["role_silhouette"] > 0.9
    assert abs(scores_of(make_vectors({0: points}, rng.permutation(roles)))["role_silhouette"]) < 0.2
    # one role only: no silhouette
    assert np.isnan(scores_of(make_vectors({0: points}, ["other"] * 100))["role_silhouette"])


def test_same_word_ratio_low_when_occurrences_of_a_word_sit_together():
    rng = np.random.default_rng(5)
    types = [f"word{i}" for i in range(10)]
    words = types * 4  # every content word four times, at different places
    centres = rng.normal(size=(10, 8)) * 10
    together = centres[np.tile(np.arange(10), 4)] + rng.normal(size=(40, 8)) * 0.1
    scattered = rng.normal(size=(40, 8)) * 10
    roles = ["other"] * 40
    low = scores_of(make_vectors({0: together}, roles, words=words))["same_word_ratio"]
    flat = scores_of(make_vectors({0: scattered}, roles, words=words))["same_word_ratio"]
    assert low < 0.05
    assert 0.8 < flat < 1.2
    # stopwords and punctuation never count: with only those repeated, the ratio is undefined
    stop_words = ["the", "of", ",", "and"] * 10
    assert np.isnan(scores_of(make_vectors({0: together}, roles, words=stop_words))["same_word_ratio"])


def test_phase_scores_leave_out_special_tokens_and_the_first_token_on_request():
    rng = np.random.default_rng(6)
    roles = ["question"] + ["other"] * 10 + ["prediction"] * 2 + ["special"]
    points = rng.normal(size=(14, 4))
    vectors = make_vectors({0: points}, roles)
    assert scores_of(vectors)["n_tokens"] == 13
    assert scores_of(vectors, drop_first_token=True)["n_tokens"] == 12
    moved = points.copy()
    moved[-1] += 1000.0  # the special token: moving it changes nothing
    pd.testing.assert_series_equal(scores_of(vectors), scores_of(make_vectors({0: moved}, roles)))


def test_phase_scores_need_phase_roles_first():
    vectors = make_vectors({0: np.zeros((5, 3))}, ["other"] * 5)
    bare = TokenVectors(vectors.vectors, vectors.tokens.drop(columns=["phase_role", "sentence_index"]))
    with pytest.raises(BertInsightInputError, match="call bert_insight.phase_roles"):
        phase_scores(bare)
    with pytest.raises(BertInsightInputError, match="layers"):
        phase_scores(vectors, layers=[3])


# ---- phase_roles ---------------------------------------------------------------------------------------
def hand_tokens() -> TokenVectors:
    # question "Who won?" / context "Denver won. It rained." : sentences [0, 11) and [12, 22)
    rows = [
        ("[CLS]", "special", -1, -1, False), ("who", "question", 0, 3, False), ("won", "question", 4, 7, False),
        ("[SEP]", "special", -1, -1, False), ("denver", "context", 0, 6, True), ("won", "context", 7, 10, False),
        (".", "context", 10, 11, False), ("it", "context", 12, 14, False), ("rained", "context", 15, 21, False),
        (".", "context", 21, 22, False), ("[SEP]", "special", -1, -1, False),
    ]
    tokens = pd.DataFrame(rows, columns=["token", "segment", "char_start", "char_end", "in_answer"])
    tokens.insert(0, "example_id", "q1")
    tokens.insert(1, "token_index", range(len(tokens)))
    tokens["word_index"] = [-1, 0, 1, -1, 0, 1, 2, 3, 4, 5, -1]
    tokens["word"] = tokens["token"]
    tokens["role"] = tokens["segment"]
    return TokenVectors({0: np.zeros((len(tokens), 2), dtype=np.float32)}, tokens)


SENTENCES = pd.DataFrame({"example_id": ["q1", "q1"], "sentence_index": [0, 1], "char_start": [0, 12],
                          "char_end": [11, 22], "text": ["Denver won.", "It rained."],
                          "is_supporting": [True, False]})


def test_phase_roles_precedence_prediction_over_supporting_fact():
    labelled = phase_roles(hand_tokens(), sentences=SENTENCES)
    assert labelled.tokens["phase_role"].tolist() == [
        "special", "question", "question", "special", "prediction", "supporting_fact", "supporting_fact",
        "other", "other", "other", "special"]
    assert labelled.tokens["sentence_index"].tolist() == [-1, -1, -1, -1, 0, 0, 0, 1, 1, 1, -1]
    assert "phase_role" not in hand_tokens().tokens  # the input is left alone
    # the predicted span from a predictions frame: "won." in the supporting sentence -> prediction wins
    predictions = pd.DataFrame({"example_id": ["q1"], "pred_text": ["won."], "pred_start": [7], "pred_end": [11]})
    roles = phase_roles(hand_tokens(), sentences=SENTENCES, predictions=predictions).tokens["phase_role"]
    assert roles.tolist()[4:7] == ["supporting_fact", "prediction", "prediction"]
    # a question token at the same characters is never a prediction (offsets are into the question)
    assert roles.tolist()[1:3] == ["question", "question"]
    null = predictions.assign(pred_start=-1, pred_end=-1, pred_text="")
    assert "prediction" not in set(phase_roles(hand_tokens(), sentences=SENTENCES, predictions=null).tokens["phase_role"])


def test_phase_roles_a_token_in_a_gap_takes_the_sentence_it_overlaps():
    gapped = SENTENCES.assign(char_start=[0, 13])  # sentence 1 starts inside "it"
    labelled = phase_roles(hand_tokens(), sentences=gapped)
    assert labelled.tokens["sentence_index"].tolist()[7] == 1


def test_phase_roles_errors_say_what_to_pass():
    with pytest.raises(BertInsightInputError, match="context_sentences"):
        phase_roles(hand_tokens(), sentences=SENTENCES.assign(example_id="other"))
    with pytest.raises(BertInsightInputError, match="is_supporting"):
        phase_roles(hand_tokens(), sentences=SENTENCES.drop(columns="is_supporting"))
    with pytest.raises(BertInsightInputError, match="no row for 1 example"):
        phase_roles(hand_tokens(), sentences=SENTENCES,
                    predictions=pd.DataFrame({"example_id": ["x"], "pred_start": [0], "pred_end": [1]}))
    with pytest.raises(BertInsightInputError, match="True/False"):
        phase_roles(hand_tokens(), sentences=SENTENCES.assign(is_supporting=["yes", "no"]))


# ---- projections and clusters -------------------------------------------------------------------------
def two_examples(seed=7) -> TokenVectors:
    rng = np.random.default_rng(seed)
    parts = []
    for example_id, n, first in (("a", 20, 0), ("b", 25, 3)):
        roles = ["special"] + ["question"] * 5 + ["other"] * (n - 8) + ["prediction"] * 2
        layers = {layer: rng.normal(size=(n, 10)) * (layer + 1) for layer in range(3)}
        parts.append(make_vectors(layers, roles, example_id=example_id, first_index=first))
    vectors = concat_vectors(parts)
    # rows out of order: "first token" must mean the lowest token_index, not the first row
    order = np.random.default_rng(0).permutation(len(vectors))
    return TokenVectors({layer: array[order] for layer, array in vectors.vectors.items()},
                        vectors.tokens.iloc[order].reset_index(drop=True))


def same_up_to_sign(a: np.ndarray, b: np.ndarray) -> bool:
    return all(np.allclose(a[:, i], b[:, i], atol=1e-6) or np.allclose(a[:, i], -b[:, i], atol=1e-6)
               for i in range(a.shape[1]))


def test_per_example_projection_equals_sklearn_pca_on_that_example():
    from sklearn.decomposition import PCA

    vectors = two_examples()
    projection = token_projection(vectors, method="pca")
    assert set(vectors.tokens.columns) | {"layer", "x", "y"} == set(projection.columns)
    assert projection.columns[1] == "layer"
    for example_id in ("a", "b"):
        rows = (vectors.tokens["example_id"] == example_id).to_numpy()
        for layer in vectors.layers:
            expected = PCA(n_components=2).fit_transform(vectors.vectors[layer][rows].astype(np.float64))
            got = projection[(projection["example_id"] == example_id) & (projection["layer"] == layer)]
            assert got["token_index"].tolist() == vectors.tokens.loc[rows, "token_index"].tolist()
            assert same_up_to_sign(got[["x", "y"]].to_numpy(), expected)
    # one fit over both examples is a different map
    joint = token_projection(vectors, fit="per_layer", layers=[1])
    expected = PCA(n_components=2).fit_transform(vectors.vectors[1].astype(np.float64))
    assert same_up_to_sign(joint[["x", "y"]].to_numpy(), expected)
    assert not same_up_to_sign(joint[["x", "y"]].to_numpy(), projection.loc[projection["layer"] == 1, ["x", "y"]].to_numpy())


def test_drop_first_token_removes_each_examples_first_token_and_changes_the_fit():
    from sklearn.decomposition import PCA

    vectors = two_examples()
    tokens = vectors.tokens
    first_rows = tokens.groupby("example_id")["token_index"].idxmin().to_numpy()
    # the first token far out: with it, PCA's first axis is about that token alone (van Aken 5.2)
    for layer in vectors.layers:
        vectors.vectors[layer][first_rows] += 500.0
    full = token_projection(vectors, layers=[0])
    dropped = token_projection(vectors, layers=[0], drop_first_token=True)
    assert len(full) - len(dropped) == 2
    left_out = set(zip(full["example_id"], full["token_index"])) - set(zip(dropped["example_id"], dropped["token_index"]))
    assert left_out == {("a", 0), ("b", 3)}
    rest = ((tokens["example_id"] == "b") & (tokens["token_index"] != 3)).to_numpy()
    expected = PCA(n_components=2).fit_transform(vectors.vectors[0][rest].astype(np.float64))
    got = dropped[dropped["example_id"] == "b"]
    assert same_up_to_sign(got[["x", "y"]].to_numpy(), expected)
    with_first = full[(full["example_id"] == "b") & (full["token_index"] != 3)]
    assert not same_up_to_sign(with_first[["x", "y"]].to_numpy(), expected)


def test_auto_k_recovers_three_blobs_and_a_fixed_k_is_kept():
    rng = np.random.default_rng(8)
    centres = np.array([[0, 0], [15, 0], [0, 15]], dtype=float)
    label = np.repeat([0, 1, 2], 10)
    points = np.hstack([centres[label], np.zeros((30, 2))]) + rng.normal(size=(30, 4)) * 0.5
    vectors = make_vectors({0: points, 1: rng.normal(size=(30, 4))}, ["other"] * 30)
    clusters = token_clusters(vectors, k="auto")
    layer0 = clusters[clusters["layer"] == 0]
    assert set(layer0["k"]) == {3}
    assert layer0["silhouette"].iloc[0] > 0.8
    # the clusters are the blobs (up to naming)
    assert pd.crosstab(layer0["cluster"], label).gt(0).sum(axis=1).eq(1).all()
    fixed = token_clusters(vectors, k=5, layers=[0])
    assert set(fixed["k"]) == {5} and fixed["cluster"].nunique() == 5
    assert set(clusters.columns) == set(vectors.tokens.columns) | {"layer", "cluster", "k", "silhouette"}


def test_bad_input_to_projections_and_clusters():
    vectors = two_examples()
    with pytest.raises(BertInsightInputError, match="method='umap'"):
        token_projection(vectors, method="umap")
    with pytest.raises(BertInsightInputError, match="fit='per_example'"):
        token_projection(vectors, fit="per_example")
    with pytest.raises(BertInsightInputError, match=r"layers=\[7\]"):
        token_projection(vectors, layers=[7])
    with pytest.raises(BertInsightInputError, match="k_range"):
        token_clusters(vectors, k_range=(1, 4))
    with pytest.raises(BertInsightInputError, match="k='many'"):
        token_clusters(vectors, k="many")


# ---- curves and failure separation ---------------------------------------------------------------------
def synthetic_scores(n=80, seed=9) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    ids = [f"x{i}" for i in range(n)]
    correct = pd.Series(np.arange(n) % 2 == 0, index=ids)
    rows = []
    for layer in range(4):
        for example_id, right in correct.items():
            shift = 4.0 if (layer == 2 and right) else 0.0  # only layer 2 tells them apart
            rows.append({"example_id": example_id, "layer": layer, "n_tokens": 50,
                         "answer_separation": rng.normal() + shift, "question_fact_ratio": rng.normal() + 1.0,
                         "role_silhouette": rng.normal() * 0.1})
    return pd.DataFrame(rows), correct


def test_phase_curves_mean_is_the_groupby_mean_and_the_interval_holds_it():
    scores, _ = synthetic_scores()
    scores.loc[3, "answer_separation"] = np.nan  # an undefined measure is left out, not counted as 0
    curves = phase_curves(scores, n_resamples=500)
    assert list(curves.columns) == ["measure", "layer", "mean", "ci_low", "ci_high", "n", "direction", "peak"]
    expected = scores.groupby("layer")["answer_separation"].mean()
    got = curves[curves["measure"] == "answer_separation"].set_index("layer")
    np.testing.assert_allclose(got["mean"], expected)
    assert (got["ci_low"] <= got["mean"]).all() and (got["mean"] <= got["ci_high"]).all()
    assert got.loc[scores.loc[3, "layer"], "n"] == 79
    assert got["peak"].sum() == 1 and got["peak"].idxmax() == expected.idxmax() == 2
    ratio = curves[curves["measure"] == "question_fact_ratio"].set_index("layer")
    assert set(ratio["direction"]) == {"lower"}
    assert ratio["peak"].idxmax() == ratio["mean"].idxmin()
    assert "n_tokens" not in set(curves["measure"])


def test_failure_separation_finds_the_one_layer_that_separates():
    scores, correct = synthetic_scores()
    result = failure_separation(scores, correct=correct)
    assert list(result.columns) == ["layer", "n", "n_correct", "accuracy", "ci_low", "ci_high", "majority_baseline",
                                    "roc_auc"]
    by_layer = result.set_index("layer")
    assert (by_layer["n"] == 80).all() and (by_layer["n_correct"] == 40).all()
    assert (by_layer["majority_baseline"] == 0.5).all()
    assert by_layer.loc[2, "accuracy"] > 0.95 and by_layer.loc[2, "roc_auc"] > 0.98
    for layer in (0, 1, 3):
        assert abs(by_layer.loc[layer, "accuracy"] - 0.5) < 0.2
        assert abs(by_layer.loc[layer, "roc_auc"] - 0.5) < 0.2
    assert (by_layer["ci_low"] <= by_layer["accuracy"]).all() and (by_layer["accuracy"] <= by_layer["ci_high"]).all()
    # the frame form of `correct` gives the same
    as_frame = pd.DataFrame({"example_id": correct.index, "correct": correct.to_numpy()})
    pd.testing.assert_frame_equal(failure_separation(scores, correct=as_frame), result)


def test_failure_separation_refuses_a_class_smaller_than_the_folds():
    scores, correct = synthetic_scores(n=20)
    few = correct.copy()
    few[:] = True
    few.iloc[:3] = False
    with pytest.raises(BertInsightInputError, match="fewer than n_splits=5"):
        failure_separation(scores, correct=few)
    with pytest.raises(BertInsightInputError, match="no value for"):
        failure_separation(scores, correct=correct.iloc[:10])


def test_wilson_interval_matches_the_textbook_value():
    # 8 of 10 at 95%: Wilson interval (0.490, 0.943)
    from bert_insight.phases import _wilson

    low, high = _wilson(8, 10, 0.95)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)


# ---- views --------------------------------------------------------------------------------------------
def labelled_projection() -> pd.DataFrame:
    vectors = two_examples()
    vectors.tokens.loc[vectors.tokens["token_index"] == 5, "token"] = EVIL
    return token_projection(vectors, method="pca")


def test_phase_view_renders_escapes_and_carries_every_layer():
    projection = labelled_projection()
    layout = viz.phase_view(projection, example_id="a", layer=1)
    page = file_html(layout, CDN, "phase view")
    assert "<script>pwn" not in page and "pwn()</script>" not in page
    source = layout.select_one({"name": "phase_points"})
    shown = projection[(projection["example_id"] == "a") & (projection["layer"] == 1)].sort_values("token_index")
    np.testing.assert_allclose(source.data["x"], shown["x"])
    markers = dict(zip(source.data["phase_role"], source.data["marker"]))
    assert markers["prediction"] == "diamond" and markers["question"] == "star"
    slider = layout.select_one({"name": "layer_slider"})
    assert (slider.start, slider.end, slider.value) == (0, 2, 1)
    payload = slider.js_property_callbacks["change:value"][0].args["payloads"][0]
    assert sorted(payload) == ["0", "1", "2"]
    by_sentence = viz.phase_view(projection, example_id="b", color_by="sentence_index")
    file_html(by_sentence, CDN, "by sentence")


def test_failure_view_and_cluster_colouring_share_one_slider():
    projection = labelled_projection()
    vectors = two_examples()
    clusters = token_clusters(vectors, k=2)
    layout = viz.failure_view(projection, right_example_id="a", wrong_example_id="b", layers=[1, 2],
                              color_by="cluster", clusters=clusters)
    page = file_html(layout, CDN, "failure view")
    assert "<script>pwn" not in page and "pwn()</script>" not in page
    right, wrong = layout.select_one({"name": "right_points"}), layout.select_one({"name": "wrong_points"})
    assert len(right.data["x"]) == 20 and len(wrong.data["x"]) == 25
    sliders = list(layout.select({"name": "layer_slider"}))
    assert len(sliders) == 1 and sliders[0].start == 1
    assert len(sliders[0].js_property_callbacks["change:value"][0].args["sources"]) == 2


def test_phase_curve_view_renders_every_measure():
    scores, _ = synthetic_scores()
    curves = phase_curves(scores, n_resamples=200)
    layout = viz.phase_curve_view(curves)
    file_html(layout, CDN, "curves")
    names = {source.name for source in layout.select({"type": __import__("bokeh.models").models.ColumnDataSource})
             if source.name}
    assert names == {"curve-answer_separation", "curve-question_fact_ratio", "curve-role_silhouette"}


def test_views_refuse_bad_input():
    projection = labelled_projection()
    with pytest.raises(BertInsightInputError, match="color_by='colour'"):
        viz.phase_view(projection, example_id="a", color_by="colour")
    with pytest.raises(BertInsightInputError, match="several example_id"):
        viz.phase_view(projection)
    with pytest.raises(BertInsightInputError, match="token_clusters"):
        viz.phase_view(projection, example_id="a", color_by="cluster")
    with pytest.raises(BertInsightInputError, match="phase_roles"):
        viz.phase_view(projection.drop(columns="phase_role"), example_id="a")
    with pytest.raises(BertInsightInputError, match="holds layers"):
        viz.phase_view(projection, example_id="a", layer=9)
    with pytest.raises(BertInsightInputError, match="no rows for example"):
        viz.phase_view(projection, example_id="zz")
