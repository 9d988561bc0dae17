"""Attention-pattern classes (Kovaleva et al. 2019, section 4.1): images, rules, the shipped CNN and the verbs.

Needs only the bundled data (the labelled maps and the CNN in data/bundled/attention_patterns) and
tiny random models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_classifier
from bokeh.models import GlyphRenderer
from sklearn.base import clone
from sklearn.metrics import f1_score

from bert_insight import (
    AttentionPatternClassifier,
    BertInsightInputError,
    attention_classes,
    class_proportions,
    from_model,
)
from bert_insight.attention.maps import attention_maps
from bert_insight.attention.patterns import (
    CLASS_COLUMNS,
    PATTERN_CLASSES,
    PROPORTION_COLUMNS,
    downsample,
    load_labelled_patterns,
    load_pattern_classifier,
    pattern_features,
    pattern_image,
    rule_label,
    segment_ids,
)


# ---- synthetic maps of a known class ------------------------------------------------------------------
def pair_kinds(n: int) -> np.ndarray:
    """[CLS] a ... [SEP] b ... [SEP] over n tokens, the first segment a little shorter than the second."""
    first_sep = n // 2 - 1
    kinds = np.full(n, "other", dtype=object)
    kinds[0], kinds[first_sep], kinds[-1] = "cls", "sep", "sep"
    return kinds


def normalised(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum(axis=1, keepdims=True)


def previous_token(n: int) -> np.ndarray:
    weights = np.zeros((n, n))
    weights[np.arange(1, n), np.arange(n - 1)] = 1.0
    weights[0, 0] = 1.0
    return weights


def synthetic(kind: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    kinds = pair_kinds(n)
    uniform = np.full((n, n), 1.0 / n)
    special = np.flatnonzero(np.isin(kinds, ("cls", "sep")))
    if kind == "diagonal":
        # Pure: the shipped CNN calls a short (T <= 16) diagonal with a uniform haze vertical_diagonal
        # (documented in attention.patterns); from T = 20 on the haze does not matter.
        weights = previous_token(n)
    elif kind == "vertical":
        weights = 0.1 * uniform
        weights[:, special[0]] += 0.6
        weights[:, special[1:]] += 0.3 / (len(special) - 1)
    elif kind == "vertical_diagonal":
        weights = 0.05 * uniform
        weights[:, 0] += 0.5
        weights += 0.45 * previous_token(n)
    elif kind == "block":
        segments = segment_ids(kinds)
        same = (segments[:, None] == segments[None, :]) & (segments[:, None] >= 0)
        weights = 0.9 * normalised(same + 1e-9) + 0.1 * uniform
        weights[segments < 0] = 1.0 / n
    elif kind == "heterogeneous":
        weights = rng.dirichlet(np.ones(n), size=n)
    else:
        raise ValueError(kind)
    return normalised(weights), kinds


SIZES = {"diagonal": (12, 40, 100), "vertical": (12, 40, 100), "vertical_diagonal": (12, 40, 100),
         "block": (30, 60, 120), "heterogeneous": (12, 40, 100)}
CASES = [(kind, n) for kind in PATTERN_CLASSES for n in SIZES[kind]]


@pytest.fixture(scope="module")
def shipped():
    return load_pattern_classifier()


@pytest.mark.parametrize("n", [20, 40, 100])
def test_a_diagonal_with_a_uniform_haze_stays_diagonal_from_twenty_tokens(n, shipped):
    weights, kinds = synthetic("diagonal", n)
    hazy = 0.9 * weights + 0.1 / n
    assert rule_label(pattern_features(hazy, kinds)) == "diagonal"
    assert shipped.predict(pattern_image(hazy, kinds)[None])[0] == "diagonal"


@pytest.mark.parametrize("kind,n", CASES)
def test_rules_and_shipped_classifier_recognise_synthetic_patterns(kind, n, shipped):
    weights, kinds = synthetic(kind, n, seed=n)
    assert rule_label(pattern_features(weights, kinds)) == kind
    probabilities = shipped.predict_proba(pattern_image(weights, kinds)[None])
    assert shipped.classes_[probabilities.argmax()] == kind, dict(zip(shipped.classes_, probabilities[0].round(3)))


# ---- images and features ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 7, 32, 33, 100, 384])
def test_downsample_keeps_rows_stochastic_at_any_length(n):
    weights = normalised(np.random.default_rng(n).random((n, n)))
    image = downsample(weights, 32)
    assert image.shape == (32, 32)
    np.testing.assert_allclose(image.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(downsample(np.full((n, n), 1.0 / n)), 1.0 / 32, atol=1e-12)


def test_downsample_is_identity_at_size_and_keeps_a_diagonal_one_bin_wide():
    weights = normalised(np.random.default_rng(0).random((32, 32)))
    np.testing.assert_allclose(downsample(weights, 32), weights, atol=1e-12)
    image = downsample(np.eye(128), 32)
    np.testing.assert_allclose(np.diag(image), 1.0, atol=1e-12)
    small = downsample(np.eye(8), 32)  # upsampled by repetition: 4 x 4 blocks, rows still sum to 1
    np.testing.assert_allclose(small[:4, :4], 0.25)
    np.testing.assert_allclose(small.sum(axis=1), 1.0)


def test_stacked_maps_downsample_like_single_ones():
    weights, kinds = synthetic("heterogeneous", 50)
    stack = np.stack([weights, previous_token(50)])
    np.testing.assert_allclose(downsample(stack)[1], downsample(previous_token(50)))
    assert pattern_image(stack, kinds).shape == (2, 4, 32, 32)


def test_features_measure_what_they_name():
    weights, kinds = synthetic("vertical", 40)
    features = pattern_features(weights, kinds)
    assert features["to_cls"] == pytest.approx(0.6 + 0.1 / 40)
    assert features["to_sep"] == pytest.approx(0.3 + 0.2 / 40)
    assert features["n_segments"] == 2 and features["n_tokens"] == 40
    diagonal = pattern_features(previous_token(40), kinds)
    assert diagonal["offset_minus1"] == pytest.approx(39 / 40) and diagonal["band"] == pytest.approx(1.0)
    assert diagonal["entropy"] == pytest.approx(0.0, abs=1e-9)


# ---- the shipped classifier and labelled set ---------------------------------------------------------------
def test_shipped_weights_reproduce_the_recorded_heldout_macro_f1(shipped):
    table, inputs = load_labelled_patterns()
    heldout = table["split"].to_numpy() == "heldout"
    assert heldout.any() and (~heldout).any()
    examples = table["task"] + "/" + table["example_id"]
    assert not set(examples[heldout]) & set(examples[~heldout])  # split by input
    predicted = shipped.predict(inputs[heldout])
    macro = f1_score(table["label"][heldout], predicted, labels=list(PATTERN_CLASSES), average="macro")
    assert macro == pytest.approx(shipped.info_["heldout_macro_f1"], abs=1e-6)
    assert shipped.info_["audit"]["n_audited"] == int(table["audited"].sum())
    assert shipped.info_["audit"]["n_changed"] == int((table["label"] != table["rule_label"]).sum())


def test_labelled_set_has_every_class_and_layer_and_stays_small():
    table, inputs = load_labelled_patterns()
    assert len(table) >= 600 and inputs.shape == (len(table), 4, 32, 32)
    assert set(table["label"]) == set(PATTERN_CLASSES) and set(table["rule_label"]) <= set(PATTERN_CLASSES)
    assert set(table["layer"]) == set(range(6))
    assert table["audited"].dtype == bool
    directory = load_pattern_classifier.__globals__["bundled_patterns_dir"]()
    assert sum(file.stat().st_size for file in directory.iterdir()) < 3_000_000


def test_save_load_roundtrip_and_sklearn_contract(tmp_path, shipped):
    weights, kinds = synthetic("block", 60)
    images = pattern_image(np.stack([weights, synthetic("diagonal", 60)[0]]), kinds)
    shipped.save(tmp_path, info={"note": "copy"})
    again = AttentionPatternClassifier.load(tmp_path)
    np.testing.assert_array_equal(again.predict_proba(images), shipped.predict_proba(images))
    assert again.info_ == {"note": "copy"}
    assert clone(shipped).get_params() == shipped.get_params()
    small = AttentionPatternClassifier(epochs=1, batch_size=4, seed=3)
    assert small.fit(images, ["block", "diagonal"]) is small
    assert small.predict(images).tolist()[0] in PATTERN_CLASSES


# ---- the verbs -----------------------------------------------------------------------------------------
def sentence_examples(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = "the cat , sat on a mat . while dogs ran through green fields of tall grass !".split()
    return pd.DataFrame([{"example_id": f"s{i}", "text_a": " ".join(rng.choice(words, size=rng.integers(2, 14))),
                          "text_b": " ".join(rng.choice(words, size=rng.integers(2, 9))), "label": 0}
                         for i in range(n)])


def test_attention_classes_match_the_classifier_on_the_same_maps(tokenizer, shipped):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(5)
    frame = attention_classes(handle, examples, batch_size=2, progress=False)
    assert list(frame.columns) == list(CLASS_COLUMNS)
    assert len(frame) == 5 * 3 * 4 and (frame["task"] == "mrpc").all()
    assert frame["example_id"].drop_duplicates().tolist() == examples["example_id"].tolist()
    probabilities = frame[[f"p_{name}" for name in PATTERN_CLASSES]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    maps = attention_maps(handle, examples, progress=False)
    for row in frame.itertuples():
        example = maps[row.example_id]
        image = pattern_image(example.map(row.layer, row.head), example.tokens["kind"].to_numpy())
        assert shipped.predict(image[None])[0] == row[CLASS_COLUMNS.index("class") + 1]
    assert frame.attrs["function"] == "attention_classes" and frame.attrs["params"]["classifier"] == "bundled"

    some = attention_classes(handle, examples.head(2), layers=[1], heads=[0, 3], progress=False)
    assert set(zip(some["layer"], some["head"])) == {(1, 0), (1, 3)}
    merged = frame.merge(some, on=["example_id", "layer", "head"], suffixes=("", "_some"))
    assert (merged["class"] == merged["class_some"]).all()


def test_class_proportions_sum_to_one_per_task(tokenizer):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    frame = attention_classes(handle, sentence_examples(3), progress=False)
    other = frame.assign(task="rte")
    other.loc[::2, "class"] = "block"
    proportions = class_proportions(pd.concat([frame, other], ignore_index=True))
    assert list(proportions.columns) == list(PROPORTION_COLUMNS)
    assert len(proportions) == 2 * len(PATTERN_CLASSES)
    np.testing.assert_allclose(proportions.groupby("task")["proportion"].sum(), 1.0)
    assert proportions.groupby("task")["n_maps"].sum().tolist() == [len(frame)] * 2
    by_model = class_proportions(frame.assign(model="tiny"))
    assert list(by_model.columns) == ["model", *PROPORTION_COLUMNS]


def test_pattern_gallery_shows_the_most_probable_map_of_each_class(tokenizer):
    from bert_insight import viz

    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(4, seed=3)
    maps = attention_maps(handle, examples.head(3), progress=False)
    # The classes frame covers one example the maps lack: the gallery must pick among the covered ones.
    frame = attention_classes(handle, examples, progress=False)
    frame.loc[frame.index[:5], "class"] = "block"  # every class but one present, with known winners
    frame.loc[frame.index[:5], "p_block"] = [0.3, 0.9, 0.5, 0.2, 0.1]
    frame.loc[frame["class"] == "diagonal", "class"] = "vertical"
    outside = frame.index[frame["example_id"] == "s3"]
    frame.loc[outside, "class"] = "block"
    frame.loc[outside, "p_block"] = 1.0  # most probable, but its maps were not collected
    layout = viz.pattern_gallery(frame, maps, per_class=2)
    titles = [figure.title.text for row in layout.children for figure in row.children]
    assert len(layout.children) == len(PATTERN_CLASSES) and "diagonal: no map" in titles
    block = [figure for figure in layout.children[PATTERN_CLASSES.index("block")].children]
    winner = frame.loc[frame.index[1]]
    assert block[0].title.text == f"block: L{winner.layer} H{winner['head']} (0.90)"
    shown = block[0].select_one({"type": GlyphRenderer}).data_source.data["image"][0]
    np.testing.assert_allclose(shown[::-1], maps[winner.example_id].map(int(winner.layer), int(winner["head"])))
    with pytest.raises(BertInsightInputError, match="no row"):
        viz.pattern_gallery(frame[frame["example_id"] == "s3"], maps)


# ---- bad input ----------------------------------------------------------------------------------------------
def test_bad_input_gets_one_clear_error(tokenizer, tmp_path):
    handle = from_model(tiny_classifier("bert"), tokenizer, device="cpu", task="mrpc")
    examples = sentence_examples(2)
    with pytest.raises(BertInsightInputError, match="No saved attention-pattern classifier"):
        attention_classes(handle, examples, classifier=tmp_path / "missing", progress=False)
    with pytest.raises(BertInsightInputError, match="classifier must be"):
        attention_classes(handle, examples, classifier=42, progress=False)
    with pytest.raises(BertInsightInputError, match="not fitted"):
        attention_classes(handle, examples, classifier=AttentionPatternClassifier(), progress=False)
    with pytest.raises(BertInsightInputError, match="model handle"):
        attention_classes("bert-base-uncased", examples, progress=False)
    with pytest.raises(BertInsightInputError, match="out of range"):
        attention_classes(handle, examples, heads=[9], progress=False)
    with pytest.raises(BertInsightInputError, match="square"):
        downsample(np.ones((3, 4)))
    with pytest.raises(BertInsightInputError, match="kinds has"):
        pattern_image(np.eye(5), ["cls", "other"])
    with pytest.raises(BertInsightInputError, match="not pattern classes"):
        AttentionPatternClassifier(epochs=1).fit(np.zeros((1, 4, 32, 32)), ["stripes"])
    with pytest.raises(BertInsightInputError, match=r"\(n, 4, 32, 32\)"):
        load_pattern_classifier().predict(np.zeros((2, 32, 32)))
    with pytest.raises(BertInsightInputError, match="lacks the column"):
        class_proportions(pd.DataFrame({"task": ["qa"]}))
    with pytest.raises(BertInsightInputError, match="not pattern classes"):
        class_proportions(pd.DataFrame({"task": ["qa"], "class": ["stripes"]}))
