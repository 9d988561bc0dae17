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
