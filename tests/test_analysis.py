"""Ramnath et al. analyses on hand-made and randomly generated attribution / tokens frames."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pandas as pd
import pytest

from bert_insight import layer_ig, predict
from bert_insight import tokens as tokens_frame
from bert_insight.attribution.analysis import (
    importance_jsd,
    pos_group,
    quantifier_analysis,
    top_words,
    topk_categories,
    topk_pos,
    word_importance,
)
from bert_insight.errors import BertInsightInputError
from bert_insight.frames import ATTRIBUTION_COLUMNS, PREDICTION_COLUMNS, TOKEN_COLUMNS

# The old spellings (k=, supporting frames by position) warn; only the tests of those warnings use them.
pytestmark = pytest.mark.filterwarnings("error:.*is deprecated; pass:DeprecationWarning")


# ---- frame builders ------------------------------------------------------------------------------------
def _word_starts(words) -> list[int]:
    """Character offset of each word of ``" ".join(words)``."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    return starts


def make_tokens(example_id: str, words: list[str], *, pieces: list[int] | None = None, roles=None,
                numbers=None, stopwords=None, question=("what", "?")) -> pd.DataFrame:
    """A tokens frame: [CLS] question [SEP] context pieces [SEP], as bert_insight.tokens lays it out,
    with exactly its columns (frames.TOKEN_COLUMNS). The question is ``" ".join(question)``, the context
    ``" ".join(words)``; every piece of a word carries the word's character span."""
    pieces = pieces or [1] * len(words)
    roles = roles or ["other"] * len(words)
    numbers = numbers or [False] * len(words)
    stopwords = stopwords or [False] * len(words)
    special = ("special", "special", -1, -1, False)
    rows = [("[CLS]", -1, "[CLS]", *special)]
    rows += [(word, index, word, "question", "question", start, start + len(word), False)
             for index, (word, start) in enumerate(zip(question, _word_starts(question)))]
    rows.append(("[SEP]", -1, "[SEP]", *special))
    for index, (word, count, role, start) in enumerate(zip(words, pieces, roles, _word_starts(words))):
        rows += [(word if piece == 0 else f"##{word}", index, word, "context", role, start, start + len(word),
                  numbers[index]) for piece in range(count)]
    rows.append(("[SEP]", -1, "[SEP]", *special))
    frame = pd.DataFrame(rows, columns=["token", "word_index", "word", "segment", "role", "char_start", "char_end",
                                        "is_number"])
    frame.insert(0, "token_index", range(len(frame)))
    frame.insert(0, "example_id", example_id)
    frame["in_answer"] = frame["role"] == "answer"
    frame["in_question"] = frame["role"] == "question_word"
    frame["near_answer"] = frame["role"] == "supporting"
    stop_by_word = dict(zip(range(len(words)), stopwords))
    frame["is_stopword"] = [(segment == "context" and stop_by_word[w]) for segment, w in
                            zip(frame["segment"], frame["word_index"])]
    return frame[list(TOKEN_COLUMNS)]


def make_predictions(example_ids, *, exact_match, f1, confidence) -> pd.DataFrame:
    """A predictions frame with exactly bert_insight.predict's columns (frames.PREDICTION_COLUMNS);
    only the scores matter to the analyses, the spans are placeholders."""
    n = len(example_ids)
    frame = pd.DataFrame({
        "example_id": list(example_ids), "pred_text": ["x"] * n, "pred_start": [0] * n, "pred_end": [1] * n,
        "start_index": [3] * n, "end_index": [3] * n, "window_index": [0] * n, "score": [1.0] * n,
        "confidence": confidence, "exact_match": exact_match, "f1": f1, "n_windows": [1] * n,
    })
    return frame[list(PREDICTION_COLUMNS)]


def make_attributions(tokens: pd.DataFrame, importances: dict) -> pd.DataFrame:
    """Attributions from token importances: ``importances[(layer, target)]`` is one value per
    context token of ``tokens`` (normalised here); other tokens get importance 0."""
    rows = []
    context = tokens["segment"] == "context"
    for (layer, target), values in importances.items():
        values = np.asarray(values, dtype=float)
        importance = np.zeros(len(tokens))
        importance[context.to_numpy()] = values / values.sum()
        frame = tokens[["example_id", "token_index", "word_index", "segment"]].copy()
        frame["method"] = "layer_ig"
        frame["quadrature"] = "riemann"
        frame["layer"] = layer
        frame["target"] = target
        frame["score"] = np.where(context, importance * 2 - 0.01, 0.3)
        frame["norm"] = importance * 7
        frame["importance"] = importance
        rows.append(frame[list(ATTRIBUTION_COLUMNS)])
    return pd.concat(rows, ignore_index=True)


def random_frames(n_examples=3, n_layers=4, seed=0):
    rng = np.random.default_rng(seed)
    tokens, attributions = [], []
    for e in range(n_examples):
        n_words = int(rng.integers(6, 12))
        pieces = rng.integers(1, 4, size=n_words).tolist()
        words = [f"w{e}_{i}" for i in range(n_words)]
        frame = make_tokens(f"ex{e}", words, pieces=pieces)
        n_context = int((frame["segment"] == "context").sum())
        tokens.append(frame)
        attributions.append(make_attributions(frame, {
            (layer, target): rng.gamma(0.5, size=n_context)
            for layer, target in product(range(n_layers), ("start", "end"))}))
    return pd.concat(tokens, ignore_index=True), pd.concat(attributions, ignore_index=True)


# ---- word_importance -------------------------------------------------------------------------------------
def test_word_importance_sums_pieces_and_keeps_passage_only():
    tokens, attributions = random_frames()
    words = word_importance(attributions)
    expected = {}
    for row in attributions.itertuples():
        if row.segment == "context":
            key = (row.example_id, row.layer, row.target, row.word_index)
            importance, score = expected.get(key, (0.0, 0.0))
            expected[key] = (importance + row.importance, score + row.score)
    assert len(words) == len(expected)
    for row in words.itertuples():
        importance, score = expected[(row.example_id, row.layer, row.target, row.word_index)]
        assert row.importance == pytest.approx(importance)
        assert row.score == pytest.approx(score)
    sums = words.groupby(["example_id", "layer", "target"])["importance"].sum()
    np.testing.assert_allclose(sums, 1.0)


def test_synthetic_frames_have_exactly_the_producers_columns():
    tokens, attributions = random_frames(n_examples=1)
    assert tuple(tokens.columns) == TOKEN_COLUMNS
    assert tuple(attributions.columns) == ATTRIBUTION_COLUMNS
    assert tuple(make_predictions(["a"], exact_match=[1.0], f1=[1.0], confidence=[0.5]).columns) == PREDICTION_COLUMNS


def test_word_importance_rejects_mixed_methods_and_missing_columns():
    _, attributions = random_frames(n_examples=1)
    mixed_methods = pd.concat([attributions, attributions.assign(method="layer_deeplift")])
    mixed_quadratures = pd.concat([attributions, attributions.assign(quadrature="gausslegendre")])
    for mixed in (mixed_methods, mixed_quadratures):
        with pytest.raises(BertInsightInputError, match="mix several methods or quadratures") as raised:
            word_importance(mixed)
        assert "analyse one at a time" in str(raised.value)
    with pytest.raises(BertInsightInputError, match="importance"):
        word_importance(attributions.drop(columns="importance"))


def test_top_words_ties_go_to_earlier_word():
    tokens = make_tokens("a", ["x", "y", "z", "u"])
    attributions = make_attributions(tokens, {(0, "start"): [1, 3, 3, 2]})
    top = top_words(attributions, top_k=2)
    assert top["word_index"].tolist() == [1, 2]
    assert top["rank"].tolist() == [1, 2]  # 1 = most important


# ---- importance_jsd ---------------------------------------------------------------------------------------
def textbook_jsd(p: list[float], q: list[float]) -> float:
    """0.5 KL(p || m) + 0.5 KL(q || m) in bits, m the mixture; written out loop by loop."""
    total_p, total_q = sum(p), sum(q)
    p = [value / total_p for value in p]
    q = [value / total_q for value in q]
    divergence = 0.0
    for a, b in zip(p, q):
        m = (a + b) / 2
        if a > 0:
            divergence += 0.5 * a * math.log2(a / m)
        if b > 0:
            divergence += 0.5 * b * math.log2(b / m)
    return divergence


def textbook_keep(values: list[float], top_k: int, keep: str) -> list[float]:
    ranked = sorted(range(len(values)), key=lambda i: (-values[i], i))[:top_k]
    if keep == "all":
        return list(values)
    return [value if (i in ranked) == (keep == "head") else 0.0 for i, value in enumerate(values)]


@pytest.mark.parametrize("keep", ["head", "tail", "all"])
def test_importance_jsd_matches_textbook_per_example(keep):
    tokens, attributions = random_frames(n_examples=3, n_layers=4, seed=1)
    got = importance_jsd(attributions, top_k=2, keep=keep, average=False)
    words = word_importance(attributions)
    checked = 0
    for (example_id, target), group in words.groupby(["example_id", "target"]):
        by_layer = {layer: textbook_keep(part.sort_values("word_index")["importance"].tolist(), 2, keep)
                    for layer, part in group.groupby("layer")}
        for a, b in product(by_layer, by_layer):
            row = got[(got.example_id == example_id) & (got.target == target) & (got.layer_a == a)
                      & (got.layer_b == b)]
            assert row["jsd"].item() == pytest.approx(textbook_jsd(by_layer[a], by_layer[b]), abs=1e-12)
            checked += 1
    assert checked == 3 * 2 * 16


def test_importance_jsd_average_is_mean_over_examples_and_matrix_is_symmetric():
    tokens, attributions = random_frames(n_examples=4, n_layers=5, seed=2)
    per_example = importance_jsd(attributions, top_k=2, keep="tail", average=False)
    averaged = importance_jsd(attributions, top_k=2, keep="tail")
    expected = per_example.groupby(["target", "layer_a", "layer_b"])["jsd"].mean()
    np.testing.assert_allclose(averaged.set_index(["target", "layer_a", "layer_b"])["jsd"], expected)
    assert (averaged["n_examples"] == 4).all()
    for _, part in averaged.groupby("target"):
        matrix = part.pivot(index="layer_a", columns="layer_b", values="jsd").to_numpy()
        np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
        np.testing.assert_allclose(np.diag(matrix), 0.0, atol=1e-12)
        assert (matrix >= -1e-12).all() and (matrix <= 1 + 1e-12).all()


def test_importance_jsd_known_values():
    # Layer 0 puts its weight on words 0-1, layer 1 on words 2-3: disjoint heads -> 1 bit.
    tokens = make_tokens("a", ["p", "q", "r", "s", "t"])
    attributions = make_attributions(tokens, {(0, "start"): [5, 4, 1, 1, 1], (1, "start"): [1, 1, 5, 4, 1]})
    head = importance_jsd(attributions, top_k=2, keep="head")
    assert head.query("layer_a == 0 and layer_b == 1")["jsd"].item() == pytest.approx(1.0)
    # Identical distributions diverge by 0 whatever is kept.
    same = make_attributions(tokens, {(0, "end"): [3, 2, 1, 1, 1], (1, "end"): [3, 2, 1, 1, 1]})
    assert importance_jsd(same, keep="tail").query("layer_a == 0 and layer_b == 1")["jsd"].item() == pytest.approx(0.0)


def test_importance_jsd_drops_examples_with_nothing_left_and_rejects_bad_keep():
    short = make_tokens("short", ["a", "b"])
    long = make_tokens("long", ["a", "b", "c", "d"])
    attributions = pd.concat([
        make_attributions(short, {(0, "start"): [1, 2], (1, "start"): [2, 1]}),
        make_attributions(long, {(0, "start"): [1, 2, 3, 4], (1, "start"): [4, 3, 2, 1]}),
    ])
    tail = importance_jsd(attributions, top_k=2, keep="tail", average=False)
    assert set(tail["example_id"]) == {"long"}
    with pytest.raises(BertInsightInputError, match="keep"):
        importance_jsd(attributions, keep="middle")
    with pytest.raises(BertInsightInputError, match="smaller top_k"):
        importance_jsd(attributions, top_k=9, keep="tail")


# ---- topk_categories ----------------------------------------------------------------------------------------
def test_topk_categories_counts_roles_of_top_words():
    roles = ["other", "supporting", "answer", "answer", "supporting", "question_word", "other", "other"]
    tokens = make_tokens("a", [f"w{i}" for i in range(8)], pieces=[1, 2, 1, 3, 1, 1, 1, 2], roles=roles)
    # Word importances are set per piece; the word order of importance is chosen per layer.
    def per_piece(word_weights):
        return [weight for weight, count in zip(word_weights, [1, 2, 1, 3, 1, 1, 1, 2])
                for _ in range(count)]
    layer0 = per_piece([9, 8, 1, 1, 1, 7, 6, 5])  # word sums: 9 16 1 3 1 7 6 10
    layer1 = per_piece([1, 1, 9, 3, 1, 1, 1, 1])  # word sums: 1 2 9 9 1 1 1 2
    attributions = make_attributions(tokens, {(0, "start"): layer0, (1, "start"): layer1})
    shares = topk_categories(attributions, tokens=tokens, top_k=5).set_index(["layer", "category"])["share"]
    # layer 0 top-5: w1 w7 w0 w5 w6 -> supporting, other, other, question_word, other
    assert shares[(0, "supporting")] == pytest.approx(1 / 5)
    assert shares[(0, "question_word")] == pytest.approx(1 / 5)
    assert shares[(0, "other")] == pytest.approx(3 / 5)
    assert shares[(0, "answer")] == 0
    # layer 1 top-5: w2, w3, then the ties w1, w7 and w0 by position -> answer, answer, supporting, other, other
    assert shares[(1, "answer")] == pytest.approx(2 / 5)
    assert shares[(1, "supporting")] == pytest.approx(1 / 5)
    assert shares[(1, "other")] == pytest.approx(2 / 5)
    total = topk_categories(attributions, tokens=tokens, top_k=5).groupby(["layer", "target"])["share"].sum()
    np.testing.assert_allclose(total, 1.0)


def test_topk_categories_pools_over_examples_and_word_takes_priority_role():
    # Example b's answer word has one piece inside the answer and one outside (role supporting).
    a = make_tokens("a", ["x", "y"], roles=["answer", "other"])
    b = make_tokens("b", ["x", "y", "z"], pieces=[2, 1, 1], roles=["other", "other", "other"])
    b.loc[b["word_index"].eq(0) & b["segment"].eq("context"), "role"] = ["supporting", "answer"]
    attributions = pd.concat([make_attributions(a, {(3, "end"): [2, 1]}),
                              make_attributions(b, {(3, "end"): [1, 1, 5, 1]})])
    shares = topk_categories(attributions, tokens=pd.concat([a, b]), top_k=1).set_index("category")
    # top-1 words: a -> x (answer); b -> y (other)
    assert shares.loc["answer", "share"] == pytest.approx(0.5)
    assert shares.loc["other", "share"] == pytest.approx(0.5)
    assert shares["n_words"].iloc[0] == 2 and shares["n_examples"].iloc[0] == 2
    two = topk_categories(attributions, tokens=pd.concat([a, b]), top_k=3).set_index("category")
    # a contributes x (answer), y; b contributes y, x (answer: priority over supporting), z
    assert two.loc["answer", "share"] == pytest.approx(2 / 5)


def test_topk_categories_needs_matching_tokens():
    tokens, attributions = random_frames(n_examples=2)
    with pytest.raises(BertInsightInputError, match="tokens frame lacks"):
        topk_categories(attributions, tokens=tokens[tokens["example_id"] == "ex0"], top_k=3)
    with pytest.raises(BertInsightInputError, match="positive whole number"):
        topk_categories(attributions, tokens=tokens, top_k=0)


# ---- topk_pos -------------------------------------------------------------------------------------------
class TableTagger:
    """A stand-in tagger: a fixed tag per word (tests the grouping apart from tagging quality)."""

    def __init__(self, table):
        self.table = table

    def tag(self, words):
        return [(word, self.table[word]) for word in words]


def test_pos_group_priorities():
    assert pos_group("CD", "two", True) == "CD"
    assert pos_group("VBZ", "is", True) == "stopword"
    assert pos_group("VBD", "won", False) == "verb"
    assert pos_group("NNPS", "Broncos", False) == "NNP"
    assert pos_group("SYM", "--", False) == "punctuation"
    assert pos_group("UH", "wow", False) == "other"


def test_topk_pos_shares_with_a_fixed_tagger():
    words = ["Denver", "won", "two", "titles", "quickly", "in", "great", "style", "."]
    tags = ["NNP", "VBD", "CD", "NNS", "RB", "IN", "JJ", "NN", "."]
    tokens = make_tokens("a", words, stopwords=[w in ("in", "two") for w in words])
    attributions = make_attributions(tokens, {(0, "start"): [9, 8, 7, 6, 5, 1, 1, 1, 1],
                                              (1, "start"): [1, 1, 1, 1, 2, 9, 8, 1, 7]})
    frame = topk_pos(attributions, tokens=tokens, top_k=4, tagger=TableTagger(dict(zip(words, tags))),
                     grouping="exclusive", punctuation="unicode")
    shares = frame.set_index(["layer", "pos_group"])["share"]
    # layer 0 top-4: Denver won two titles
    assert shares[(0, "NNP")] == shares[(0, "verb")] == shares[(0, "CD")] == shares[(0, "NN")] == 0.25
    assert shares[(0, "noun")] == pytest.approx(0.75)
    # layer 1 top-4: in great . quickly
    assert shares[(1, "stopword")] == shares[(1, "adjective")] == shares[(1, "punctuation")] == 0.25
    assert shares[(1, "adverb")] == 0.25 and shares[(1, "noun")] == 0
    exclusive = frame[frame["pos_group"] != "noun"].groupby(["layer", "target"], observed=True)["share"].sum()
    np.testing.assert_allclose(exclusive, 1.0)


def test_topk_pos_with_the_bundled_tagger():
    words = ["The", "Denver", "Broncos", "defeated", "the", "Carolina", "Panthers", "in", "2016", "."]
    tokens = make_tokens("a", words, stopwords=[w.lower() in ("the", "in") for w in words])
    attributions = make_attributions(tokens, {(0, "start"): [1, 9, 1, 8, 1, 7, 1, 1, 6, 1]})
    shares = topk_pos(attributions, tokens=tokens, top_k=4, grouping="exclusive").set_index("pos_group")["share"]
    assert shares["NNP"] == pytest.approx(0.5)   # Denver, Carolina
    assert shares["verb"] == pytest.approx(0.25)  # defeated
    assert shares["CD"] == pytest.approx(0.25)    # 2016
    assert shares["noun"] == pytest.approx(0.75)


# ---- quantifier_analysis ---------------------------------------------------------------------------------
def test_quantifier_analysis_ratios_and_groups():
    # q1: "how many", passage numbers "3" and "1,000" (one number over three words, the comma not numeric).
    w1 = ["won", "3", "games", "and", "1", ",", "000", "fans"]
    t1 = make_tokens("q1", w1, numbers=[False, True, False, False, True, True, True, False])
    a1 = make_attributions(t1, {(0, "start"): [9, 1, 8, 7, 1, 1, 1, 6],   # no numbers in top-2
                                (1, "start"): [1, 9, 1, 1, 8, 1, 7, 1]})  # top-2: 3, 1
    # q2: "how much", a single number.
    w2 = ["cost", "5", "dollars"]
    t2 = make_tokens("q2", w2, numbers=[False, True, False])
    a2 = make_attributions(t2, {(0, "start"): [1, 5, 1], (1, "start"): [1, 5, 1]})
    # q3: not a quantifier question.
    w3 = ["in", "1990", "and", "1991"]
    t3 = make_tokens("q3", w3, numbers=[False, True, False, True])
    a3 = make_attributions(t3, {(0, "start"): [1, 5, 1, 1], (1, "start"): [1, 5, 1, 1]})
    examples = pd.DataFrame({"example_id": ["q1", "q2", "q3"],
                             "question": ["How many games did they win?", "How much did it cost?",
                                          "When was it?"]})
    predictions = make_predictions(["q1", "q2", "q3"], exact_match=[1.0, 0.0, 1.0], f1=[1.0, 0.5, 1.0],
                                   confidence=[0.9, 0.4, 0.7])
    # this library's rule before the audit (every top number, passages with one number kept)
    result = quantifier_analysis(pd.concat([a1, a2, a3]), examples=examples, predictions=predictions,
                                 tokens=pd.concat([t1, t2, t3]), top_k=2, ratio="all_numbers", quantifier="wh",
                                 numbers="lexical")
    focus = result.to_frame().set_index("layer")
    # numeric words: q1 has 3 ("3", "1", "000"), q2 has 1. Layer 0: q1 0/3, q2 1/1 -> mean 0.5
    assert focus.loc[0, "numeric_ratio"] == pytest.approx(0.5)
    assert focus.loc[1, "numeric_ratio"] == pytest.approx((2 / 3 + 1) / 2)
    assert focus.loc[1, "numeric_share"] == pytest.approx((2 / 2 + 1 / 2) / 2)
    assert (focus["n_examples"] == 2).all()
    performance = result.performance.set_index("group")
    assert performance.loc["quantifier_multi_number", "n_examples"] == 1  # q1: "3" and "1,000"
    assert performance.loc["quantifier_other", "confidence"] == pytest.approx(0.4)
    assert performance.loc["non_quantifier", "exact_match"] == pytest.approx(1.0)
    assert performance.loc["rest", "f1"] == pytest.approx(0.75)
    numeric_focus, _ = result  # unpacks like a tuple
    assert numeric_focus is result.numeric_focus


def test_quantifier_analysis_rejects_bad_predictions():
    tokens, attributions = random_frames(n_examples=1)
    examples = pd.DataFrame({"example_id": ["ex0"], "question": ["How many?"]})
    with pytest.raises(BertInsightInputError, match="predictions"):
        quantifier_analysis(attributions, examples=examples, predictions=pd.DataFrame({"example_id": ["ex0"]}),
                            tokens=tokens)
    # every column of bert_insight.predict's frame is required, not only the scores
    scores_only = pd.DataFrame({"example_id": ["ex0"], "exact_match": [1.0], "f1": [1.0], "confidence": [0.5]})
    with pytest.raises(BertInsightInputError, match="predictions lacks"):
        quantifier_analysis(attributions, examples=examples, predictions=scores_only, tokens=tokens)


# ---- the old spellings: k= and supporting frames by position ------------------------------------------------
def quantifier_frames():
    """Attributions, tokens, examples and predictions of one "how many" question with two numbers."""
    tokens = make_tokens("q1", ["won", "3", "games", "and", "4", "cups"],
                         numbers=[False, True, False, False, True, False])
    attributions = make_attributions(tokens, {(0, "start"): [9, 1, 8, 7, 1, 6], (1, "start"): [1, 9, 1, 1, 8, 1]})
    examples = pd.DataFrame({"example_id": ["q1"], "question": ["How many games did they win?"]})
    predictions = make_predictions(["q1"], exact_match=[1.0], f1=[1.0], confidence=[0.9])
    return attributions, tokens, examples, predictions


def test_k_is_a_deprecated_spelling_of_top_k():
    attributions, tokens, examples, predictions = quantifier_frames()
    tagger = TableTagger(dict.fromkeys(tokens["word"], "NN"))
    calls = {
        top_words: {},
        topk_categories: {"tokens": tokens},
        topk_pos: {"tokens": tokens, "tagger": tagger},
        quantifier_analysis: {"examples": examples, "predictions": predictions, "tokens": tokens},
    }
    for function, frames in calls.items():
        with pytest.warns(DeprecationWarning, match="top_k"):
            old = function(attributions, k=2, **frames)
        new = function(attributions, top_k=2, **frames)
        # quantifier_analysis returns two frames (a NamedTuple), the others one
        for got, expected in zip(old if isinstance(old, tuple) else [old], new if isinstance(new, tuple) else [new]):
            pd.testing.assert_frame_equal(got, expected)


def test_quantifier_analysis_by_position_is_deprecated_and_equals_the_keyword_call():
    attributions, tokens, examples, predictions = quantifier_frames()
    with pytest.warns(DeprecationWarning, match="by position is deprecated"):
        old = quantifier_analysis(attributions, tokens, examples, predictions, top_k=2)  # the old order
    new = quantifier_analysis(attributions, examples=examples, predictions=predictions, tokens=tokens, top_k=2)
    pd.testing.assert_frame_equal(old.numeric_focus, new.numeric_focus)
    pd.testing.assert_frame_equal(old.performance, new.performance)
    assert len(new.numeric_focus) == 2  # something was measured, so the comparison is not of empty frames


# ---- integration with layer_ig and tokens on a tiny model -------------------------------------------------
def test_analyses_on_layer_ig_output_of_a_tiny_model(tiny_handle):
    examples = pd.DataFrame({
        "example_id": ["e1", "e2"],
        "question": ["Who won the game?", "How many fans came?"],
        "context": ["The Denver Broncos won the game against Carolina in 2016.",
                    "About 70,000 fans came to the stadium in 2016 to watch 2 teams."],
        "answers": [[{"text": "Denver Broncos", "answer_start": 4}], [{"text": "70,000", "answer_start": 6}]],
    })
    # One predictions frame chooses the windows of the attributions and the tokens (and scores the examples).
    predictions = predict(tiny_handle, examples, max_length=96, doc_stride=32, progress=False)
    attributions, _ = layer_ig(tiny_handle, examples, n_steps=4, predictions=predictions, progress=False)
    tokens = tokens_frame(tiny_handle, examples, predictions=predictions, progress=False)
    assert tuple(attributions.columns) == ATTRIBUTION_COLUMNS and tuple(tokens.columns) == TOKEN_COLUMNS
    assert set(attributions["method"]) == {"layer_ig"} and set(attributions["quadrature"]) == {"riemann"}

    words = word_importance(attributions)
    np.testing.assert_allclose(words.groupby(["example_id", "layer", "target"])["importance"].sum(), 1.0)
    context_words = tokens[tokens["segment"] == "context"].groupby("example_id")["word_index"].nunique()
    assert (words.groupby(["example_id", "layer", "target"])["word_index"].nunique()
            .groupby("example_id").min() == context_words).all()

    categories = topk_categories(attributions, tokens=tokens, top_k=3)
    np.testing.assert_allclose(categories.groupby(["layer", "target"])["share"].sum(), 1.0)
    # Cross-check one layer's answer share by hand from the frames.
    top = top_words(attributions, top_k=3)
    first = top[(top["layer"] == 1) & (top["target"] == "start")]
    answer_words = set(map(tuple, tokens.loc[tokens["role"] == "answer", ["example_id", "word_index"]].values))
    expected = np.mean([(e, w) in answer_words for e, w in zip(first["example_id"], first["word_index"])])
    got = categories.query("layer == 1 and target == 'start' and category == 'answer'")["share"].item()
    assert got == pytest.approx(expected)

    jsd = importance_jsd(attributions, top_k=2, keep="head")
    matrix = jsd[jsd["target"] == "end"].pivot(index="layer_a", columns="layer_b", values="jsd").to_numpy()
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    assert topk_pos(attributions, tokens=tokens, top_k=3, grouping="exclusive").query("pos_group != 'noun'").groupby(
        ["layer", "target"], observed=True)["share"].sum().round(9).eq(1).all()
    result = quantifier_analysis(attributions, examples=examples, predictions=predictions, tokens=tokens, top_k=3,
                                 ratio="all_numbers", numbers="lexical")
    assert result.numeric_focus["n_examples"].eq(1).all()
    assert result.performance.set_index("group").loc["quantifier_multi_number", "n_examples"] == 1


def test_quantifier_analysis_without_quantifier_questions_gives_empty_focus():
    # No "how many/much" question: numeric_focus is empty (not an error), performance still scores all.
    w3 = ["in", "1990", "and", "1991"]
    t3 = make_tokens("q3", w3, numbers=[False, True, False, True])
    a3 = make_attributions(t3, {(0, "start"): [1, 5, 1, 1], (1, "start"): [1, 5, 1, 1]})
    examples = pd.DataFrame({"example_id": ["q3"], "question": ["When was it?"]})
    predictions = make_predictions(["q3"], exact_match=[1.0], f1=[1.0], confidence=[0.7])
    result = quantifier_analysis(a3, examples=examples, predictions=predictions, tokens=t3, top_k=2)
    assert len(result.numeric_focus) == 0
    assert {"layer", "target", "numeric_ratio", "numeric_share", "n_examples"} <= set(result.numeric_focus.columns)
    performance = result.performance.set_index("group")
    assert performance.loc["non_quantifier", "n_examples"] == 1
    assert performance.loc["quantifier_multi_number", "n_examples"] == 0


# ---- Ramnath et al.'s own definitions (issue 15), each on a passage where the answer is known by counting ----
def twenty_words(answer: tuple[int, int], question_words=()):
    """Roles of w0..w19 for an answer at words answer[0]..answer[1] with the +-5 supporting window."""
    roles = []
    for index in range(20):
        distance = min(abs(index - answer[0]), abs(index - answer[1]))
        inside = answer[0] <= index <= answer[1]
        roles.append("answer" if inside else "question_word" if index in question_words
                     else "supporting" if distance <= 5 else "other")
    return roles


TOP5 = {10: 9, 11: 8, 9: 7, 16: 6, 3: 5}  # word -> importance: top-5 {w10, w11, w9, w16, w3}


def top5_attributions(tokens):
    weights = [TOP5.get(index, 1) for index in range(20)]
    return make_attributions(tokens, {(1, "start"): weights})


def test_supporting_words_follow_the_predicted_answer_by_default():
    words = [f"w{i}" for i in range(20)]
    predicted = make_tokens("a", words, roles=twenty_words((10, 11)))
    gold = make_tokens("a", words, roles=twenty_words((2, 3)))
    by_predicted = topk_categories(top5_attributions(predicted), tokens=predicted).set_index("category")["share"]
    by_gold = topk_categories(top5_attributions(gold), tokens=gold).set_index("category")["share"]
    assert [by_predicted[c] for c in ("answer", "supporting", "other")] == pytest.approx([0.4, 0.4, 0.2])
    assert [by_gold[c] for c in ("answer", "supporting", "other")] == pytest.approx([0.2, 0.0, 0.8])


def test_a_question_word_in_the_window_counts_twice_only_with_overlap_both():
    words = [f"w{i}" for i in range(20)]
    tokens = make_tokens("a", words, roles=twenty_words((10, 11), question_words=(9,)))
    tokens.loc[(tokens["segment"] == "context") & (tokens["word_index"] == 9), "near_answer"] = True  # w9 is 1 away
    attributions = top5_attributions(tokens)
    exclusive = topk_categories(attributions, tokens=tokens).set_index("category")["share"]
    both = topk_categories(attributions, tokens=tokens, overlap="both").set_index("category")["share"]
    assert (exclusive["question_word"], exclusive["supporting"]) == pytest.approx((0.2, 0.2))
    assert (both["question_word"], both["supporting"]) == pytest.approx((0.2, 0.4))
    assert both.sum() == pytest.approx(1.2)


def test_tokens_answer_roles_are_the_predicted_span_or_the_gold_one(tiny_handle):
    from bert_insight import tokens as token_frame

    examples = pd.DataFrame({"example_id": ["e1"], "question": ["Who won the game?"],
                             "context": ["The Denver Broncos won the game against Carolina in 2016 at home."],
                             "answers": [[{"text": "Carolina", "answer_start": 40}]]})
    predictions = predict(tiny_handle, examples, max_length=96, doc_stride=32, progress=False)
    start, end = int(predictions["pred_start"].iloc[0]), int(predictions["pred_end"].iloc[0])
    predicted = token_frame(tiny_handle, examples, predictions=predictions)
    gold = token_frame(tiny_handle, examples, predictions=predictions, answer="gold")
    for frame, (low, high) in ((predicted, (start, end)), (gold, (40, 48))):
        context = frame[frame["segment"] == "context"]
        overlaps = (context["char_start"] < high) & (context["char_end"] > low)
        assert context["in_answer"].tolist() == overlaps.tolist() and overlaps.any()
    with pytest.raises(BertInsightInputError, match="answer="):
        token_frame(tiny_handle, examples, predictions=predictions, answer="both")


QUANTIFIER_WORDS = ["in", "1990", ",", "12", "teams", "played", ";", "3", "won", "2", "titles", "."]
QUANTIFIER_TAGS = {"in": "IN", "1990": "CD", ",": ",", "12": "CD", "teams": "NNS", "played": "VBD", ";": ":",
                   "3": "CD", "won": "VBD", "2": "CD", "titles": "NNS", ".": ".", "cost": "VBD", "5": "CD",
                   "dollars": "NNS"}


def test_quantifier_ratio_counts_the_confusing_numbers_on_passages_with_several():
    roles = ["answer" if word == "12" else "other" for word in QUANTIFIER_WORDS]
    t1 = make_tokens("q1", QUANTIFIER_WORDS, roles=roles)
    # top-5 {12, teams, 1990, played, 3}: 3 numbers, one of them the answer; 4 numbers in the passage
    a1 = make_attributions(t1, {(1, "start"): [1, 7, 1, 9, 8, 6, 1, 5, 1, 1, 1, 1]})
    # a passage whose only number is its answer, in the top-5
    t2 = make_tokens("q2", ["cost", "5", "dollars"], roles=["other", "answer", "other"])
    a2 = make_attributions(t2, {(1, "start"): [1, 5, 1]})
    examples = pd.DataFrame({"example_id": ["q1", "q2"],
                             "question": ["How many teams played?", "What was the price, how much in dollars?"]})
    predictions = make_predictions(["q1", "q2"], exact_match=[1.0, 1.0], f1=[1.0, 1.0], confidence=[0.9, 0.8])
    frames = dict(attributions=pd.concat([a1, a2]), examples=examples, predictions=predictions,
                  tokens=pd.concat([t1, t2]), tagger=TableTagger(QUANTIFIER_TAGS))
    paper = quantifier_analysis(frames.pop("attributions"), **frames)
    assert paper.numeric_focus.set_index("layer").loc[1, "numeric_ratio"] == pytest.approx(0.5)  # (3 - 1) / 4
    assert paper.numeric_focus["n_examples"].eq(1).all()  # q2 has one number: left out
    ours = quantifier_analysis(pd.concat([a1, a2]), **frames, ratio="all_numbers")
    assert ours.numeric_focus.set_index("layer").loc[1, "numeric_ratio"] == pytest.approx((0.75 + 1.0) / 2)
    # "how much" not at the front is a quantifier question for the authors' rule, not for the wh rule
    performance = paper.performance.set_index("group")
    assert performance.loc["quantifier", "n_examples"] == 2
    wh = quantifier_analysis(pd.concat([a1, a2]), **frames, quantifier="wh").performance.set_index("group")
    assert wh.loc["quantifier", "n_examples"] == 1


def test_punctuation_rule_and_the_papers_pos_groups():
    words = ["the", "broncos", ",", "who", "won", ",", "scored", "24", "–", "10", "."]
    tags = {"the": "DT", "broncos": "NNS", ",": ",", "who": "WP", "won": "VBD", "scored": "VBD", "24": "CD",
            "–": ":", "10": "CD", ".": "."}
    tokens = make_tokens("a", words, stopwords=[w in ("the", "who") for w in words])
    # top-5 {the first ",", "–", ".", broncos, 24}
    attributions = make_attributions(tokens, {(1, "start"): [1, 6, 9, 1, 1, 1, 1, 5, 8, 1, 7]})
    tagger = TableTagger(tags)
    paper = topk_pos(attributions, tokens=tokens, tagger=tagger).set_index("pos_group")["share"]
    assert paper["punctuation"] == pytest.approx(0.4) and paper["noun"] == pytest.approx(0.4)  # broncos, 24
    unicode = topk_pos(attributions, tokens=tokens, tagger=tagger, grouping="exclusive",
                       punctuation="unicode").set_index("pos_group")["share"]
    ascii_rule = topk_pos(attributions, tokens=tokens, tagger=tagger, grouping="exclusive",
                          punctuation="ascii").set_index("pos_group")["share"]
    assert unicode["punctuation"] == pytest.approx(0.6) and ascii_rule["punctuation"] == pytest.approx(0.4)
    with pytest.raises(BertInsightInputError, match="grouping="):
        topk_pos(attributions, tokens=tokens, tagger=tagger, grouping="tags")


def test_jsd_tail_leaves_out_a_layer_whose_importance_is_all_in_its_top_words():
    # hidden state 2 puts everything on two words (the last block output of a logit target does): its tail
    # is empty, so only layers 0 and 1 are compared for this example, and their divergence is unchanged.
    tokens = make_tokens("a", [f"w{i}" for i in range(6)])
    attributions = make_attributions(tokens, {(0, "start"): [6, 5, 4, 3, 2, 1], (1, "start"): [1, 2, 3, 4, 5, 6],
                                              (2, "start"): [0, 0, 0, 0, 9, 9]})
    tail = importance_jsd(attributions, top_k=2, keep="tail")
    assert set(tail["layer_a"]) == {0, 1}
    both = importance_jsd(attributions[attributions["layer"] < 2], top_k=2, keep="tail")
    pd.testing.assert_frame_equal(tail.reset_index(drop=True), both.reset_index(drop=True))
