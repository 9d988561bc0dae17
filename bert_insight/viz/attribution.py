"""Views of layer-wise attributions (Ramnath et al. 2020): JSD heatmaps, the passage with each layer's
top-k words, and share curves over layers."""

from __future__ import annotations

import numpy as np
import pandas as pd
from bokeh.layouts import column, row
from bokeh.models import (
    BoxAnnotation,
    ColorBar,
    ColumnDataSource,
    CustomJS,
    Div,
    HoverTool,
    LinearColorMapper,
    Slider,
)
from bokeh.plotting import figure

from .._compat import keywords_only, renamed
from ..attribution.analysis import rank_words
from ..errors import BertInsightInputError
from ..frames import require_columns
from ..text import strongest_role
from ._common import (
    DIVERGING,
    SEQUENTIAL,
    SEQUENTIAL_BLUE,
    categorical_colors,
    column_pair,
    escape,
    readable_text_color,
    select_single,
    sequential_colors,
    signed_colors,
)

ATTRIBUTIONS_MADE_BY = "bert_insight.layer_ig (its .attributions frame)"
TOKENS_MADE_BY = "bert_insight.tokens"


# --------------------------------------------------------------------------------------------------
# Words of the passage and their per-layer scores


@keywords_only("tokens")
def passage_word_scores(
    attributions: pd.DataFrame,
    *,
    tokens: pd.DataFrame,
    example_id: str,
    target: str = "start",
    method: str | None = None,
    quadrature: str | None = None,
) -> pd.DataFrame:
    """Word-level scores of one example's passage, per layer.

    Word-piece rows of ``attributions`` are joined to ``tokens`` on token_index and summed per word
    (importance and signed score), keeping context tokens only.

    Returns a DataFrame with columns layer, word_index, word, role, in_answer, importance, score,
    sorted by layer then word_index.
    """
    require_columns(attributions, ["example_id", "layer", "target", "token_index", "importance", "score"],
                    what="attributions", made_by=ATTRIBUTIONS_MADE_BY)
    require_columns(tokens, ["example_id", "token_index", "word_index", "word", "segment", "role"],
                    what="tokens", made_by=TOKENS_MADE_BY)
    chosen = select_single(attributions, "example_id", example_id, what="attributions")
    chosen = select_single(chosen, "target", target, what="attributions")
    chosen = select_single(chosen, "method", method, what="attributions")
    chosen = select_single(chosen, "quadrature", quadrature, what="attributions")
    example_tokens = select_single(tokens, "example_id", example_id, what="tokens")
    context = example_tokens[example_tokens["segment"] == "context"]
    if context.empty:
        raise BertInsightInputError(f"tokens of example {example_id!r} hold no context tokens; pass the frame "
                                    f"made by {TOKENS_MADE_BY} for the same example.")
    context = context[["token_index", "word_index", "word", "role"]].assign(
        in_answer=context["in_answer"] if "in_answer" in context else context["role"].eq("answer")
    )
    joined = chosen[["layer", "token_index", "importance", "score"]].merge(context, on="token_index", how="inner")
    if joined.empty:
        raise BertInsightInputError(
            f"attributions and tokens of example {example_id!r} share no context token_index; make both from "
            "the same analysis window (bert_insight.qa.analysis_windows)."
        )
    words = (
        joined.groupby(["layer", "word_index"], sort=True)
        .agg(word=("word", "first"), role=("role", strongest_role), in_answer=("in_answer", "any"),
             importance=("importance", "sum"), score=("score", "sum"))
        .reset_index()
    )
    return words


def _passage_html(layer_words: pd.DataFrame, highlighted: dict[int, str], *, signed: bool) -> str:
    spans = []
    colors = signed_colors(layer_words["score"]) if signed else None
    for i, word in enumerate(layer_words.itertuples(index=False)):
        background = colors[i] if signed else highlighted.get(word.word_index)
        style = []
        if background:
            style.append(f"background:{background};color:{readable_text_color(background)}")
        if signed and word.word_index in highlighted:
            style.append("font-weight:bold;outline:1px solid #333")
        if word.in_answer:
            style.append("border-bottom:3px solid #000")
        title = f"{word.word}  importance={word.importance:.4f}  score={word.score:+.4f}"
        spans.append(f'<span style="{";".join(style)};padding:0 2px" title="{escape(title)}">{escape(word.word)}</span>')
    return '<div style="line-height:1.9;font-size:14px">' + " ".join(spans) + "</div>"


@keywords_only("tokens")
@renamed(k="top_k")
def passage_view(
    attributions: pd.DataFrame,
    *,
    tokens: pd.DataFrame,
    example_id: str,
    target: str = "start",
    top_k: int = 5,
    method: str | None = None,
    quadrature: str | None = None,
    color_by: str = "importance",
):
    """The passage of one example with each layer's top-k words highlighted (Ramnath et al. Table 3).

    ``tokens`` is the tokens frame of the same examples (:func:`bert_insight.tokens`). A layer slider switches the highlighted words; the answer span is underlined; hovering a word
    shows its importance and signed score. Below, a layer x rank grid lists every layer's top-k
    words at once (rank 1 = most important; hover for scores), with the slider's layer outlined.

    ``color_by="importance"`` shades the top-k words with a sequential palette;
    ``color_by="score"`` shades every word by its signed score (diverging palette centred at 0,
    negative magenta, positive green) and outlines the top-k.

    The grid's data source (name ``"topk_words"``) has columns layer, rank, word_index, word, role,
    importance, score, color, text_color: exactly k rows per layer.
    Returns a bokeh ``column`` layout.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise BertInsightInputError(f"top_k={top_k!r}; pass a positive whole number of words to highlight per layer.")
    k = int(top_k)
    if color_by not in ("importance", "score"):
        raise BertInsightInputError(f"color_by={color_by!r}; use 'importance' or 'score'.")
    words = passage_word_scores(attributions, tokens=tokens, example_id=example_id, target=target, method=method,
                                quadrature=quadrature)
    top = rank_words(words, k, by=["layer"]).reset_index(drop=True)
    top["color"] = sequential_colors(top["importance"])
    top["text_color"] = [readable_text_color(color) for color in top["color"]]
    layers = sorted(int(layer) for layer in words["layer"].unique())

    htmls = []
    for layer in layers:
        layer_top = top[top["layer"] == layer]
        highlighted = dict(zip(layer_top["word_index"], layer_top["color"]))
        htmls.append(_passage_html(words[words["layer"] == layer], highlighted, signed=color_by == "score"))

    header = Div(text=(
        f"<b>{escape(example_id)}</b>: top-{int(k)} words per layer for the <b>{escape(target)}</b> logit "
        "(answer underlined; hover a word for its scores)"
    ))
    passage = Div(text=htmls[0], sizing_mode="stretch_width", name="passage")
    slider = Slider(start=layers[0], end=max(layers[-1], layers[0] + 1), value=layers[0], step=1, title="layer",
                    name="layer_slider", disabled=len(layers) == 1)

    columns = ["layer", "rank", "word_index", "word", "role", "importance", "score", "color", "text_color"]
    source = ColumnDataSource({column: top[column].to_numpy() for column in columns}, name="topk_words")
    grid = figure(height=60 + 28 * len(layers), width=140 * int(k) + 80, title="top words per layer",
                  x_range=(0.5, int(k) + 0.5), y_range=(layers[-1] + 0.5, layers[0] - 0.5),
                  tools="", toolbar_location=None, x_axis_label="rank", y_axis_label="layer")
    cells = grid.rect(x="rank", y="layer", width=0.96, height=0.9, source=source, fill_color="color",
                      line_color=None)
    grid.text(x="rank", y="layer", text="word", source=source, text_align="center", text_baseline="middle",
              text_font_size="11px", text_color="text_color")
    grid.add_tools(HoverTool(renderers=[cells], tooltips=[("word", "@word"), ("layer", "@layer"), ("rank", "@rank"),
                                                          ("importance", "@importance{0.0000}"),
                                                          ("score", "@score{+0.0000}")]))
    grid.xaxis.ticker = list(range(1, int(k) + 1))
    grid.yaxis.ticker = layers
    grid.grid.visible = False
    band = BoxAnnotation(bottom=layers[0] - 0.5, top=layers[0] + 0.5, fill_alpha=0.0, line_color="black",
                         line_alpha=1.0, line_width=2)
    grid.add_layout(band)

    slider.js_on_change("value", CustomJS(args=dict(passage=passage, htmls=htmls, layers=layers, band=band), code="""
        const i = layers.indexOf(cb_obj.value);
        if (i >= 0) {
            passage.text = htmls[i];
            band.bottom = cb_obj.value - 0.5;
            band.top = cb_obj.value + 0.5;
        }
    """))
    return column(header, slider, passage, grid, sizing_mode="stretch_width")


# --------------------------------------------------------------------------------------------------
# JSD heatmaps (Figure 1)

_LAYER_PAIR_COLUMNS = (("layer_a", "layer_b"), ("layer_i", "layer_j"), ("layer_x", "layer_y"), ("layer1", "layer2"))


def _mean_matrix(frame: pd.DataFrame, value: str, what: str) -> pd.DataFrame:
    require_columns(frame, [value], what=what, made_by="bert_insight.importance_jsd")
    first, second = column_pair(frame, _LAYER_PAIR_COLUMNS, what="JSD (layer columns)",
                                made_by="bert_insight.importance_jsd")
    # Per-example (or per-target) rows are averaged: Figure 1 shows the mean over examples.
    matrix = frame.groupby([first, second], sort=True)[value].mean().reset_index()
    return matrix.rename(columns={first: "layer_a", second: "layer_b", value: "value"})


def jsd_heatmaps(jsd_head: pd.DataFrame, jsd_tail: pd.DataFrame, *, target: str | None = None,
                 value: str = "jsd", titles: tuple[str, str] = ("top-k (head)", "rest (tail)"),
                 shared_scale: bool = False):
    """The pair of layer x layer Jensen-Shannon divergence heatmaps (Ramnath et al. Figure 1).

    Each frame (from bert_insight.importance_jsd with keep="head" / "tail") has two layer columns
    (layer_a, layer_b) and a ``value`` column; ``target`` keeps that target's rows, and the remaining
    rows per layer pair (examples, targets) are averaged. Sequential colours, 0 = lightest; each map has
    its own colour bar (the tail's divergences are often far smaller than the head's, and would vanish
    on a common scale), or one common scale with ``shared_scale=True``. Hover shows the two layers and
    the value. Returns a bokeh ``row`` of the two figures.
    """
    if target is not None:
        jsd_head = select_single(jsd_head, "target", target, what="jsd_head")
        jsd_tail = select_single(jsd_tail, "target", target, what="jsd_tail")
    head = _mean_matrix(jsd_head, value, "jsd_head")
    tail = _mean_matrix(jsd_tail, value, "jsd_tail")

    def mapper_for(*matrices: pd.DataFrame) -> LinearColorMapper:
        high = float(max(matrix["value"].max() for matrix in matrices))
        return LinearColorMapper(palette=SEQUENTIAL_BLUE, low=0.0, high=high if high > 0 else 1.0)

    common = mapper_for(head, tail) if shared_scale else None
    figures = []
    for matrix, title, name in ((head, titles[0], "jsd_head"), (tail, titles[1], "jsd_tail")):
        mapper = common or mapper_for(matrix)
        layers = sorted(set(matrix["layer_a"]) | set(matrix["layer_b"]))
        label = f"JSD {title}" + (f", {target}" if target is not None else "")
        fig = figure(width=400, height=330, title=label, tools="", toolbar_location=None,
                     x_range=(layers[0] - 0.5, layers[-1] + 0.5), y_range=(layers[0] - 0.5, layers[-1] + 0.5),
                     x_axis_label="layer", y_axis_label="layer")
        source = ColumnDataSource({column: matrix[column].to_numpy() for column in matrix.columns}, name=name)
        cells = fig.rect(x="layer_a", y="layer_b", width=1, height=1, source=source,
                         fill_color={"field": "value", "transform": mapper}, line_color=None)
        fig.add_tools(HoverTool(renderers=[cells], tooltips=[("layers", "@layer_a, @layer_b"),
                                                             (value, "@value{0.0000}")]))
        fig.xaxis.ticker = layers
        fig.yaxis.ticker = layers
        fig.grid.visible = False
        if common is None or name == "jsd_tail":
            fig.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
        figures.append(fig)
    return row(*figures)


# --------------------------------------------------------------------------------------------------
# Share curves over layers


_FACET_ORDER = ("start", "end", "start+end")


def layer_curves(
    frame: pd.DataFrame,
    *,
    x: str = "layer",
    y: str = "share",
    group: str = "category",
    facet: str | None = "target",
    title: str | None = None,
):
    """One line per ``group`` value of ``y`` over ``x`` (e.g. the share of top-k words that are answer /
    question / supporting words, or nouns / verbs ..., per layer).

    Several rows per (facet, group, x) -- e.g. one per example -- are averaged. With a ``facet`` column
    holding several values (start / end targets) one figure per value is drawn side by side with a
    shared y range. Hover shows group, x and y.
    Returns a bokeh ``row`` of figures.
    """
    require_columns(frame, [x, y, group], what="the frame", made_by="bert_insight.topk_categories or topk_pos")
    facets = [None]
    if facet is not None and facet in frame.columns:
        # start before end, as the paper reads
        facets = sorted(pd.unique(frame[facet]), key=lambda v: (_FACET_ORDER.index(v) if v in _FACET_ORDER else 99, str(v)))
    keys = [x, group] if facets == [None] else [facet, x, group]
    means = frame.groupby(keys, sort=True)[y].mean().reset_index()
    groups = list(pd.unique(frame[group]))
    colors = categorical_colors([str(g) for g in groups])
    figures = []
    for facet_value in facets:
        part = means if facet_value is None else means[means[facet] == facet_value]
        label = title or f"{y} by {group}"
        if facet_value is not None:
            label = f"{label} ({facet}={facet_value})"
        shared = {"y_range": figures[0].y_range} if figures else {}
        fig = figure(width=470, height=300, title=label, x_axis_label=x, y_axis_label=y,
                     tools="pan,wheel_zoom,reset,save", toolbar_location="above", **shared)
        renderers = []
        for group_value in groups:
            rows = part[part[group] == group_value].sort_values(x)
            if rows.empty:
                continue
            source = ColumnDataSource(dict(x=rows[x].to_numpy(), y=rows[y].to_numpy(),
                                           group=[str(group_value)] * len(rows)))
            color = colors[str(group_value)]
            fig.line("x", "y", source=source, color=color, line_width=2, legend_label=str(group_value))
            renderers.append(fig.scatter("x", "y", source=source, color=color, size=6,
                                         legend_label=str(group_value)))
        fig.add_tools(HoverTool(renderers=renderers, tooltips=[(group, "@group"), (x, "@x"), (y, "@y{0.000}")]))
        if x == "layer":
            fig.xaxis.ticker = sorted(int(value) for value in pd.unique(frame[x]))
        fig.legend.click_policy = "hide"
        fig.legend.label_text_font_size = "9px"
        fig.add_layout(fig.legend[0], "right")
        figures.append(fig)
    return row(*figures)


__all__ = ["passage_view", "passage_word_scores", "jsd_heatmaps", "layer_curves", "DIVERGING",
           "SEQUENTIAL"]
