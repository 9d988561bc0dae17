"""Ramnath et al. 2020's reported trends and a BERT-base measurement next to ours, as frames, so the
reproduction notebook stays free of arithmetic (computation only: the views are in bert_insight.viz)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._compat import keywords_only
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
}


#: Per-layer shares measured on BERT-base (12 layers) fine-tuned on SQuAD 1.1, from the ML Reproducibility
#: Challenge 2020 reproduction of Ramnath et al. (github.com/gchhablani/MLRC-2020-Towards-Interpreting-BERT-
#: for-RCQA, "Examples and Results/New/Tables" and "New Results"): captum IG with 25 steps on 1,000 dev
#: examples, top-5 words, supporting window 5. The paper's own tables are not available offline; these
#: are an independent BERT-base measurement of the same statistics, in percent, one value per hidden
#: state 0..11 (the paper's L0..L11).
MLRC2020_BERT_BASE_SQUAD: dict[tuple[str, str], tuple[float, ...]] = {
    ("category", "answer"): (38.10, 37.58, 37.10, 41.00, 40.42, 40.82, 40.74, 40.06, 41.90, 41.18, 43.36, 42.52),
    ("category", "supporting"): (32.96, 33.04, 33.58, 33.10, 36.40, 34.68, 36.46, 35.76, 34.94, 36.12, 35.40,
                                 32.14),
    ("category", "question_word"): (22.46, 22.20, 24.08, 19.62, 16.34, 18.58, 15.62, 14.12, 11.38, 11.66, 9.74,
                                    10.30),
    ("pos_group", "noun"): (58.88, 55.94, 57.10, 55.58, 51.22, 51.60, 48.04, 48.80, 52.72, 50.42, 53.00, 57.90),
    ("pos_group", "verb"): (8.96, 8.28, 10.12, 9.18, 8.66, 8.58, 8.90, 8.18, 7.74, 6.24, 5.98, 3.78),
    ("pos_group", "stopword"): (12.02, 12.54, 13.08, 14.40, 17.54, 19.36, 20.30, 18.26, 18.02, 17.44, 18.20,
                                15.06),
    ("pos_group", "adverb"): (2.12, 1.96, 2.44, 2.42, 2.00, 2.30, 2.18, 1.84, 2.00, 1.96, 1.88, 1.76),
    ("pos_group", "adjective"): (6.78, 7.18, 6.78, 6.74, 6.14, 7.00, 6.26, 5.90, 6.06, 5.98, 5.90, 6.30),
    ("pos_group", "punctuation"): (7.34, 9.98, 7.20, 7.48, 10.52, 6.56, 9.70, 11.98, 7.78, 11.74, 10.08, 8.26),
    ("quantifier", "numeric_share"): (6.06, 6.24, 6.50, 6.80, 7.02, 7.50, 7.54, 8.02, 8.64, 9.12, 8.18, 9.44),
}
MLRC2020_SOURCE = ("BERT-base fine-tuned on SQuAD 1.1 (ML Reproducibility Challenge 2020 reproduction of Ramnath "
                   "et al.; captum IG, 25 steps, 1,000 dev examples)")
DEPTH_BINS = ("early", "middle", "late")


def depth_bins(layers: list[int]) -> dict[int, str]:
    """Each layer's third of the depth: the sorted layers split into three near-equal runs."""
    ordered = sorted(layers)
    return {int(layer): DEPTH_BINS[position]
            for position, run in enumerate(np.array_split(np.array(ordered), 3)) for layer in run}


@keywords_only("categories", "pos", "quantifiers")
def ramnath2020_by_depth(*, categories: pd.DataFrame, pos: pd.DataFrame, quantifiers) -> pd.DataFrame:
    """Our top-k shares next to BERT-base's, per third of the depth (early / middle / late layers).

    A 6-layer model and a 12-layer one are compared at the same relative depth: each model's attributed
    layers are split into three runs and the shares are averaged over a run's layers (and over the
    start and end targets for ours). The reference is :data:`MLRC2020_BERT_BASE_SQUAD`.

    Returns a DataFrame with columns statistic (category, pos_group or quantifier), group (e.g.
    answer, noun, numeric_share), depth (early / middle / late), ours, bert_base (both fractions in
    [0, 1]); ``attrs["reference"]`` names the reference's source.
    """
    require_columns(categories, ["layer", "category", "share"], what="categories",
                    made_by="bert_insight.topk_categories")
    require_columns(pos, ["layer", "pos_group", "share"], what="pos", made_by="bert_insight.topk_pos")
    ours_frames = {
        "category": categories.rename(columns={"category": "group"})[["layer", "group", "share"]],
        "pos_group": pos.rename(columns={"pos_group": "group"})[["layer", "group", "share"]],
        "quantifier": quantifiers.numeric_focus.assign(group="numeric_share")
        .rename(columns={"numeric_share": "share"})[["layer", "group", "share"]],
    }
    reference_bins = depth_bins(list(range(12)))
    rows = []
    for (statistic, group), values in MLRC2020_BERT_BASE_SQUAD.items():
        ours = ours_frames[statistic]
        ours = ours[ours["group"].astype(str) == group]
        ours_bins = depth_bins(ours["layer"].unique().tolist())
        for depth in DEPTH_BINS:
            reference = [value / 100 for layer, value in enumerate(values) if reference_bins[layer] == depth]
            chosen = ours.loc[ours["layer"].map(ours_bins) == depth, "share"]
            rows.append({"statistic": statistic, "group": group, "depth": depth,
                         "ours": float(chosen.mean()),  # NaN where we did not measure the group
                         "bert_base": float(np.mean(reference))})
    frame = pd.DataFrame(rows)
    frame["depth"] = pd.Categorical(frame["depth"], categories=DEPTH_BINS, ordered=True)
    frame.attrs = {"reference": MLRC2020_SOURCE}
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


@keywords_only("jsd_head", "jsd_tail", "categories", "pos", "quantifiers")
def ramnath2020_comparison(
    *,
    jsd_head: pd.DataFrame,
    jsd_tail: pd.DataFrame,
    categories: pd.DataFrame,
    pos: pd.DataFrame,
    quantifiers,
) -> pd.DataFrame:
    """Ramnath et al. 2020's reported trends next to the same statistics measured on our frames.

    Inputs are what the notebook computes: importance_jsd (keep="head" and "tail"), topk_categories,
    topk_pos and quantifier_analysis results. "Early" layers are the first third of the attributed
    layers, "late" the last third (at least one each); shares are averaged over the targets (start /
    end) and those layers.

    Returns a DataFrame with columns statistic, compares (what a and b are), paper (the paper's trend),
    a, b (ours), same_trend (True / False where the paper states a direction, else None).
    """
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

    rows = []
    for key, (statistic, compares, paper, direction) in RAMNATH2020_TRENDS.items():
        a, b = values[key]
        rows.append({"statistic": statistic, "compares": compares, "paper": paper, "a": a, "b": b,
                     "same_trend": _agrees(a, b, direction)})
    frame = pd.DataFrame(rows)
    frame.attrs = {"early_layers": early, "late_layers": late}
    return frame
