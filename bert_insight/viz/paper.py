"""A table of a paper's reported trends next to ours, so reproduction notebooks stay free of arithmetic."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import require_columns

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


def ramnath2020_comparison(
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
