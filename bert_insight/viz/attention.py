"""Views of attention: a layer x head grid of any per-head statistic, and one example's maps.

Both are plain bokeh (no require.js, no CDN): :func:`bert_insight.viz.show` embeds BokehJS inline, so
they render in a live notebook and in the static HTML papermill leaves (where bertviz's require.js
views stay blank offline).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from bokeh.layouts import column, row
from bokeh.models import ColorBar, ColumnDataSource, CustomJS, HoverTool, LinearColorMapper, Select
from bokeh.plotting import figure

from ..errors import BertInsightInputError
from ..frames import require_columns
from ._common import SEQUENTIAL_BLUE, select_single


def head_grid(stats: pd.DataFrame, *, value: str, task: str | None = None, title: str | None = None,
              low: float | None = None, high: float | None = None):
    """A layer x head heatmap of the ``value`` column of a per-head frame (special_token_attention,
    attention_similarity, ablate_heads, ...): rows of one ``task`` (needed when the frame holds
    several), repeated (layer, head) rows averaged. Layer 0 is at the bottom; hover shows layer, head and
    value. ``low``/``high`` fix the colour scale (default: the data's range). Returns a bokeh figure."""
    require_columns(stats, ["layer", "head", value], what="the per-head frame",
                    made_by="an attention statistic such as bert_insight.attention.stats.special_token_attention")
    stats = select_single(stats, "task", task, what="the per-head frame")
    grid = stats.groupby(["layer", "head"], sort=True)[value].mean().reset_index()
    values = grid[value].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        raise BertInsightInputError(f"column {value!r} holds no finite values to draw.")
    lower = float(np.nanmin(values)) if low is None else float(low)
    upper = float(np.nanmax(values)) if high is None else float(high)
    mapper = LinearColorMapper(palette=SEQUENTIAL_BLUE, low=lower, high=upper if upper > lower else lower + 1e-9)
    layers = sorted(grid["layer"].unique().tolist())
    heads = sorted(grid["head"].unique().tolist())
    label = title or f"{value}" + (f" ({task})" if task else "")
    fig = figure(width=max(260, 32 * len(heads) + 110), height=max(200, 32 * len(layers) + 80), title=label,
                 tools="", toolbar_location=None, x_axis_label="head", y_axis_label="layer",
                 x_range=(heads[0] - 0.5, heads[-1] + 0.5), y_range=(layers[0] - 0.5, layers[-1] + 0.5))
    source = ColumnDataSource({"layer": grid["layer"].to_numpy(), "head": grid["head"].to_numpy(),
                               "value": values}, name="head_grid")
    cells = fig.rect(x="head", y="layer", width=1, height=1, source=source, line_color=None,
                     fill_color={"field": "value", "transform": mapper})
    fig.add_tools(HoverTool(renderers=[cells], tooltips=[("layer", "@layer"), ("head", "@head"),
                                                         (value, "@value{0.0000}")]))
    fig.xaxis.ticker = heads
    fig.yaxis.ticker = layers
    fig.grid.visible = False
    fig.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
    return fig


def attention_view(maps, *, example_id: str | None = None, layer: int | None = None, head: int | None = None):
    """One example's attention map with layer and head selectors (bokeh Select widgets, run by BokehJS
    so they work in the static HTML too). Token labels on both axes (query down, key across; tokens
    HTML-escaped), hover shows query, key and weight. ``maps`` is :func:`bert_insight.attention.maps.attention_maps`'s
    result; ``example_id`` defaults to its first example, ``layer``/``head`` to the first collected."""
    if not len(maps):
        raise BertInsightInputError("maps holds no examples; pass attention_maps(handle, examples).")
    example = maps[example_id] if example_id is not None else maps[next(iter(maps))]
    layer = example.layers[0] if layer is None else layer
    head = example.heads[0] if head is None else head
    weights = example.map(layer, head)  # checks both are collected
    # Raw text: bokeh draws axis labels on a canvas and escapes "@field" tooltips itself.
    labels = [f"{i}: {token}" for i, token in enumerate(example.tokens["token"].tolist())]
    size = len(labels)
    queries, keys = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    flat = {"query": [labels[i] for i in queries.ravel()], "key": [labels[j] for j in keys.ravel()]}
    source = ColumnDataSource({**flat, "weight": weights.ravel().astype(float)}, name="attention_map")
    # Every collected map, flattened, for the selectors to swap in without a kernel.
    every = {f"{l}-{h}": example.map(l, h).ravel().astype(float).tolist()
             for l in example.layers for h in example.heads}
    store = ColumnDataSource({"names": list(every), "maps": list(every.values())}, name="attention_store")
    mapper = LinearColorMapper(palette=SEQUENTIAL_BLUE, low=0.0, high=1.0)
    pixels = max(300, min(900, 14 * size + 120))
    fig = figure(width=pixels, height=pixels, title=f"{example.example_id}: layer {layer}, head {head}",
                 x_range=labels, y_range=list(reversed(labels)), tools="", toolbar_location=None,
                 x_axis_label="key", y_axis_label="query")
    cells = fig.rect(x="key", y="query", width=1, height=1, source=source, line_color=None,
                     fill_color={"field": "weight", "transform": mapper})
    fig.add_tools(HoverTool(renderers=[cells], tooltips=[("query", "@query"), ("key", "@key"),
                                                         ("weight", "@weight{0.000}")]))
    fig.xaxis.major_label_orientation = np.pi / 2
    fig.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
    layer_select = Select(title="layer", value=str(layer), options=[str(l) for l in example.layers])
    head_select = Select(title="head", value=str(head), options=[str(h) for h in example.heads])
    swap = CustomJS(args=dict(source=source, store=store, layer=layer_select, head=head_select, fig=fig,
                              example=example.example_id), code="""
        const name = layer.value + '-' + head.value;
        const index = store.data.names.indexOf(name);
        if (index < 0) { return; }
        source.data = Object.assign({}, source.data, {weight: store.data.maps[index]});
        fig.title.text = example + ': layer ' + layer.value + ', head ' + head.value;
    """)
    layer_select.js_on_change("value", swap)
    head_select.js_on_change("value", swap)
    return column(row(layer_select, head_select), fig)


def pattern_gallery(classes: pd.DataFrame, maps, *, task: str | None = None, per_class: int = 1,
                    size: int = 170):
    """Typical maps of each attention pattern class (Kovaleva et al. 2019, Figure 1): for every class
    column ``p_<class>`` of :func:`bert_insight.attention_classes`' frame, the ``per_class`` maps
    predicted as that class with the highest probability, among the examples, layers and heads that
    ``maps`` (:func:`bert_insight.attention_maps`' result on the same model) holds. One row per class
    (query down, key across, darker = more attention; the title gives layer, head and probability); a
    class no map fell into gets a placeholder title. Returns a bokeh layout."""
    require_columns(classes, ["example_id", "layer", "head", "class"], what="the classes frame",
                    made_by="bert_insight.attention_classes()")
    classes = select_single(classes, "task", task, what="the classes frame")
    names = [column[2:] for column in classes.columns if column.startswith("p_")]
    if not names:
        raise BertInsightInputError("the classes frame has no p_<class> columns; pass attention_classes()' frame.")
    if not len(maps):
        raise BertInsightInputError("maps holds no examples; pass attention_maps(handle, examples).")
    if per_class < 1:
        raise BertInsightInputError(f"per_class={per_class}: ask for at least one map per class.")
    covered = {example_id: (set(maps[example_id].layers), set(maps[example_id].heads)) for example_id in maps}
    inside = np.array([example_id in covered and layer in covered[example_id][0] and head in covered[example_id][1]
                        for example_id, layer, head in classes[["example_id", "layer", "head"]].itertuples(index=False)],
                       dtype=bool)
    candidates = classes[inside]
    if candidates.empty:
        raise BertInsightInputError("no row of the classes frame is among the maps' examples, layers and heads; "
                                    "collect attention_maps on the examples you classified.")
    mapper = LinearColorMapper(palette=SEQUENTIAL_BLUE, low=0.0, high=1.0)
    rows = []
    for name in names:
        chosen = candidates[candidates["class"] == name].nlargest(per_class, f"p_{name}")
        figures = []
        for example_id, layer, head, probability in chosen[["example_id", "layer", "head", f"p_{name}"]].itertuples(
                index=False):
            weights = maps[example_id].map(int(layer), int(head))
            n = weights.shape[0]
            fig = figure(width=size, height=size + 30, title=f"{name}: L{layer} H{head} ({probability:.2f})",
                         tools="", toolbar_location=None, x_range=(0, n), y_range=(n, 0))
            fig.title.text_font_size = "9pt"
            # Row 0 (the first query) at the top: image rows draw upward from y, so flip them.
            fig.image(image=[weights[::-1]], x=0, y=n, dw=n, dh=n, color_mapper=mapper, name=f"{name}-{example_id}")
            fig.axis.visible = False
            fig.grid.visible = False
            figures.append(fig)
        if not figures:
            empty = figure(width=size, height=size + 30, title=f"{name}: no map", tools="", toolbar_location=None)
            empty.axis.visible = False
            empty.grid.visible = False
            figures.append(empty)
        rows.append(row(*figures))
    return column(*rows)
