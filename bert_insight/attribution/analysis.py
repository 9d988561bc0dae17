"""Analyses of layer-wise attributions from Ramnath et al. 2020, "Towards Interpreting BERT for
Reading Comprehension Based Question Answering" (EMNLP).

Every function takes the attributions frame of :func:`bert_insight.layer_ig` (one row per
example_id, layer, target, token_index) and, where words need labels, the tokens frame of
:func:`bert_insight.tokens`, and returns a tidy frame. Word-level importance is the sum of the
importances of a word's pieces; "top-k words" are ranked by that importance within one
(example, layer, target), ties going to the earlier word.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist, squareform

from .._compat import keywords_only, renamed
from ..errors import BertInsightInputError
from ..frames import ATTRIBUTION_COLUMNS, PREDICTION_COLUMNS, TOKEN_COLUMNS, require_columns
from ..pos import tag_passages
from ..text import ROLE_PRIORITY, question_type

KEEP_CHOICES = ("head", "tail", "all")
#: Word categories of Tables 1-2: the tokens frame's roles, one per word, strongest first.
CATEGORIES = ROLE_PRIORITY
_ATTRIBUTIONS_BY = "the attributions frame of bert_insight.layer_ig"
_TOKENS_BY = "bert_insight.tokens"
#: Part-of-speech groups of Tables 5-6: Penn Treebank tags per group; "noun" = NN + NNP + CD.
POS_GROUPS: dict[str, tuple[str, ...]] = {
    "NN": ("NN", "NNS"),
    "NNP": ("NNP", "NNPS"),
    "CD": ("CD",),
    "verb": ("VB", "VBD", "VBG", "VBN", "VBP", "VBZ", "MD"),
    "adverb": ("RB", "RBR", "RBS", "WRB"),
    "adjective": ("JJ", "JJR", "JJS"),
    "punctuation": (".", ",", ":", "``", "''", "-LRB-", "-RRB-", "HYPH", "NFP"),
}
POS_GROUP_ORDER = ("noun", "NN", "NNP", "CD", "verb", "stopword", "adverb", "adjective", "punctuation", "other")
QUANTIFIER_TYPES = ("how many", "how much")


# ---- input checks ------------------------------------------------------------------------------------
def _check_attributions(attributions) -> pd.DataFrame:
    require_columns(attributions, ATTRIBUTION_COLUMNS, what="attributions", made_by=_ATTRIBUTIONS_BY)
    runs = attributions[["method", "quadrature"]].drop_duplicates()
    if len(runs) > 1:
        listed = ", ".join(f"{row.method}/{row.quadrature}" for row in runs.itertuples(index=False))
        raise BertInsightInputError(
            f"attributions mix several methods or quadratures ({listed}); analyse one at a time, e.g. "
            "attributions[(attributions.method == 'layer_ig') & (attributions.quadrature == 'riemann')]."
        )
    if attributions["importance"].lt(0).any():
        raise BertInsightInputError("attributions.importance has negative values; importance must be a "
                                    "non-negative share (norm over the passage), as layer_ig returns it.")
    return attributions


def _check_top_k(top_k) -> int:
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1:
        raise BertInsightInputError(f"top_k={top_k!r}; pass a positive whole number of top words such as 5.")
    return int(top_k)


# ---- word level -------------------------------------------------------------------------------------
def word_importance(attributions: pd.DataFrame) -> pd.DataFrame:
    """Passage-word importance: the sum over each context word's pieces.

    Columns: method, quadrature, example_id, layer, target, word_index, importance (sums to 1 over the
    passage words of one example/layer/target when the token importances do), score (summed signed
    score).
    """
    attributions = _check_attributions(attributions)
    keys = ["method", "quadrature", "example_id", "layer", "target", "word_index"]
    context = attributions[attributions["segment"] == "context"]
    return (context.groupby(keys, sort=True, observed=True)[["importance", "score"]].sum()
            .reset_index())


def rank_words(words: pd.DataFrame, top_k: int, *, by: list[str]) -> pd.DataFrame:
    """The ``top_k`` rows of highest ``importance`` within each group of ``by``, ties to the earlier
    word (lower word_index), with a ``rank`` column: 1 = most important. The one ranking every
    analysis and view uses."""
    ranked = words.sort_values([*by, "importance", "word_index"], ascending=[True] * len(by) + [False, True],
                               kind="stable")
    top = ranked.groupby(by, sort=False).head(top_k).copy()
    top["rank"] = top.groupby(by, sort=False).cumcount() + 1
    return top


def _top_words(words: pd.DataFrame, top_k: int) -> pd.DataFrame:
    return rank_words(words, top_k, by=["example_id", "layer", "target"])


@renamed(k="top_k")
def top_words(attributions: pd.DataFrame, *, top_k: int = 5) -> pd.DataFrame:
    """The ``top_k`` most important passage words per (example, layer, target).

    Columns: method, quadrature, example_id, layer, target, word_index, importance, score, rank
    (1 = most important; ties go to the earlier word).
    """
    return _top_words(word_importance(attributions), _check_top_k(top_k)).reset_index(drop=True)


def _word_labels(tokens: pd.DataFrame) -> pd.DataFrame:
    """One row per passage word: example_id, word_index, word, role, is_number, is_stopword."""
    require_columns(tokens, TOKEN_COLUMNS, what="tokens", made_by=_TOKENS_BY)
    context = tokens[tokens["segment"] == "context"]
    priority = {role: rank for rank, role in enumerate(CATEGORIES)}
    # A word is one role: the highest-priority role of its pieces (a piece overlapping the answer wins).
    labels = context.assign(_priority=context["role"].map(priority).fillna(len(CATEGORIES)))
    grouped = labels.groupby(["example_id", "word_index"], sort=True)
    words = grouped.agg(word=("word", "first"), _priority=("_priority", "min"), is_number=("is_number", "any"),
                        is_stopword=("is_stopword", "any")).reset_index()
    names = dict(enumerate(CATEGORIES))
    words["role"] = words.pop("_priority").map(names).fillna("other")
    words["example_id"] = words["example_id"].astype(str)
    return words


def _with_labels(top: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    top = top.assign(example_id=top["example_id"].astype(str))
    merged = top.merge(labels, on=["example_id", "word_index"], how="left", validate="many_to_one")
    if merged["word"].isna().any():
        missing = merged.loc[merged["word"].isna(), "example_id"].iloc[0]
        raise BertInsightInputError(
            f"Example {missing!r} has attributed passage words that the tokens frame lacks; build tokens "
            "and attributions for the same examples, model, max_length and doc_stride."
        )
    return merged


def _shares(labelled: pd.DataFrame, column: str, order: tuple[str, ...]) -> pd.DataFrame:
    """Share of each value of ``column`` among the labelled top words, per (layer, target), pooled over
    examples, with every category present (share 0 when absent)."""
    totals = labelled.groupby(["layer", "target"]).size().rename("n_words")
    counts = labelled.groupby(["layer", "target", column]).size().unstack(column, fill_value=0)
    counts = counts.reindex(columns=list(order), fill_value=0)
    shares = counts.div(totals, axis=0).stack().rename("share").reset_index()
    n_examples = labelled.groupby(["layer", "target"])["example_id"].nunique().rename("n_examples")
    return shares.merge(totals.reset_index(), on=["layer", "target"]).merge(
        n_examples.reset_index(), on=["layer", "target"])


# ---- Figure 1: Jensen-Shannon divergence between layers --------------------------------------------------
def _keep(matrix: np.ndarray, top_k: int, keep: str) -> np.ndarray:
    """Zero all but (head) or only (tail) each row's top_k entries; ties go to the earlier column."""
    if keep == "all":
        return matrix
    order = np.argsort(-matrix, axis=1, kind="stable")[:, :top_k]
    in_top = np.zeros_like(matrix, dtype=bool)
    np.put_along_axis(in_top, order, True, axis=1)
    return np.where(in_top if keep == "head" else ~in_top, matrix, 0.0)


def importance_jsd(
    attributions: pd.DataFrame,
    *,
    top_k: int = 2,
    keep: str = "head",
    average: bool = True,
) -> pd.DataFrame:
    """Jensen-Shannon divergence between the passage-word importance distributions of every pair
    of layers (Figure 1 of Ramnath et al.).

    Per example, target and layer, word importances (:func:`word_importance`) are cut to the layer's
    own ``top_k`` words (``keep="head"``), stripped of them (``"tail"``) or left whole (``"all"``),
    and renormalised. The divergence is ``scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2``
    (the squared Jensen-Shannon distance), in bits, so it lies in [0, 1]. Examples where a layer has no importance left (e.g. "tail" on a
    passage of at most ``top_k`` words) are dropped.

    Columns with ``average=True``: target, layer_a, layer_b, jsd (mean over examples), n_examples;
    every ordered pair including layer_a == layer_b (jsd 0), so the frame pivots to a full matrix.
    Average over targets with ``frame.groupby(["layer_a", "layer_b"]).jsd.mean()``.
    With ``average=False``: example_id, target, layer_a, layer_b, jsd.
    """
    if keep not in KEEP_CHOICES:
        raise BertInsightInputError(f"keep={keep!r}; use one of {KEEP_CHOICES}.")
    top_k = _check_top_k(top_k)
    words = word_importance(attributions)
    rows = []
    for (example_id, target), group in words.groupby(["example_id", "target"], sort=True):
        matrix = group.pivot(index="layer", columns="word_index", values="importance").fillna(0.0)
        kept = _keep(matrix.to_numpy(dtype=float), top_k, keep)
        totals = kept.sum(axis=1, keepdims=True)
        if (totals <= 0).any():
            continue
        # scipy's fast pdist metric works in nats; the squared distance is the divergence.
        divergence = squareform(pdist(kept / totals, metric="jensenshannon") ** 2) / np.log(2)
        layers = matrix.index.to_numpy()
        layer_a, layer_b = np.meshgrid(layers, layers, indexing="ij")
        rows.append(pd.DataFrame({"example_id": example_id, "target": target, "layer_a": layer_a.ravel(),
                                  "layer_b": layer_b.ravel(), "jsd": divergence.ravel()}))
    if not rows:
        raise BertInsightInputError(
            f"No example keeps any importance with keep={keep!r}, top_k={top_k}; use a smaller top_k or "
            "passages longer than top_k words."
        )
    frame = pd.concat(rows, ignore_index=True)
    if not average:
        return frame
    return (frame.groupby(["target", "layer_a", "layer_b"], sort=True)
            .agg(jsd=("jsd", "mean"), n_examples=("example_id", "nunique")).reset_index())


# ---- Tables 1-2: answer, question and supporting words among the top-k ---------------------------------
@keywords_only("tokens")
@renamed(k="top_k")
def topk_categories(attributions: pd.DataFrame, *, tokens: pd.DataFrame, top_k: int = 5) -> pd.DataFrame:
    """Share of the top-k passage words per layer that are answer words, question words found in the
    passage, supporting words (within 5 words of the answer) or other words (Tables 1-2).

    Each word has one category, the tokens frame's role with priority answer > question_word >
    supporting > other, so the shares of one (layer, target) sum to 1. Shares pool the top-k words
    of all examples (an example with fewer than k passage words contributes all of them).

    Columns: layer, target, category, share, n_words (top words counted), n_examples.
    """
    top = _top_words(word_importance(attributions), _check_top_k(top_k))
    labelled = _with_labels(top, _word_labels(tokens)).rename(columns={"role": "category"})
    return _shares(labelled, "category", CATEGORIES)


# ---- Tables 5-6: parts of speech among the top-k ------------------------------------------------------
def pos_group(tag: str, word: str, is_stopword: bool) -> str:
    """One group per word: punctuation, then CD, then stopword, then the tag's group, else other.

    Numbers come before stop words because scikit-learn's stop list holds number words ("two").
    """
    if tag in POS_GROUPS["punctuation"] or not any(character.isalnum() for character in word):
        return "punctuation"
    if tag == "CD":
        return "CD"
    if is_stopword:
        return "stopword"
    for group, tags in POS_GROUPS.items():
        if tag in tags:
            return group
    return "other"


@keywords_only("tokens")
@renamed(k="top_k")
def topk_pos(attributions: pd.DataFrame, *, tokens: pd.DataFrame, top_k: int = 5, tagger=None) -> pd.DataFrame:
    """Share of the top-k passage words per layer in each part-of-speech group (Tables 5-6).

    Passage words are tagged with Penn Treebank tags by :func:`bert_insight.pos.tag_passages`
    (``tagger`` as there: None = the bundled offline tagger). Groups (:func:`pos_group`) are
    exclusive: NN (NN, NNS), NNP (NNP, NNPS), CD, verb (VB*, MD), stopword, adverb (RB*, WRB),
    adjective (JJ*), punctuation, other; "noun" = NN + NNP + CD is added as its own row, so the
    shares of the groups other than "noun" sum to 1.

    Columns: layer, target, pos_group, share, n_words, n_examples.
    """
    top = _top_words(word_importance(attributions), _check_top_k(top_k))
    labels = _word_labels(tokens)
    tags = tag_passages(tokens, tagger=tagger)[["example_id", "word_index", "pos"]]
    tags = tags.assign(example_id=tags["example_id"].astype(str))
    labels = labels.merge(tags, on=["example_id", "word_index"], how="left")
    labels["pos_group"] = [pos_group(tag, word, stop) for tag, word, stop in
                           zip(labels["pos"].fillna(""), labels["word"].astype(str), labels["is_stopword"])]
    labelled = _with_labels(top, labels)
    shares = _shares(labelled, "pos_group", tuple(group for group in POS_GROUP_ORDER if group != "noun"))
    nouns = (shares[shares["pos_group"].isin(["NN", "NNP", "CD"])]
             .groupby(["layer", "target"], as_index=False)
             .agg(share=("share", "sum"), n_words=("n_words", "first"), n_examples=("n_examples", "first"))
             .assign(pos_group="noun"))
    frame = pd.concat([shares, nouns[shares.columns]], ignore_index=True)
    frame["pos_group"] = pd.Categorical(frame["pos_group"], categories=POS_GROUP_ORDER, ordered=True)
    return frame.sort_values(["layer", "target", "pos_group"], kind="stable").reset_index(drop=True)


# ---- Section 5.2: quantifier questions -----------------------------------------------------------------
class QuantifierAnalysis(NamedTuple):
    """Result of :func:`quantifier_analysis` (a NamedTuple, so it unpacks into two frames)."""

    numeric_focus: pd.DataFrame
    performance: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """The per-layer numeric_focus frame."""
        return self.numeric_focus


def _count_numbers(words: pd.DataFrame) -> pd.Series:
    """Numbers per example: runs of consecutive numeric words ("1 , 000" and "twenty - one" are one)."""
    words = words.sort_values(["example_id", "word_index"])
    previous = words.groupby("example_id")["is_number"].shift(fill_value=False)
    starts = words["is_number"] & ~previous
    return starts.groupby(words["example_id"]).sum()


@keywords_only("tokens", "examples", "predictions")
@renamed(k="top_k")
def quantifier_analysis(
    attributions: pd.DataFrame,
    *,
    examples: pd.DataFrame,
    predictions: pd.DataFrame,
    tokens: pd.DataFrame,
    top_k: int = 5,
) -> QuantifierAnalysis:
    """How the model treats numbers for "how many" / "how much" questions (section 5.2).

    ``numeric_focus`` columns: layer, target, numeric_ratio (numeric words among the top-k divided by
    numeric words in the passage, averaged over quantifier examples whose passage has a numeric
    word), numeric_share (share of the top-k words that are numeric), n_examples. A numeric word is
    a passage word flagged is_number that has a letter or digit (so the comma of "1,000" is not one).

    ``performance`` columns: group, n_examples, exact_match, f1, confidence (means). Groups:
    "quantifier_multi_number" (a quantifier question whose passage holds more than one number; a
    number is a run of consecutive numeric words), "quantifier_other", "non_quantifier", and "rest"
    (every example except quantifier_multi_number, the paper's comparison).
    """
    top_k = _check_top_k(top_k)
    require_columns(examples, ("example_id", "question"), what="examples", made_by="bert_insight.load_squad")
    require_columns(predictions, PREDICTION_COLUMNS, what="predictions", made_by="bert_insight.predict")
    labels = _word_labels(tokens)
    kinds = examples.assign(example_id=examples["example_id"].astype(str))[["example_id", "question"]]
    kinds["quantifier"] = kinds["question"].map(question_type).isin(QUANTIFIER_TYPES)
    kinds["n_numbers"] = kinds["example_id"].map(_count_numbers(labels)).fillna(0).astype(int)
    labels["is_number"] = labels["is_number"] & labels["word"].astype(str).map(
        lambda word: any(character.isalnum() for character in word))

    quantifier_ids = set(kinds.loc[kinds["quantifier"], "example_id"])
    numeric_in_passage = labels[labels["example_id"].isin(quantifier_ids)].groupby("example_id")["is_number"].sum()
    with_numbers = set(numeric_in_passage[numeric_in_passage > 0].index)
    top = _top_words(word_importance(attributions), top_k)
    top = _with_labels(top[top["example_id"].astype(str).isin(with_numbers)], labels)
    if top.empty:
        # No quantifier question with a number in its passage: nothing to measure, not an error.
        numeric_focus = pd.DataFrame({"layer": pd.Series(dtype="int64"), "target": pd.Series(dtype="object"),
                                      "numeric_ratio": pd.Series(dtype="float64"),
                                      "numeric_share": pd.Series(dtype="float64"),
                                      "n_examples": pd.Series(dtype="int64")})
    else:
        per_example = top.groupby(["example_id", "layer", "target"]).agg(
            numeric_top=("is_number", "sum"), n_top=("is_number", "size")).reset_index()
        per_example["numeric_ratio"] = (per_example["numeric_top"]
                                        / per_example["example_id"].map(numeric_in_passage).astype(float))
        per_example["numeric_share"] = per_example["numeric_top"] / per_example["n_top"]
        numeric_focus = per_example.groupby(["layer", "target"], as_index=False).agg(
            numeric_ratio=("numeric_ratio", "mean"), numeric_share=("numeric_share", "mean"),
            n_examples=("example_id", "nunique"))

    scored = kinds.merge(predictions.assign(example_id=predictions["example_id"].astype(str))
                         [["example_id", "exact_match", "f1", "confidence"]], on="example_id", how="inner")
    multi = scored["quantifier"] & (scored["n_numbers"] > 1)
    groups = {
        "quantifier_multi_number": multi,
        "quantifier_other": scored["quantifier"] & ~multi,
        "non_quantifier": ~scored["quantifier"],
        "rest": ~multi,
    }
    performance = pd.DataFrame([
        {"group": name, "n_examples": int(mask.sum()),
         **{column: float(scored.loc[mask, column].astype(float).mean()) if mask.any() else np.nan
            for column in ("exact_match", "f1", "confidence")}}
        for name, mask in groups.items()
    ])
    return QuantifierAnalysis(numeric_focus, performance)
