"""Views of tokens: the question/passage coloured by token role, and token vectors projected per layer."""

from __future__ import annotations

import pandas as pd
from bokeh.layouts import column
from bokeh.models import CDSView, ColumnDataSource, CustomJS, Div, GroupFilter, HoverTool, Slider
from bokeh.plotting import figure
from bokeh.transform import factor_cmap

from ..errors import BertInsightInputError
from ..frames import require_columns
from ..text import strongest_role
from ._common import (
    ROLE_COLORS,
    categorical_colors,
    column_pair,
    escape,
    readable_text_color,
    select_single,
)

TOKENS_MADE_BY = "bert_insight.tokens"
PROJECTION_MADE_BY = "bert_insight.project_tokens"

_ROLE_LABELS = {
    "question": "question",
    "answer": "answer",
    "supporting": "supporting (within 5 words of the answer)",
    "question_word": "passage word also in the question",
    "other": "other passage word",
}


def _words(tokens: pd.DataFrame) -> pd.DataFrame:
    """One row per word of each segment: its text, role and word pieces, in input order."""
    real = tokens[tokens["word_index"] >= 0].sort_values("token_index")
    return (
        real.groupby(["segment", "word_index"], sort=False)
        .agg(word=("word", "first"), role=("role", strongest_role), pieces=("token", " ".join),
             first_token=("token_index", "min"))
        .reset_index()
        .sort_values("first_token")
    )


def _role_span(word: str, role: str, pieces: str) -> str:
    background = ROLE_COLORS.get(role, "#ffffff") if role not in ("other", "context") else None
    style = f"background:{background};color:{readable_text_color(background)};" if background else ""
    title = f"{word}  role={role}  pieces={pieces}"
    return f'<span style="{style}padding:0 2px;border-radius:3px" title="{escape(title)}">{escape(word)}</span>'


def qa_roles_view(tokens: pd.DataFrame, *, example_id: str):
    """The question and passage of one example, each word coloured by its role.

    Question words, the answer span, supporting words (within 5 words of the answer) and passage words
    that also occur in the question get their own colours (bert_insight.viz ROLE_COLORS); hovering a
    word shows its role and word pieces.
    Returns a bokeh ``column`` of a legend and the question / passage text.
    """
    require_columns(tokens, ["example_id", "token_index", "token", "word_index", "word", "segment", "role"],
                    what="tokens", made_by=TOKENS_MADE_BY)
    example = select_single(tokens, "example_id", example_id, what="tokens")
    words = _words(example)
    if words.empty:
        raise BertInsightInputError(f"tokens of example {example_id!r} hold no words (only special tokens).")
    counts = words["role"].value_counts()
    legend = " ".join(
        f'<span style="background:{ROLE_COLORS[role]};color:{readable_text_color(ROLE_COLORS[role])};'
        f'padding:1px 5px;border-radius:3px;margin-right:6px">{escape(label)} ({int(counts.get(role, 0))})</span>'
        for role, label in _ROLE_LABELS.items()
    )
    question = " ".join(_role_span(w.word, w.role, w.pieces)
                        for w in words[words["segment"] == "question"].itertuples(index=False))
    passage = " ".join(_role_span(w.word, w.role, w.pieces)
                       for w in words[words["segment"] == "context"].itertuples(index=False))
    style = 'style="line-height:1.9;font-size:14px"'
    return column(
        Div(text=f"<b>{escape(example_id)}</b> &mdash; token roles (hover a word for its pieces)<br>{legend}"),
        Div(text=f"<div {style}><b>Q:</b> {question}</div>", sizing_mode="stretch_width", name="question"),
        Div(text=f"<div {style}><b>Passage:</b> {passage}</div>", sizing_mode="stretch_width", name="passage"),
        sizing_mode="stretch_width",
    )


_COORDINATE_COLUMNS = (("x", "y"), ("dim_0", "dim_1"), ("component_1", "component_2"), ("tsne_1", "tsne_2"),
                       ("pc1", "pc2"))


def token_scatter(projection: pd.DataFrame, *, color: str = "role", example_id: str | None = None):
    """Token vectors projected to 2-D (t-SNE / PCA), one layer at a time, coloured by ``color`` (role).

    A layer slider picks the layer (each layer has its own projection); hovering a point shows the
    token, its role and index. The scatter's data source (name ``"projection"``) holds every layer's
    rows with the frame's coordinates in columns x and y; a view filter shows the slider's layer.
    Returns a bokeh ``column`` layout.
    """
    require_columns(projection, ["layer", "token"], what="projection", made_by=PROJECTION_MADE_BY)
    x_column, y_column = column_pair(projection, _COORDINATE_COLUMNS, what="projection (2-D coordinate)",
                                     made_by=PROJECTION_MADE_BY)
    frame = select_single(projection, "example_id", example_id, what="projection")
    if color not in frame.columns:
        fallback = "segment" if "segment" in frame.columns else None
        if fallback is None:
            raise BertInsightInputError(f"projection has no {color!r} column to colour by; pass color= one of "
                                        f"{list(frame.columns)}.")
        color = fallback
    layers = sorted(int(layer) for layer in frame["layer"].unique())
    data = {
        "layer": frame["layer"].astype(int).to_numpy(),
        "x": frame[x_column].to_numpy(dtype=float),
        "y": frame[y_column].to_numpy(dtype=float),
        "token": frame["token"].astype(str).to_numpy(),
        "category": frame[color].astype(str).to_numpy(),
        "token_index": frame["token_index"].to_numpy() if "token_index" in frame else frame.index.to_numpy(),
    }
    source = ColumnDataSource(data, name="projection")
    layer_filter = GroupFilter(column_name="layer", group=layers[-1])
    order = list(ROLE_COLORS)
    categories = sorted(set(data["category"]), key=lambda c: (order.index(c) if c in order else len(order), c))
    colors = categorical_colors(categories)
    settings = projection.attrs.get("projection", {}) if isinstance(projection.attrs.get("projection"), dict) else {}
    method = str(settings.get("method", projection.attrs.get("method", "projection")))
    method = {"tsne": "t-SNE", "pca": "PCA", "ica": "ICA"}.get(method, method)
    fig = figure(width=640, height=460, title=f"{method} of token vectors, coloured by {color}",
                 tools="pan,wheel_zoom,box_zoom,reset,save", x_axis_label=x_column, y_axis_label=y_column)
    points = fig.scatter("x", "y", source=source, view=CDSView(filter=layer_filter), size=8, alpha=0.8,
                         color=factor_cmap("category", palette=[colors[c] for c in categories], factors=categories),
                         legend_field="category")
    fig.add_tools(HoverTool(renderers=[points], tooltips=[("token", "@token"), (color, "@category"),
                                                          ("token_index", "@token_index"), ("layer", "@layer")]))
    fig.legend.label_text_font_size = "9px"
    fig.add_layout(fig.legend[0], "right")
    slider = Slider(start=layers[0], end=max(layers[-1], layers[0] + 1), value=layers[-1], step=1, title="layer",
                    name="layer_slider", disabled=len(layers) == 1)
    slider.js_on_change("value", CustomJS(args=dict(layer_filter=layer_filter, source=source), code="""
        layer_filter.group = cb_obj.value;
        source.change.emit();
    """))
    return column(slider, fig)


__all__ = ["qa_roles_view", "token_scatter"]
