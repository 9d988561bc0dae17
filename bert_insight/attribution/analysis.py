"""Analyses of layer-wise attributions from Ramnath et al. 2020, "Towards Interpreting BERT for
Reading Comprehension Based Question Answering" (EMNLP).

Every function takes the attributions frame of :func:`bert_insight.layer_ig` (one row per
example_id, layer, target, token_index) and, where words need labels, the tokens frame of
:func:`bert_insight.tokens`, and returns a tidy frame. Word-level importance is the sum of the
importances of a word's pieces; "top-k words" are ranked by that importance within one
(example, layer, target), ties going to the earlier word.
"""

from __future__ import annotations

import re
import string
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
    """One row per passage word: example_id, word_index, word, role, is_number, is_stopword, in_answer,
    in_question, near_answer."""
    require_columns(tokens, TOKEN_COLUMNS, what="tokens", made_by=_TOKENS_BY)
    context = tokens[tokens["segment"] == "context"]
    priority = {role: rank for rank, role in enumerate(CATEGORIES)}
    # A word is one role: the highest-priority role of its pieces (a piece overlapping the answer wins).
    labels = context.assign(_priority=context["role"].map(priority).fillna(len(CATEGORIES)))
    grouped = labels.groupby(["example_id", "word_index"], sort=True)
    words = grouped.agg(word=("word", "first"), _priority=("_priority", "min"), is_number=("is_number", "any"),
                        is_stopword=("is_stopword", "any"), in_answer=("in_answer", "any"),
                        in_question=("in_question", "any"), near_answer=("near_answer", "any")).reset_index()
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
    (the squared Jensen-Shannon distance), in bits, so it lies in [0, 1]. A layer with no importance left
    (e.g. "tail" on a passage of at most ``top_k`` words, or the degenerate last block output of a logit
    target) is left out for that example; examples with fewer than two such layers are dropped.

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
        alive = totals[:, 0] > 0  # a layer with nothing left (e.g. "tail" where all importance is on 2 words)
        if alive.sum() < 2:
            continue
        kept, totals = kept[alive], totals[alive]
        # scipy's fast pdist metric works in nats; the squared distance is the divergence.
        divergence = squareform(pdist(kept / totals, metric="jensenshannon") ** 2) / np.log(2)
        layers = matrix.index.to_numpy()[alive]
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
OVERLAP_CHOICES = ("exclusive", "both")
_CATEGORY_FLAGS = {"answer": "in_answer", "question_word": "in_question", "supporting": "near_answer"}


def _flag_shares(labelled: pd.DataFrame, flags: dict[str, pd.Series], order: tuple[str, ...],
                 column: str) -> pd.DataFrame:
    """Per (layer, target) the share of the labelled top words carrying each flag (flags may overlap,
    so the shares may sum to more than 1); columns layer, target, ``column``, share, n_words, n_examples."""
    marked = labelled[["layer", "target", "example_id"]].copy()
    for name in order:
        marked[name] = flags[name].to_numpy(dtype=bool)
    grouped = marked.groupby(["layer", "target"])
    shares = grouped[list(order)].mean().stack().rename("share").reset_index().rename(columns={"level_2": column})
    shares.columns = ["layer", "target", column, "share"]
    sizes = grouped.size().rename("n_words").reset_index()
    n_examples = grouped["example_id"].nunique().rename("n_examples").reset_index()
    return shares.merge(sizes, on=["layer", "target"]).merge(n_examples, on=["layer", "target"])


@keywords_only("tokens")
@renamed(k="top_k")
def topk_categories(attributions: pd.DataFrame, *, tokens: pd.DataFrame, top_k: int = 5,
                    overlap: str = "exclusive") -> pd.DataFrame:
    """Share of the top-k passage words per layer that are answer words, question words found in the
    passage, supporting words (within 5 words of the answer) or other words (Tables 1-2).

    The answer is the tokens frame's (``bert_insight.tokens(..., answer="predicted")``, the default, is
    the paper's: its authors used the predicted answer "for all the analysis"). ``overlap="exclusive"``:
    each word has one category, the tokens frame's role with priority answer > question_word >
    supporting > other, so the shares of one (layer, target) sum to 1. ``overlap="both"``: a word
    counts in every category it belongs to (a question word inside the supporting window counts as
    both, as the paper's authors counted it), so the shares may sum to more than 1; "other" is then
    the words in none. Shares pool the top-k words of all examples (an example with fewer than k
    passage words contributes all of them).

    Columns: layer, target, category, share, n_words (top words counted), n_examples.
    """
    if overlap not in OVERLAP_CHOICES:
        raise BertInsightInputError(f"overlap={overlap!r}; use 'exclusive' (one category per word, shares sum "
                                    "to 1) or 'both' (a word counts in each category it is in, as the authors did).")
    top = _top_words(word_importance(attributions), _check_top_k(top_k))
    labelled = _with_labels(top, _word_labels(tokens)).rename(columns={"role": "category"})
    if overlap == "exclusive":
        return _shares(labelled, "category", CATEGORIES)
    flags = {name: labelled[flag] for name, flag in _CATEGORY_FLAGS.items()}
    flags["other"] = ~(labelled["in_answer"] | labelled["in_question"] | labelled["near_answer"])
    return _flag_shares(labelled, flags, CATEGORIES, "category")


# ---- Tables 5-6: parts of speech among the top-k ------------------------------------------------------
PUNCTUATION_CHOICES = ("ascii", "unicode")
POS_GROUPING_CHOICES = ("paper", "exclusive")
#: The groups of Ramnath et al.'s Table 5 as their released script lists them (Penn Treebank tags):
#: "noun" holds pronouns and no NNPS, "stopword" is a list of function-word *tags*, punctuation is a
#: word made of ``string.punctuation``. The groups may overlap (a "%" tagged NN is a noun and
#: punctuation), so a layer's shares may sum to more than 1, as the paper's rows do (100.9-101.4%).
PAPER_POS_GROUPS: dict[str, tuple[str, ...]] = {
    "noun": ("CD", "NN", "NNP", "NNS", "PRP", "PRP$"),
    "verb": ("VB", "VBD", "VBG", "VBN", "VBP", "VBZ"),
    "stopword": ("CC", "DT", "EX", "IN", "LS", "MD", "PDT", "POS", "RP", "TO", "UH", "WDT", "WP", "WRB"),
    "adverb": ("RB", "RBR", "RBS"),
    "adjective": ("JJ", "JJR", "JJS"),
}
PAPER_POS_ORDER = ("noun", "verb", "stopword", "adverb", "adjective", "punctuation", "other")


def is_ascii_punctuation(word: str) -> bool:
    """True for a non-empty word made only of ``string.punctuation`` characters (the paper's test)."""
    return bool(word) and all(character in string.punctuation for character in word)


def pos_group(tag: str, word: str, is_stopword: bool, *, punctuation: str = "unicode") -> str:
    """One group per word: punctuation, then CD, then stopword, then the tag's group, else other.

    Punctuation is a PTB punctuation tag or, with ``punctuation="unicode"``, a word with no letter or
    digit (so "–" and "’" count); ``"ascii"``: a word made of ``string.punctuation``. Numbers come before
    stop words because scikit-learn's stop list holds number words ("two").
    """
    punct = (tag in POS_GROUPS["punctuation"] or not any(character.isalnum() for character in word)
             if punctuation == "unicode" else is_ascii_punctuation(word))
    if punct:
        return "punctuation"
    if tag == "CD":
        return "CD"
    if is_stopword:
        return "stopword"
    for group, tags in POS_GROUPS.items():
        if tag in tags and group != "punctuation":  # punctuation was decided above, by the chosen rule
            return group
    return "other"


def paper_pos_flags(tags: pd.Series, words: pd.Series) -> dict[str, pd.Series]:
    """Ramnath et al.'s (overlapping) Table 5 groups as boolean columns, one per group of
    :data:`PAPER_POS_ORDER` ("other": in none)."""
    flags = {group: tags.isin(members) for group, members in PAPER_POS_GROUPS.items()}
    flags["punctuation"] = words.astype(str).map(is_ascii_punctuation)
    flags["other"] = ~pd.concat(flags, axis=1).any(axis=1)
    return flags


@keywords_only("tokens")
@renamed(k="top_k")
def topk_pos(attributions: pd.DataFrame, *, tokens: pd.DataFrame, top_k: int = 5, tagger=None,
             grouping: str = "paper", punctuation: str = "ascii") -> pd.DataFrame:
    """Share of the top-k passage words per layer in each part-of-speech group (Tables 5-6).

    Passage words are tagged with Penn Treebank tags by :func:`bert_insight.pos.tag_passages`
    (``tagger`` as there: None = the bundled offline tagger).

    ``grouping="paper"`` (default): the authors' groups (:data:`PAPER_POS_GROUPS`): noun (CD, NN, NNP,
    NNS, PRP, PRP$), verb (VB*), stopword (the function-word tags CC DT EX IN LS MD PDT POS RP TO UH WDT
    WP WRB), adverb (RB*), adjective (JJ*), punctuation (``string.punctuation`` words), other (none);
    they may overlap, so the shares may sum to slightly more than 1.
    ``grouping="exclusive"``: one group per word (:func:`pos_group`, with ``punctuation`` "ascii" or
    "unicode"): NN (NN, NNS), NNP (NNP, NNPS), CD, verb (VB*, MD), stopword (scikit-learn's list),
    adverb (RB*, WRB), adjective (JJ*), punctuation, other; "noun" = NN + NNP + CD is added as its own
    row, so the shares of the groups other than "noun" sum to 1.

    Columns: layer, target, pos_group, share, n_words, n_examples.
    """
    if grouping not in POS_GROUPING_CHOICES:
        raise BertInsightInputError(f"grouping={grouping!r}; use 'paper' (the authors' overlapping tag lists) or "
                                    "'exclusive' (one group per word).")
    if punctuation not in PUNCTUATION_CHOICES:
        raise BertInsightInputError(f"punctuation={punctuation!r}; use 'ascii' (string.punctuation, the paper's "
                                    "test) or 'unicode' (any word without a letter or digit).")
    top = _top_words(word_importance(attributions), _check_top_k(top_k))
    labels = _word_labels(tokens)
    tags = tag_passages(tokens, tagger=tagger)[["example_id", "word_index", "pos"]]
    tags = tags.assign(example_id=tags["example_id"].astype(str))
    labels = labels.merge(tags, on=["example_id", "word_index"], how="left")
    if grouping == "paper":
        labelled = _with_labels(top, labels)
        flags = paper_pos_flags(labelled["pos"].fillna(""), labelled["word"])
        frame = _flag_shares(labelled, flags, PAPER_POS_ORDER, "pos_group")
        frame["pos_group"] = pd.Categorical(frame["pos_group"], categories=PAPER_POS_ORDER, ordered=True)
        return frame.sort_values(["layer", "target", "pos_group"], kind="stable").reset_index(drop=True)
    labels["pos_group"] = [pos_group(tag, word, stop, punctuation=punctuation) for tag, word, stop in
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


RATIO_CHOICES = ("confusing", "all_numbers")
QUANTIFIER_CHOICES = ("anywhere", "wh")
NUMBER_CHOICES = ("pos", "lexical")


def is_quantifier_question(question: str, rule: str = "anywhere") -> bool:
    """A "how many" / "how much" question. ``"anywhere"`` (the authors' script): the question's words hold
    "how" and "many" or "much" anywhere (799 SQuAD dev questions); ``"wh"``: its first wh-phrase is how many
    or how much (792)."""
    if rule == "wh":
        return question_type(question) in QUANTIFIER_TYPES
    words = set(re.findall(r"[a-z]+", str(question).lower()))
    return "how" in words and bool(words & {"many", "much"})


@keywords_only("tokens", "examples", "predictions")
@renamed(k="top_k")
def quantifier_analysis(
    attributions: pd.DataFrame,
    *,
    examples: pd.DataFrame,
    predictions: pd.DataFrame,
    tokens: pd.DataFrame,
    top_k: int = 5,
    ratio: str = "confusing",
    quantifier: str = "anywhere",
    numbers: str = "pos",
    tagger=None,
) -> QuantifierAnalysis:
    """How the model treats numbers for "how many" / "how much" questions (section 5.2).

    Definitions (defaults = the paper's, as its released script computes them; docs/analyses.md):
    ``quantifier``: "anywhere" ("how" with "many" or "much" anywhere in the question) or "wh" (the first
    wh-phrase); ``numbers``: "pos" (passage words tagged CD by :func:`bert_insight.pos.tag_passages`, the
    authors' nltk rule) or "lexical" (the tokens frame's is_number with a letter or digit);
    ``ratio``: "confusing" (top-k numbers outside the answer span, by word position, over all numbers in
    the passage, on passages with more than one number: the paper's "confusing words") or
    "all_numbers" (every top-k number, the answer's included, over the passage's numbers, on passages
    with at least one: this library's rule before the audit). The answer span is the tokens frame's
    (``tokens(answer="predicted")`` by default, the paper's).

    ``numeric_focus`` columns: layer, target, numeric_ratio (the ratio above, per example, averaged over
    the kept quantifier examples), numeric_share (share of the top-k words that are numbers), n_examples.

    ``performance`` columns: group, n_examples, exact_match, f1, confidence (means). Groups:
    "quantifier_multi_number" (a quantifier question whose passage holds more than one number; with
    ``numbers="lexical"`` a number is a run of consecutive numeric words), "quantifier_other",
    "non_quantifier", "rest" (every example except quantifier_multi_number, the paper's text) and
    "quantifier" (every quantifier question, the authors' script's exact-match group).
    """
    top_k = _check_top_k(top_k)
    for name, value, choices in (("ratio", ratio, RATIO_CHOICES), ("quantifier", quantifier, QUANTIFIER_CHOICES),
                                 ("numbers", numbers, NUMBER_CHOICES)):
        if value not in choices:
            raise BertInsightInputError(f"{name}={value!r}; use one of {choices} (the first is the paper's).")
    require_columns(examples, ("example_id", "question"), what="examples", made_by="bert_insight.load_squad")
    require_columns(predictions, PREDICTION_COLUMNS, what="predictions", made_by="bert_insight.predict")
    labels = _word_labels(tokens)
    kinds = examples.assign(example_id=examples["example_id"].astype(str))[["example_id", "question"]]
    kinds["quantifier"] = kinds["question"].map(lambda question: is_quantifier_question(question, quantifier))
    if numbers == "pos":
        tags = tag_passages(tokens, tagger=tagger)[["example_id", "word_index", "pos"]]
        labels = labels.merge(tags.assign(example_id=tags["example_id"].astype(str)),
                              on=["example_id", "word_index"], how="left")
        labels["is_number"] = labels["pos"].eq("CD")
        kinds["n_numbers"] = kinds["example_id"].map(labels.groupby("example_id")["is_number"].sum()).fillna(0)
    else:
        kinds["n_numbers"] = kinds["example_id"].map(_count_numbers(labels)).fillna(0)
        labels["is_number"] = labels["is_number"] & labels["word"].astype(str).map(
            lambda word: any(character.isalnum() for character in word))
    kinds["n_numbers"] = kinds["n_numbers"].astype(int)

    quantifier_ids = set(kinds.loc[kinds["quantifier"], "example_id"])
    numeric_in_passage = labels[labels["example_id"].isin(quantifier_ids)].groupby("example_id")["is_number"].sum()
    fewest = 2 if ratio == "confusing" else 1
    kept = set(numeric_in_passage[numeric_in_passage >= fewest].index)
    top = _top_words(word_importance(attributions), top_k)
    top = _with_labels(top[top["example_id"].astype(str).isin(kept)], labels)
    if top.empty:
        # No quantifier question with enough numbers in its passage: nothing to measure, not an error.
        numeric_focus = pd.DataFrame({"layer": pd.Series(dtype="int64"), "target": pd.Series(dtype="object"),
                                      "numeric_ratio": pd.Series(dtype="float64"),
                                      "numeric_share": pd.Series(dtype="float64"),
                                      "n_examples": pd.Series(dtype="int64")})
    else:
        counted = top["is_number"] & ~top["in_answer"] if ratio == "confusing" else top["is_number"]
        per_example = top.assign(counted=counted).groupby(["example_id", "layer", "target"]).agg(
            counted=("counted", "sum"), numeric_top=("is_number", "sum"), n_top=("is_number", "size")).reset_index()
        per_example["numeric_ratio"] = (per_example["counted"]
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
        "quantifier": scored["quantifier"],
    }
    performance = pd.DataFrame([
        {"group": name, "n_examples": int(mask.sum()),
         **{column: float(scored.loc[mask, column].astype(float).mean()) if mask.any() else np.nan
            for column in ("exact_match", "f1", "confidence")}}
        for name, mask in groups.items()
    ])
    numeric_focus.attrs = {"ratio": ratio, "quantifier": quantifier, "numbers": numbers}
    return QuantifierAnalysis(numeric_focus, performance)
