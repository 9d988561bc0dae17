"""The DeepLIFT study of BERT on SQuAD 2.0 (arXiv 1910.06431): its observations beside our measurements.

The paper reads its per-layer heatmaps of one example by eye (Figures 1-13; no table). Each reading
becomes a measured statement on many examples here, from :func:`~bert_insight.attribution.profiles.
layer_focus` (share of absolute score per token kind and layer) and the output layer's probabilities.
Depth is relative: the paper's 12 BERT-base layers and our L meet at the same thirds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import BertInsightInputError
from ..frames import require_columns
from .profiles import token_kinds

#: The paper's observations, in its order (section 5, example 1).
DEEPLIFT2019_FINDINGS = {
    "sep_first": "in the initial layers the model focuses on the separator tokens first",
    "punctuation_next": "then it switches the focus to punctuation symbols",
    "question_dip": "the question keyword gets attention until layer 4 of 12, none from layer 5, and again in the "
                    "last layers",
    "answer_at_output": "in the output layer, full attention on the tokens of the prediction (the answer)",
}


def _thirds(layers: list[int]) -> dict[str, list[int]]:
    parts = np.array_split(np.array(sorted(layers)), 3)
    return {name: [int(layer) for layer in part] for name, part in zip(("early", "middle", "late"), parts)}


def deeplift2019_comparison(focus: pd.DataFrame, *, outputs: pd.DataFrame, tokens: pd.DataFrame) -> pd.DataFrame:
    """One row per finding of the paper: finding, paper (its words), measure (what we computed), ours
    (the number), agrees (bool: the measured trend has the paper's direction).

    ``focus``: :func:`bert_insight.attribution.profiles.layer_focus` of the DeepLIFT attributions (both
    targets are averaged); ``outputs``: layer_deeplift's outputs frame; ``tokens``: the tokens frame of the
    same predictions (answer tokens: role "answer"; [SEP]: :func:`~bert_insight.attribution.profiles.token_kinds`).
    """
    require_columns(focus, ("layer", "target", "kind", "share"), what="focus", made_by="bert_insight.layer_focus")
    require_columns(outputs, ("example_id", "token_index", "start_probability", "end_probability"), what="outputs",
                    made_by="bert_insight.layer_deeplift")
    require_columns(tokens, ("example_id", "token_index", "token", "segment", "role"), what="tokens",
                    made_by="bert_insight.tokens")
    shares = focus.groupby(["layer", "kind"], observed=True)["share"].mean().unstack("kind")
    layers = sorted(int(layer) for layer in shares.index)
    if len(layers) < 3:
        raise BertInsightInputError(f"focus has the layers {layers}; the comparison reads trends over depth and "
                                    "needs at least 3 layers (layer_deeplift(..., layers='all')).")
    thirds = _thirds(layers)

    def mean_over(kind: str, part: str) -> float:
        return float(shares.loc[thirds[part], kind].mean())

    sep_peak = int(shares["sep"].idxmax())
    # How much [SEP] would get if every token got the same share: the bar for "focuses on [SEP]".
    sep_tokens = float((token_kinds(tokens) == "sep").mean())
    punctuation_peak = int(shares["punctuation"].idxmax())
    question = {part: mean_over("question", part) for part in thirds}
    joined = outputs.astype({"example_id": str}).merge(
        tokens[["example_id", "token_index", "role"]].astype({"example_id": str}), on=["example_id", "token_index"])
    answered = joined.groupby("example_id").filter(lambda rows: (rows["role"] == "answer").any())
    on_answer = answered[answered["role"] == "answer"].groupby("example_id")[["start_probability",
                                                                              "end_probability"]].sum()
    answer_mass = float(on_answer.mean().mean()) if len(on_answer) else float("nan")
    rows = [
        ("sep_first", f"layer with the largest [SEP] share (of 0..{layers[-1]}); [SEP] share early / late; "
                      "[SEP]'s share of the tokens (agrees: peak early and at least twice that share)",
         f"layer {sep_peak}; {mean_over('sep', 'early'):.3f} / {mean_over('sep', 'late'):.3f}; {sep_tokens:.3f}",
         sep_peak in thirds["early"] and mean_over("sep", "early") >= 2 * sep_tokens),
        ("punctuation_next", "layer with the largest punctuation share, after the [SEP] peak?",
         f"layer {punctuation_peak} (the [SEP] peak: {sep_peak})", punctuation_peak >= sep_peak),
        ("question_dip", "question tokens' share, early / middle / late thirds",
         f"{question['early']:.3f} / {question['middle']:.3f} / {question['late']:.3f}",
         question["middle"] < question["early"] and question["middle"] < question["late"]),
        ("answer_at_output", f"start and end probability on the answer's tokens, mean over {len(on_answer)} answered "
                             "examples",
         f"{answer_mass:.3f}", bool(answer_mass > 0.5)),
    ]
    frame = pd.DataFrame([(key, DEEPLIFT2019_FINDINGS[key], measure, ours, agrees)
                          for key, measure, ours, agrees in rows],
                         columns=["finding", "paper", "measure", "ours", "agrees"])
    frame.attrs = {"thirds": thirds, "function": "bert_insight.deeplift2019_comparison"}
    return frame
