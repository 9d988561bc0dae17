"""Views of layer-wise DeepLIFT on QA (the DeepLIFT study of BERT on SQuAD 2.0): every token of the
input, question and special tokens included, coloured by its signed score layer by layer (Figures
1-12), and the output layer's start / end probabilities (Figure 13)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, CustomJS, Div, HoverTool, Slider
from bokeh.plotting import figure

from ..errors import BertInsightInputError
from ..frames import require_columns
from ._common import escape, readable_text_color, select_single, signed_colors

ATTRIBUTIONS_MADE_BY = "bert_insight.layer_deeplift (or layer_ig)"


def _example_tokens(tokens: pd.DataFrame, example_id: str) -> pd.DataFrame:
    require_columns(tokens, ["example_id", "token_index", "token", "segment", "role"], what="tokens",
                    made_by="bert_insight.tokens")
    chosen = tokens[tokens["example_id"].astype(str) == str(example_id)]
    if chosen.empty:
        raise BertInsightInputError(f"tokens has no rows for example {example_id!r}; pass the frame made by "
                                    "bert_insight.tokens for the same examples.")
    return chosen.sort_values("token_index")


def _token_html(pieces: list[str], colors: list[str], titles: list[str], answer: list[bool]) -> str:
    spans = []
    for piece, color, title, in_answer in zip(pieces, colors, titles, answer):
        underline = ";border-bottom:3px solid #000" if in_answer else ""
        spans.append(f'<span style="background:{color};color:{readable_text_color(color)};padding:0 2px{underline}" '
                     f'title="{escape(title)}">{escape(piece)}</span>')
    return '<div style="line-height:1.9;font-size:13px">' + " ".join(spans) + "</div>"


def token_heatmap(attributions: pd.DataFrame, *, tokens: pd.DataFrame, example_id: str, target: str = "start",
                  method: str | None = None):
    """Every token of one example's window coloured by its signed score (diverging palette, centred at 0,
    limits +-max|score| of each layer as the paper's per-figure scales), with a layer slider.

    The answer (gold, else predicted) is underlined; hovering a token shows its score and the layer's
    scale. Returns a bokeh ``column`` (header, slider, the tokens ``Div`` named "tokens"); the HTML of
    every layer is precomputed, so the slider works in static HTML too.
    """
    require_columns(attributions, ["example_id", "method", "layer", "target", "token_index", "score"],
                    what="attributions", made_by=ATTRIBUTIONS_MADE_BY)
    chosen = select_single(attributions, "example_id", str(example_id), what="attributions")
    chosen = select_single(chosen, "target", target, what="attributions")
    chosen = select_single(chosen, "method", method, what="attributions")
    example_tokens = _example_tokens(tokens, example_id)
    pieces = example_tokens["token"].astype(str).tolist()
    answer = (example_tokens["in_answer"] if "in_answer" in example_tokens else
              example_tokens["role"].eq("answer")).astype(bool).tolist()
    layers = sorted(int(layer) for layer in chosen["layer"].unique())
    htmls = []
    for layer in layers:
        scores = (chosen[chosen["layer"] == layer].set_index("token_index")["score"]
                  .reindex(example_tokens["token_index"]).to_numpy(dtype=float))
        if np.isnan(scores).any():
            raise BertInsightInputError(f"attributions of example {example_id!r} miss tokens of its window at layer "
                                        f"{layer}; make tokens and attributions from the same predictions.")
        limit = float(np.abs(scores).max()) or 1.0
        titles = [f"{piece}  score={score:+.4g}  (layer {layer} scale +-{limit:.3g})"
                  for piece, score in zip(pieces, scores)]
        htmls.append(_token_html(pieces, signed_colors(scores), titles, answer))
    header = Div(text=(f"<b>{escape(example_id)}</b>: {escape(chosen['method'].iloc[0])} score of every token for the "
                       f"<b>{escape(target)}</b> logit (green positive, magenta negative: the library's diverging palette; answer underlined)"))
    tokens_div = Div(text=htmls[0], sizing_mode="stretch_width", name="tokens")
    slider = Slider(start=layers[0], end=max(layers[-1], layers[0] + 1), value=layers[0], step=1, title="layer",
                    name="layer_slider", disabled=len(layers) == 1)
    slider.js_on_change("value", CustomJS(args=dict(div=tokens_div, htmls=htmls, layers=layers), code="""
        const i = layers.indexOf(cb_obj.value);
        if (i >= 0) { div.text = htmls[i]; }
    """))
    return column(header, slider, tokens_div, sizing_mode="stretch_width")


def output_view(outputs: pd.DataFrame, *, tokens: pd.DataFrame, example_id: str, width: int = 900):
    """The output layer (the paper's Figure 13): the start and end probability of every token of one
    example's window, as two bar series over the tokens. The bars' data source (name "outputs") has
    columns token_index, token, start_probability, end_probability."""
    require_columns(outputs, ["example_id", "token_index", "start_probability", "end_probability"],
                    what="outputs", made_by="bert_insight.layer_deeplift (its third frame)")
    chosen = outputs[outputs["example_id"].astype(str) == str(example_id)].sort_values("token_index")
    if chosen.empty:
        raise BertInsightInputError(f"outputs has no rows for example {example_id!r}.")
    example_tokens = _example_tokens(tokens, example_id).set_index("token_index")["token"]
    data = {"token_index": chosen["token_index"].to_numpy(),
            "token": example_tokens.reindex(chosen["token_index"]).fillna("?").astype(str).to_numpy(),
            "start_probability": chosen["start_probability"].to_numpy(),
            "end_probability": chosen["end_probability"].to_numpy()}
    source = ColumnDataSource(data, name="outputs")
    fig = figure(width=width, height=260, title=f"{example_id}: output layer, start and end probability per token",
                 x_axis_label="token", y_axis_label="probability", tools="xpan,xwheel_zoom,reset,save")
    starts = fig.vbar(x="token_index", top="start_probability", width=0.45, source=source, color="#d6604d",
                      legend_label="start")
    ends = fig.vbar(x="token_index", top="end_probability", width=0.45, source=source, color="#4393c3",
                    legend_label="end", alpha=0.8)
    fig.add_tools(HoverTool(renderers=[starts, ends], tooltips=[("token", "@token"), ("index", "@token_index"),
                                                                ("start", "@start_probability{0.000}"),
                                                                ("end", "@end_probability{0.000}")]))
    top = np.argsort(-(data["start_probability"] + data["end_probability"]))[:3]
    best = ", ".join(f"{data['token'][i]!s} ({data['start_probability'][i]:.2f} / {data['end_probability'][i]:.2f})"
                     for i in top)
    return column(Div(text=f"most probable tokens (start / end): {escape(best)}"), fig)


__all__ = ["token_heatmap", "output_view"]
