"""Ramnath et al. 2020's reported trends and a BERT-base measurement next to ours, as frames, so the
reproduction notebook stays free of arithmetic (computation only: the views are in bert_insight.viz)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._compat import keywords_only
from ..errors import BertInsightInputError
from ..frames import require_columns

#: Ramnath et al. 2020 (BERT-base, 12 layers, SQuAD 1.1 dev), as trends over depth. Only trends the
#: paper states are given a direction; "a" and "b" are the two numbers of each row.
RAMNATH2020_TRENDS = {
    "jsd_head": ("Fig. 1 JSD between layers, top-2 kept", "early-early vs early-late layer pairs",
                 "a low, b higher", "a<b"),
    "jsd_tail": ("Fig. 1 JSD between layers, top-2 removed", "early-early vs early-late layer pairs",
                 "shown for contrast", None),
    "answer": ("Table 1 answer words among the top-k", "early vs late layers", "b > a (answer focus grows)", "a<b"),
    "supporting": ("Table 1 supporting words among the top-k", "early vs late layers",
                   "b > a (context around the answer)", "a<b"),
    "question_word": ("Table 1 question words among the top-k", "early vs late layers",
                      "a > b (query-passage interaction early)", "a>b"),
    "noun": ("Table 5 nouns (NN, NNP, CD) among the top-k", "early vs late layers", "see Table 5", None),
    "numeric_ratio": ("Sec. 5.2 passage numbers among the top-k, quantifier questions", "early vs late layers",
                      "b > a (confusing numbers, later layers)", "a<b"),
    "exact_match": ("Sec. 5.2 exact match (%)", "quantifier questions with several numbers vs the rest",
                    "a stays high", None),
    "confidence": ("Sec. 5.2 mean confidence (%)", "quantifier questions vs the others",
                   "a > b (more confident on quantifier questions)", "a>b"),
    "jsd_head_range": ("Fig. 1 JSD range, top-2 kept", "min vs max over layer pairs (a != b)",
                       "stated on the heatmap's scale", None),
    "jsd_tail_range": ("Fig. 1 JSD range, top-2 removed", "min vs max over layer pairs (a != b)",
                       "stated on the heatmap's scale", None),
}


#: Per-layer shares measured on BERT-base (12 layers) fine-tuned on SQuAD 1.1, from the ML Reproducibility
#: Challenge 2020 reproduction of Ramnath et al. (github.com/gchhablani/MLRC-2020-Towards-Interpreting-BERT-
#: for-RCQA, "Examples and Results/New/Tables" and "New Results"): captum IG with 25 steps on 1,000 dev
#: examples, top-5 words, supporting window 5, predicted answers. Percent, one value per block output
#: 1..12 (the paper's L0..L11: rows 1..12 of MLRC's 13-row tables, whose row 0 is the embeddings).
MLRC2020_BERT_BASE_SQUAD: dict[tuple[str, str], tuple[float, ...]] = {
    ("category", "answer"): (37.58, 37.10, 41.00, 40.42, 40.82, 40.74, 40.06, 41.90, 41.18, 43.36, 42.52, 42.94),
    ("category", "supporting"): (33.04, 33.58, 33.10, 36.40, 34.68, 36.46, 35.76, 34.94, 36.12, 35.40, 32.14,
                                 34.02),
    ("category", "question_word"): (22.20, 24.08, 19.62, 16.34, 18.58, 15.62, 14.12, 11.38, 11.66, 9.74, 10.30,
                                    10.42),
    ("pos_group", "noun"): (55.94, 57.10, 55.58, 51.22, 51.60, 48.04, 48.80, 52.72, 50.42, 53.00, 57.90, 54.86),
    ("pos_group", "verb"): (8.28, 10.12, 9.18, 8.66, 8.58, 8.90, 8.18, 7.74, 6.24, 5.98, 3.78, 3.68),
    ("pos_group", "stopword"): (12.54, 13.08, 14.40, 17.54, 19.36, 20.30, 18.26, 18.02, 17.44, 18.20, 15.06,
                                15.14),
    ("pos_group", "adverb"): (1.96, 2.44, 2.42, 2.00, 2.30, 2.18, 1.84, 2.00, 1.96, 1.88, 1.76, 1.74),
    ("pos_group", "adjective"): (7.18, 6.78, 6.74, 6.14, 7.00, 6.26, 5.90, 6.06, 5.98, 5.90, 6.30, 5.90),
    ("pos_group", "punctuation"): (9.98, 7.20, 7.48, 10.52, 6.56, 9.70, 11.98, 7.78, 11.74, 10.08, 8.26, 12.12),
    ("quantifier", "numeric_share"): (6.24, 6.50, 6.80, 7.02, 7.50, 7.54, 8.02, 8.64, 9.12, 8.18, 9.44, 9.48),
}

#: Ramnath et al. 2020's own tables (../shared/papers/000: Tables 1, 2, 5, 6), percent of the top-5
#: passage words, one value per layer L0..L11 (block outputs 1..12 of BERT-base). "noun" = common,
#: proper and cardinal nouns (the authors' list also holds pronouns).
RAMNATH2020_PAPER: dict[tuple[str, str, str], tuple[float, ...]] = {
    ("squad", "category", "answer"): (26.99, 26.09, 29.9, 30.44, 30.06, 30.75, 31.25, 32.37, 30.78, 34.58, 34.31,
                                      34.63),
    ("squad", "category", "question_word"): (22.94, 24.35, 22.41, 19.55, 18.33, 14.71, 15.33, 12.29, 18.91, 10.21,
                                             10.56, 12.0),
    ("squad", "category", "supporting"): (9.45, 9.43, 11.65, 11.13, 11.23, 11.57, 11.94, 12.32, 12.07, 13.41, 13.39,
                                          13.74),
    ("duorc", "category", "answer"): (35.14, 37.29, 38.30, 34.37, 33.93, 36.32, 35.34, 41.20, 40.38, 41.25, 43.93,
                                      44.37),
    ("duorc", "category", "question_word"): (17.89, 18.29, 19.59, 18.88, 20.77, 16.16, 15.75, 10.57, 8.50, 8.03,
                                             5.58, 6.00),
    ("duorc", "category", "supporting"): (27.53, 29.88, 30.05, 25.83, 26.20, 27.97, 27.05, 31.12, 22.16, 17.9,
                                          15.85, 33.74),
    ("squad", "pos_group", "noun"): (49.57, 53.65, 52.16, 49.63, 47.99, 46.97, 49.61, 50.43, 54.16, 53.09, 57.8,
                                     54.58),
    ("squad", "pos_group", "verb"): (12.92, 13.81, 14.19, 12.98, 12.32, 12.34, 12.13, 11.31, 11.59, 10.11, 8.67,
                                     8.77),
    ("squad", "pos_group", "stopword"): (12.63, 10.71, 13.71, 16.27, 19.93, 19.35, 17.38, 16.23, 14.59, 12.98, 12.2,
                                         14.57),
    ("squad", "pos_group", "adverb"): (2.73, 3.13, 3.24, 2.76, 2.87, 2.73, 2.51, 2.61, 2.58, 2.42, 2.11, 2.31),
    ("squad", "pos_group", "adjective"): (11.63, 11.44, 12.52, 10.97, 10.58, 9.56, 9.74, 9.87, 11.27, 11.01, 10.93,
                                          10.43),
    ("squad", "pos_group", "punctuation"): (11.41, 8.27, 5.25, 8.52, 7.29, 10.29, 9.75, 10.85, 6.94, 11.82, 9.64,
                                            10.63),
    ("duorc", "pos_group", "noun"): (55.81, 58.1, 59.42, 55.03, 54.43, 51.97, 54.88, 60.12, 60.81, 60.96, 57.43,
                                     60.46),
    ("duorc", "pos_group", "verb"): (12.63, 13.21, 13.9, 13.61, 13.91, 13.09, 12.35, 10.02, 8.56, 8.84, 8.42, 9.07),
    ("duorc", "pos_group", "stopword"): (9.5, 8.41, 8.67, 11.55, 12.63, 12.58, 9.84, 9.34, 7.64, 8.2, 10.57, 11.06),
    ("duorc", "pos_group", "adverb"): (1.97, 2.16, 2.22, 2.15, 1.97, 1.82, 1.77, 1.8, 1.84, 1.84, 1.81, 1.97),
    ("duorc", "pos_group", "adjective"): (9.56, 10.03, 10.54, 9.54, 9.14, 8.04, 8.45, 9.07, 9.2, 9.24, 9.05, 9.39),
    ("duorc", "pos_group", "punctuation"): (10.87, 8.6, 5.61, 8.78, 8.26, 12.79, 12.88, 9.94, 12.33, 11.33, 13.24,
                                            8.65),
}
#: Section 5.2: % "confusing" numbers (top-5 numbers outside the predicted answer / numbers in the
#: passage) at L0, L10 and L11 only (the paper reports no other layer), and its other figures.
RAMNATH2020_QUANTIFIER_RATIO = {"squad": {0: 5.6, 10: 17.7, 11: 15.5}, "duorc": {0: 12.9, 10: 21.6, 11: 22.6}}
RAMNATH2020_QUANTIFIER_FACTS = {
    "squad": {"n_questions": 799, "exact_match": 87.35, "confidence_quantifier": 86.5, "confidence_other": 80.4},
    "duorc": {"n_questions": 310, "exact_match": 53.5, "confidence_quantifier": 95.2, "confidence_other": 87.2},
}
#: Figure 1: the stated (min, max) of each JSD heatmap, top-2 words kept ("head") or removed ("tail").
RAMNATH2020_JSD_RANGE = {"squad": {"head": (0.08, 0.72), "tail": (0.09, 0.26)},
                         "duorc": {"head": (0.23, 0.89), "tail": (0.12, 0.28)}}
MLRC2020_SOURCE = ("BERT-base fine-tuned on SQuAD 1.1 (ML Reproducibility Challenge 2020 reproduction of Ramnath "
                   "et al.; captum IG, 25 steps, 1,000 dev examples)")
DEPTH_BINS = ("early", "middle", "late")


def depth_bins(layers: list[int]) -> dict[int, str]:
    """Each layer's third of the depth: the sorted layers split into three near-equal runs."""
    ordered = sorted(layers)
    return {int(layer): DEPTH_BINS[position]
            for position, run in enumerate(np.array_split(np.array(ordered), 3)) for layer in run}


def _paper_series(dataset: str, statistic: str, group: str) -> dict[int, float]:
    """The paper's percent values of one statistic by its layer index (only the reported layers)."""
    if (statistic, group) == ("quantifier", "numeric_ratio"):
        return dict(RAMNATH2020_QUANTIFIER_RATIO[dataset])
    return dict(enumerate(RAMNATH2020_PAPER.get((dataset, statistic, group), ())))


def _third_mean(values: dict[int, float], bins: dict[int, str], depth: str) -> float:
    """Mean of the percent ``values`` whose layer falls in ``depth``, as a fraction; NaN where none is."""
    inside = [value for layer, value in values.items() if bins[layer] == depth]
    return float(np.mean(inside)) / 100 if inside else np.nan


@keywords_only("categories", "pos", "quantifiers")
def ramnath2020_by_depth(*, categories: pd.DataFrame, pos: pd.DataFrame, quantifiers,
                         dataset: str = "squad") -> pd.DataFrame:
    """Our top-k shares next to the paper's tables and to a BERT-base measurement, per third of the depth
    (early / middle / late layers).

    A 6-layer model and a 12-layer one are compared at the same relative depth: each model's attributed
    layers are split into three runs and the shares are averaged over a run's layers (and over the
    start and end targets for ours). ``paper``: Ramnath et al.'s Tables 1-2 (categories) and 5-6 (POS) for
    ``dataset`` ("squad" or "duorc"; :data:`RAMNATH2020_PAPER`), and for the quantifier ratio the layers the
    paper reports (L0 early; L10, L11 late). ``bert_base``: :data:`MLRC2020_BERT_BASE_SQUAD` (SQuAD only).

    Returns a DataFrame with columns statistic (category, pos_group or quantifier), group (e.g. answer,
    noun, numeric_ratio), depth, ours, paper, bert_base (fractions in [0, 1]; NaN where not measured or
    not reported); ``attrs["reference"]`` names the sources.
    """
    if dataset not in ("squad", "duorc"):
        raise BertInsightInputError(f"dataset={dataset!r}; the paper's tables are for 'squad' and 'duorc'.")
    require_columns(categories, ["layer", "category", "share"], what="categories",
                    made_by="bert_insight.topk_categories")
    require_columns(pos, ["layer", "pos_group", "share"], what="pos", made_by="bert_insight.topk_pos")
    focus = quantifiers.numeric_focus
    ours_frames = {
        "category": categories.rename(columns={"category": "group"})[["layer", "group", "share"]],
        "pos_group": pos.rename(columns={"pos_group": "group"})[["layer", "group", "share"]],
        "quantifier": pd.concat([focus.assign(group=name).rename(columns={name: "share"})[["layer", "group", "share"]]
                                 for name in ("numeric_ratio", "numeric_share") if name in focus.columns]
                                or [pd.DataFrame(columns=["layer", "group", "share"])]),
    }
    reference_bins = depth_bins(list(range(12)))
    keys = [("category", group) for group in ("answer", "question_word", "supporting")]
    keys += [("pos_group", group) for group in ("noun", "verb", "stopword", "adverb", "adjective", "punctuation")]
    keys += [("quantifier", "numeric_ratio"), ("quantifier", "numeric_share")]
    rows = []
    for statistic, group in keys:
        ours = ours_frames[statistic]
        ours = ours[ours["group"].astype(str) == group]
        ours_bins = depth_bins(ours["layer"].unique().tolist()) if len(ours) else {}
        paper = _paper_series(dataset, statistic, group)
        mlrc = dict(enumerate(MLRC2020_BERT_BASE_SQUAD.get((statistic, group), ()))) if dataset == "squad" else {}
        for depth in DEPTH_BINS:
            chosen = ours.loc[ours["layer"].map(ours_bins) == depth, "share"] if len(ours) else pd.Series(dtype=float)
            rows.append({"statistic": statistic, "group": group, "depth": depth,
                         "ours": float(chosen.mean()) if len(chosen) else np.nan,
                         "paper": _third_mean(paper, reference_bins, depth),
                         "bert_base": _third_mean(mlrc, reference_bins, depth)})
    frame = pd.DataFrame(rows)
    frame["depth"] = pd.Categorical(frame["depth"], categories=DEPTH_BINS, ordered=True)
    frame.attrs = {"reference": f"paper: Ramnath et al. 2020 Tables 1, 2, 5, 6 and section 5.2 ({dataset}); "
                                f"bert_base: {MLRC2020_SOURCE}", "dataset": dataset}
    return frame


def _early_late(layers: list[int]) -> tuple[list[int], list[int]]:
    span = max(1, len(layers) // 3)
    return layers[:span], layers[-span:]


def _pair_mean(frame: pd.DataFrame, first: list[int], second: list[int]) -> float:
    rows = frame[frame["layer_a"].isin(first) & frame["layer_b"].isin(second) & (frame["layer_a"] != frame["layer_b"])]
    return float(rows["jsd"].mean()) if len(rows) else np.nan


def _mean_over(frame: pd.DataFrame, column: str, value: str, layers: list[int], y: str = "share") -> float:
    rows = frame[(frame[column].astype(str) == value) & frame["layer"].isin(layers)]
    return float(rows[y].mean()) if len(rows) else np.nan


def _agrees(a: float, b: float, direction: str | None) -> object:
    if direction is None or np.isnan(a) or np.isnan(b):
        return None
    return bool(a < b) if direction == "a<b" else bool(a > b)


def _paper_values(dataset: str) -> dict[str, tuple[float, float]]:
    """The paper's own a and b for each comparison row: first vs last third of its 12 layers (percent
    tables as fractions), the stated JSD ranges and the section 5.2 figures."""
    early, late = _early_late(list(range(12)))
    values = {}
    for key, statistic in (("answer", "category"), ("supporting", "category"), ("question_word", "category"),
                           ("noun", "pos_group")):
        series = RAMNATH2020_PAPER[(dataset, statistic, key)]
        values[key] = (float(np.mean([series[i] for i in early])) / 100, float(np.mean([series[i] for i in late])) / 100)
    ratio = RAMNATH2020_QUANTIFIER_RATIO[dataset]
    values["numeric_ratio"] = (ratio[0] / 100, float(np.mean([ratio[10], ratio[11]])) / 100)
    facts = RAMNATH2020_QUANTIFIER_FACTS[dataset]
    values["exact_match"] = (facts["exact_match"], np.nan)
    values["confidence"] = (facts["confidence_quantifier"], facts["confidence_other"])
    values["jsd_head_range"] = RAMNATH2020_JSD_RANGE[dataset]["head"]
    values["jsd_tail_range"] = RAMNATH2020_JSD_RANGE[dataset]["tail"]
    return values


@keywords_only("jsd_head", "jsd_tail", "categories", "pos", "quantifiers")
def ramnath2020_comparison(
    *,
    jsd_head: pd.DataFrame,
    jsd_tail: pd.DataFrame,
    categories: pd.DataFrame,
    pos: pd.DataFrame,
    quantifiers,
    dataset: str = "squad",
) -> pd.DataFrame:
    """Ramnath et al. 2020's reported trends and numbers next to the same statistics measured on our frames.

    Inputs are what the notebook computes: importance_jsd (keep="head" and "tail"), topk_categories,
    topk_pos and quantifier_analysis results. "Early" layers are the first third of the attributed
    layers, "late" the last third (at least one each); shares are averaged over the targets (start /
    end) and those layers. The paper's a and b are the same comparison on its own tables for ``dataset``
    ("squad" / "duorc"): first vs last third of its 12 layers (Tables 1, 2, 5, 6), L0 vs L10-L11 for the
    quantifier ratio (the layers it reports), Figure 1's stated min and max, section 5.2's exact match
    and confidence.

    Returns a DataFrame with columns statistic, compares (what a and b are), paper (the paper's trend),
    paper_a, paper_b (the paper's numbers; NaN where it gives none), a, b (ours), same_trend (True /
    False where the paper states a direction, else None).
    """
    if dataset not in ("squad", "duorc"):
        raise BertInsightInputError(f"dataset={dataset!r}; the paper's numbers are for 'squad' and 'duorc'.")
    require_columns(jsd_head, ["layer_a", "layer_b", "jsd"], what="jsd_head", made_by="bert_insight.importance_jsd")
    require_columns(jsd_tail, ["layer_a", "layer_b", "jsd"], what="jsd_tail", made_by="bert_insight.importance_jsd")
    require_columns(categories, ["layer", "category", "share"], what="categories",
                    made_by="bert_insight.topk_categories")
    require_columns(pos, ["layer", "pos_group", "share"], what="pos", made_by="bert_insight.topk_pos")
    layers = sorted(int(layer) for layer in categories["layer"].unique())
    early, late = _early_late(layers)

    values: dict[str, tuple[float, float]] = {
        "jsd_head": (_pair_mean(jsd_head, early, early), _pair_mean(jsd_head, early, late)),
        "jsd_tail": (_pair_mean(jsd_tail, early, early), _pair_mean(jsd_tail, early, late)),
    }
    for category in ("answer", "supporting", "question_word"):
        values[category] = (_mean_over(categories, "category", category, early),
                            _mean_over(categories, "category", category, late))
    values["noun"] = (_mean_over(pos, "pos_group", "noun", early), _mean_over(pos, "pos_group", "noun", late))
    focus = quantifiers.numeric_focus
    values["numeric_ratio"] = (
        float(focus[focus["layer"].isin(early)]["numeric_ratio"].mean()) if len(focus) else np.nan,
        float(focus[focus["layer"].isin(late)]["numeric_ratio"].mean()) if len(focus) else np.nan,
    )
    performance = quantifiers.performance.set_index("group")["exact_match"]
    values["exact_match"] = tuple(100.0 * float(performance.get(group, np.nan))
                                  for group in ("quantifier_multi_number", "rest"))

    performance_frame = quantifiers.performance
    by_group = (performance_frame.set_index("group")["confidence"] if "confidence" in performance_frame.columns
                else pd.Series(dtype=float))
    values["confidence"] = tuple(100.0 * float(by_group.get(group, np.nan)) for group in ("quantifier", "non_quantifier"))
    for key, frame_ in (("jsd_head_range", jsd_head), ("jsd_tail_range", jsd_tail)):
        off = frame_[frame_["layer_a"] != frame_["layer_b"]].groupby(["layer_a", "layer_b"])["jsd"].mean()
        values[key] = (float(off.min()), float(off.max())) if len(off) else (np.nan, np.nan)

    paper_values = _paper_values(dataset)
    rows = []
    for key, (statistic, compares, paper, direction) in RAMNATH2020_TRENDS.items():
        a, b = values[key]
        paper_a, paper_b = paper_values.get(key, (np.nan, np.nan))
        rows.append({"statistic": statistic, "compares": compares, "paper": paper, "paper_a": paper_a,
                     "paper_b": paper_b, "a": a, "b": b, "same_trend": _agrees(a, b, direction)})
    frame = pd.DataFrame(rows)
    frame.attrs = {"early_layers": early, "late_layers": late, "dataset": dataset}
    return frame
