"""Views of edge-probing results: per-layer predictions of one target (Tenney et al. 2019, Figure 3) and
the normalised ability heatmap (van Aken et al. 2019, Figure 6)."""

from __future__ import annotations

import pandas as pd
from bokeh.layouts import column, row
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
from bokeh.plotting import figure

from ..errors import BertInsightInputError
from ..frames import require_columns
from ._common import SEQUENTIAL_BLUE, escape


#: Bar colours as in the paper's Figure 3: blue = the correct label, orange = the strongest wrong one.
GOLD_COLOR, WRONG_COLOR = "#1f77b4", "#ff7f0e"


def probe_trace_view(traces: pd.DataFrame, *, target_id: str | None = None, top_k: int = 4, width: int = 420):
    """Per-layer bars of :func:`bert_insight.probe_traces`' probabilities: for each target, its correct
    label(s) (blue) and the strongest wrong label (orange) at every layer, as in Figure 3.

    ``target_id``: one target; None = the first ``top_k`` targets of the frame (in its order). The title
    names the task, the span text(s) and the labels. Returns a bokeh column of figures (hover shows
    layer, label and probability).
    """
    require_columns(traces, ["target_id", "layer", "label", "is_gold", "probability", "span1_text", "span2_text"],
                    what="the traces frame", made_by="bert_insight.probe_traces()")
    if traces.empty:
        raise BertInsightInputError("the traces frame is empty: no target had a best label with mean probability at "
                                    "or below max_mean_prob; raise max_mean_prob in probe_traces().")
    chosen = [target_id] if target_id is not None else list(pd.unique(traces["target_id"]))[:top_k]
    missing = [t for t in chosen if t not in set(traces["target_id"])]
    if missing:
        raise BertInsightInputError(f"target_id {missing[0]!r} is not in the traces frame; pick one of its target_id "
                                    "values.")
    figures = []
    for target in chosen:
        rows = traces[traces["target_id"] == target].sort_values(["layer", "is_gold"], ascending=[True, False])
        labels = list(pd.unique(rows.sort_values("is_gold", ascending=False)["label"]))
        offsets = {label: (k - (len(labels) - 1) / 2) * 0.8 / max(len(labels), 1) for k, label in enumerate(labels)}
        source = ColumnDataSource({
            "x": rows["layer"].to_numpy() + rows["label"].map(offsets).to_numpy(),
            "layer": rows["layer"].to_numpy(), "label": rows["label"].astype(str).to_numpy(),
            "probability": rows["probability"].to_numpy(),
            "color": [GOLD_COLOR if gold else WRONG_COLOR for gold in rows["is_gold"]]}, name=f"trace-{target}")
        first = rows.iloc[0]
        spans = first["span1_text"] + (f" / {first['span2_text']}" if first["span2_text"] else "")
        gold = ", ".join(rows.loc[rows["is_gold"], "label"].unique()) or "(none)"
        wrong = ", ".join(rows.loc[~rows["is_gold"], "label"].unique()) or "(none)"
        title = f"{first.get('task', '')}: {spans} | correct {gold}, strongest wrong {wrong}"
        fig = figure(width=width, height=220, title=title[:120], x_axis_label="layer", y_axis_label="probability",
                     y_range=(0, 1.05), tools="", toolbar_location=None)
        bars = fig.vbar(x="x", top="probability", width=0.8 / max(len(labels), 1), color="color", source=source)
        fig.add_tools(HoverTool(renderers=[bars], tooltips=[("layer", "@layer"), ("label", "@label"),
                                                            ("probability", "@probability{0.000}")]))
        fig.xaxis.ticker = sorted(int(layer) for layer in rows["layer"].unique())
        figures.append(fig)
    return column(*figures)


__all__ = ["probe_trace_view"]


def probing_heatmap(heat: pd.DataFrame, *, value: str = "normalised", width: int = 380):
    """van Aken et al.'s Figure 6 from :func:`bert_insight.ability_heatmap`: one heatmap per model, tasks
    by layers, darker = stronger (``value="normalised"``: each task's row scaled to its own range, so the
    colour says where that ability peaks; ``"value"``: the F1 itself). Hover shows task, layer, F1 and the
    normalised value. Returns a bokeh ``row``.
    """
    require_columns(heat, ("model", "task", "layer", "value", "normalised"), what="heat",
                    made_by="bert_insight.ability_heatmap")
    if value not in ("normalised", "value"):
        raise BertInsightInputError(f"value={value!r}; use 'normalised' or 'value'.")
    if heat.empty:
        raise BertInsightInputError("heat is empty; pass the frame of bert_insight.ability_heatmap(scores).")
    tasks = [escape(task) for task in dict.fromkeys(heat["task"].astype(str))]
    layers = sorted(heat["layer"].unique())
    high = 1.0 if value == "normalised" else float(heat["value"].max())
    low = 0.0 if value == "normalised" else float(heat["value"].min())
    mapper = LinearColorMapper(palette=SEQUENTIAL_BLUE, low=low, high=high if high > low else low + 1,
                               nan_color="#eeeeee")
    figures = []
    for model, part in heat.groupby("model", sort=False):
        data = {"task": [escape(task) for task in part["task"].astype(str)], "layer": part["layer"].to_numpy(),
                "value": part["value"].to_numpy(), "normalised": part["normalised"].to_numpy()}
        fig = figure(width=width, height=60 + 32 * len(tasks), title=escape(f"{model}: {value} macro F1"),
                     y_range=list(reversed(tasks)), x_range=(layers[0] - 0.5, layers[-1] + 0.5),
                     x_axis_label="layer", tools="", toolbar_location=None)
        cells = fig.rect(x="layer", y="task", width=1, height=1, source=ColumnDataSource(data),
                         fill_color={"field": value, "transform": mapper}, line_color="white")
        fig.add_tools(HoverTool(renderers=[cells], tooltips=[("task", "@task"), ("layer", "@layer"),
                                                             ("F1", "@value{0.0}"), ("normalised", "@normalised{0.00}")]))
        fig.xaxis.ticker = layers
        fig.grid.visible = False
        figures.append(fig)
    figures[-1].add_layout(ColorBar(color_mapper=mapper, width=10), "right")
    return row(*figures)
