"""Views of the transformation phases (van Aken et al. 2019): one example's token map per layer coloured
as the paper's Figures 4-9 (phase_view), a right and a wrong prediction side by side (failure_view,
Figure 8), and the measured phases over layers (phase_curve_view)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from bokeh.layouts import column, gridplot, row
from bokeh.models import ColumnDataSource, CustomJS, Div, HoverTool, Slider, Span
from bokeh.plotting import figure

from ..errors import BertInsightInputError
from ..frames import require_columns
from ._common import categorical_colors, escape, select_single

PROJECTION_MADE_BY = "bert_insight.token_projection"
COLOR_BY = ("phase_role", "sentence_index", "cluster")
#: The paper's Figure 4: answer red diamond, question orange star, supporting fact dark cyan, the rest grey.
PHASE_ROLE_COLORS: dict[str, str] = {
    "prediction": "#d62728",
    "question": "#ff7f0e",
    "supporting_fact": "#008b8b",
    "other": "#a0a0a0",
    "special": "#bcbd22",
}
PHASE_ROLE_MARKERS: dict[str, str] = {
    "prediction": "diamond",
    "question": "star",
    "supporting_fact": "circle",
    "other": "circle",
    "special": "square",
}
_SIZES = {"prediction": 14, "question": 13}
#: Measures' titles and the level that means "no effect" (drawn as a dashed line).
_MEASURE_INFO = {
    "role_silhouette": ("roles' silhouette (higher: roles apart)", 0.0),
    "answer_separation": ("answer separation (phase 4; higher: answer apart)", None),
    "question_fact_ratio": ("question-fact ratio (phase 3; below 1: question on its fact)", 1.0),
    "sentence_purity": ("sentence purity (dashed: chance)", None),
    "same_word_ratio": ("same-word ratio (phase 1; below 1: word types together)", 1.0),
}


def _check_color_by(color_by: str) -> None:
    if color_by not in COLOR_BY:
        raise BertInsightInputError(f"color_by={color_by!r}; use one of {COLOR_BY}.")


def _with_clusters(projection: pd.DataFrame, clusters: pd.DataFrame | None, color_by: str) -> pd.DataFrame:
    """The projection with a ``cluster`` column: its own, or joined from token_clusters' frame."""
    if color_by != "cluster" or "cluster" in projection.columns:
        return projection
    if clusters is None:
        raise BertInsightInputError("color_by='cluster' needs a cluster column: pass clusters= the frame of "
                                    "bert_insight.token_clusters for the same vectors (same fit and layers).")
    keys = ["example_id", "layer", "token_index"]
    require_columns(clusters, keys + ["cluster"], what="clusters", made_by="bert_insight.token_clusters")
    joined = projection.merge(clusters[keys + ["cluster"]], on=keys, how="left")
    if joined["cluster"].isna().any():
        raise BertInsightInputError("clusters has no row for some tokens of the projection; make both from the same "
                                    "vectors, layers and drop_first_token.")
    joined["cluster"] = joined["cluster"].astype(int)
    return joined


def _example_frame(projection: pd.DataFrame, example_id: str | None, color_by: str,
                   clusters: pd.DataFrame | None) -> pd.DataFrame:
    require_columns(projection, ["example_id", "layer", "token_index", "token", "x", "y"], what="projection",
                    made_by=PROJECTION_MADE_BY)
    _check_color_by(color_by)
    if example_id is None:
        frame = select_single(projection, "example_id", None, what="projection")
    else:
        frame = projection[projection["example_id"].astype(str) == str(example_id)]
    if frame.empty:
        raise BertInsightInputError(f"projection has no rows for example {example_id!r}; it has "
                                    f"{list(pd.unique(projection['example_id']))[:5]}.")
    frame = _with_clusters(frame, clusters, color_by)
    if color_by not in frame.columns:
        raise BertInsightInputError(f"projection has no {color_by!r} column: run bert_insight.phase_roles(vectors, "
                                    "sentences=...) before token_projection.")
    return frame


def _category_colors(frame: pd.DataFrame, color_by: str) -> dict[str, str]:
    values = frame[color_by]
    if color_by == "phase_role":
        categories = [role for role in PHASE_ROLE_COLORS if role in set(values.astype(str))]
        extra = sorted(set(values.astype(str)) - set(categories))
        return {**{role: PHASE_ROLE_COLORS[role] for role in categories}, **categorical_colors(extra)}
    ordered = [str(v) for v in sorted(pd.unique(values))]
    colors = dict(zip(ordered, _palette(len(ordered))))
    if "-1" in colors:  # sentence_index -1: question and special tokens
        colors["-1"] = "#d0d0d0"
    return colors


def _palette(n: int) -> list[str]:
    from bokeh.palettes import Category10, Category20, Turbo256

    if n <= 10:
        return list(Category10[10])[:n]
    if n <= 20:
        return list(Category20[20])[:n]
    return [Turbo256[int(i)] for i in np.linspace(0, 255, n)]


def _layer_data(frame: pd.DataFrame, color_by: str, colors: dict[str, str]) -> dict[int, dict[str, list]]:
    """Per layer: the columns of the scatter's source (token text raw: bokeh's canvas and its hover
    tooltips render it as text, escaping it themselves)."""
    roles = frame["phase_role"].astype(str) if "phase_role" in frame else pd.Series("other", index=frame.index)
    category = frame[color_by].astype(str)
    data = pd.DataFrame({
        "layer": frame["layer"].astype(int).to_numpy(),
        "x": frame["x"].to_numpy(dtype=float),
        "y": frame["y"].to_numpy(dtype=float),
        "token": frame["token"].astype(str).to_numpy(),
        "token_index": frame["token_index"].astype(int).to_numpy(),
        "phase_role": roles.to_numpy(),
        "sentence": (frame["sentence_index"].astype(int).to_numpy() if "sentence_index" in frame
                     else np.full(len(frame), -1)),
        "category": category.to_numpy(),
        "color": category.map(colors).to_numpy(),
        "marker": roles.map(PHASE_ROLE_MARKERS).fillna("circle").to_numpy(),
        "size": roles.map(_SIZES).fillna(8).astype(float).to_numpy(),
    })
    return {int(layer): {name: values.tolist() for name, values in rows.drop(columns="layer").items()}
            for layer, rows in data.sort_values("token_index").groupby("layer")}


def _legend_html(colors: dict[str, str], color_by: str) -> str:
    items = []
    for category, color in colors.items():
        marker = {"prediction": "&#9670;", "question": "&#9733;"}.get(category, "&#9679;") \
            if color_by == "phase_role" else "&#9679;"
        items.append(f'<span style="color:{color};font-size:16px">{marker}</span> {escape(category)}')
    return f"{escape(color_by)}: " + " &nbsp; ".join(items)


def _scatter(title: str, data: dict[str, list], color_by: str, name: str):
    source = ColumnDataSource(data, name=name)
    fig = figure(width=520, height=440, title=title, tools="pan,wheel_zoom,box_zoom,reset,save",
                 x_axis_label="x", y_axis_label="y")
    points = fig.scatter("x", "y", source=source, marker="marker", size="size", color="color", alpha=0.85,
                         line_color="#333333", line_width=0.4)
    fig.add_tools(HoverTool(renderers=[points], tooltips=[("token", "@token"), ("role", "@phase_role"),
                                                          (color_by, "@category"), ("sentence", "@sentence"),
                                                          ("token_index", "@token_index")]))
    return fig, source


def _slider(layers: list[int], value: int, sources: list, payloads: list[dict], titles: list, figures: list):
    slider = Slider(start=layers[0], end=max(layers[-1], layers[0] + 1), value=value, step=1, title="layer",
                    name="layer_slider", disabled=len(layers) == 1)
    # Every layer's points ride along in the page, so the slider works in static HTML (no kernel); swapping
    # the source's data (not filtering it) lets the axes follow each layer's own scale.
    slider.js_on_change("value", CustomJS(
        args=dict(sources=sources, payloads=payloads, figures=figures, titles=titles, layers=layers), code="""
        const layer = String(cb_obj.value);
        for (let i = 0; i < sources.length; i++) {
            const data = payloads[i][layer];
            if (data === undefined) { continue; }
            sources[i].data = Object.assign({}, data);
            figures[i].title.text = titles[i] + " - layer " + layer;
        }
    """))
    return slider


def _initial_layer(layers: list[int], layer: int | None) -> int:
    if layer is None:
        return layers[-1]
    if layer not in layers:
        raise BertInsightInputError(f"layer={layer!r}: the projection holds layers {layers}.")
    return int(layer)


def _method_name(projection: pd.DataFrame) -> str:
    settings = projection.attrs.get("projection")
    method = settings.get("method", "projection") if isinstance(settings, dict) else "projection"
    return {"tsne": "t-SNE", "pca": "PCA", "ica": "ICA"}.get(method, str(method))


def phase_view(projection: pd.DataFrame, *, example_id: str | None = None, color_by: str = "phase_role",
               layer: int | None = None, clusters: pd.DataFrame | None = None):
    """One example's token map (the frame of :func:`bert_insight.token_projection`), one layer at a time.

    ``color_by``: "phase_role" (the paper's Figure 4: prediction red diamond, question orange star,
    supporting fact dark cyan, other grey), "sentence_index" (Figure 9: one colour per context sentence;
    question and special tokens light grey) or "cluster" (k-means: the projection's cluster column, or
    ``clusters=`` the frame of :func:`bert_insight.token_clusters`). Markers always follow phase_role
    when the frame has it. ``layer``: the layer shown first (default the last). Hover shows the token
    (bokeh renders it as text; legend and titles are HTML-escaped). Returns a bokeh ``column``
    (legend, slider named "layer_slider", figure); the scatter's source (name "phase_points") holds the
    shown layer, and every layer's points are embedded for the slider, so it works as static HTML.
    """
    frame = _example_frame(projection, example_id, color_by, clusters)
    colors = _category_colors(frame, color_by)
    payload = _layer_data(frame, color_by, colors)
    layers = sorted(payload)
    shown = _initial_layer(layers, layer)
    eid = str(frame["example_id"].iloc[0])
    title = f"{_method_name(projection)} of {eid}"
    fig, source = _scatter(f"{title} - layer {shown}", payload[shown], color_by, "phase_points")
    slider = _slider(layers, shown, [source], [{str(k): v for k, v in payload.items()}], [title], [fig])
    return column(Div(text=_legend_html(colors, color_by)), slider, fig)


def failure_view(projection: pd.DataFrame, *, right_example_id: str, wrong_example_id: str,
                 layers: str | int | Iterable[int] = "all", color_by: str = "phase_role",
                 layer: int | None = None, clusters: pd.DataFrame | None = None):
    """A correctly and a wrongly answered example side by side, one shared layer slider (the paper's
    Figure 8: in a wrong prediction, which fact was matched with the question, and when).

    ``layers``: "all" (the layers both examples have) or the layer numbers to offer. Other parameters
    as :func:`phase_view`. Returns a bokeh ``column`` (legend, slider, a row of two figures whose
    sources are named "right_points" and "wrong_points").
    """
    _check_color_by(color_by)
    frames = [_example_frame(projection, eid, color_by, clusters) for eid in (right_example_id, wrong_example_id)]
    # One colour table for both, so a colour means the same on either side.
    colors = _category_colors(pd.concat(frames, ignore_index=True), color_by)
    payloads = [_layer_data(frame, color_by, colors) for frame in frames]
    common = sorted(set(payloads[0]) & set(payloads[1]))
    if isinstance(layers, str):
        if layers != "all":
            raise BertInsightInputError(f"layers={layers!r}; pass 'all' or layer numbers.")
        chosen = common
    else:
        chosen = sorted({int(v) for v in ([layers] if isinstance(layers, (int, np.integer)) else layers)})
        absent = [v for v in chosen if v not in common]
        if absent or not chosen:
            raise BertInsightInputError(f"layers={layers!r}: both examples have layers {common} in the projection.")
    if not chosen:
        raise BertInsightInputError("the two examples share no layer in the projection; project them together.")
    shown = _initial_layer(chosen, layer)
    method = _method_name(projection)
    titles = [f"right: {method} of {right_example_id}", f"wrong: {method} of {wrong_example_id}"]
    figures, sources = [], []
    for title, payload, name in zip(titles, payloads, ("right_points", "wrong_points")):
        fig, source = _scatter(f"{title} - layer {shown}", payload[shown], color_by, name)
        figures.append(fig)
        sources.append(source)
    slider = _slider(chosen, shown, sources,
                     [{str(k): v for k, v in payload.items() if k in chosen} for payload in payloads], titles, figures)
    return column(Div(text=_legend_html(colors, color_by)), slider, row(*figures))


def phase_curve_view(curves: pd.DataFrame, *, measures: Iterable[str] | None = None, width: int = 330,
                     height: int = 240):
    """The frame of :func:`bert_insight.phase_curves` drawn as one small figure per measure: the mean over
    examples by layer, its confidence band, and the peak layer marked (a star: highest, or lowest for
    measures whose direction is "lower"). sentence_purity_chance is drawn dashed inside the
    sentence_purity figure; ratios get a dashed line at 1 and the silhouette one at 0 (no effect).
    Returns a bokeh grid (hover shows layer, mean, interval and n)."""
    require_columns(curves, ["measure", "layer", "mean", "ci_low", "ci_high", "n", "peak"], what="curves",
                    made_by="bert_insight.phase_curves")
    present = list(pd.unique(curves["measure"]))
    if measures is None:
        chosen = [m for m in present if m != "sentence_purity_chance"]
    else:
        chosen = [measures] if isinstance(measures, str) else list(measures)
        absent = [m for m in chosen if m not in present]
        if absent or not chosen:
            raise BertInsightInputError(f"measures={measures!r}: curves hold {present}.")
    figures = []
    for measure in chosen:
        rows = curves[curves["measure"] == measure].sort_values("layer")
        label, level = _MEASURE_INFO.get(measure, (measure, None))
        source = ColumnDataSource({name: rows[name].to_numpy() for name in ("layer", "mean", "ci_low", "ci_high", "n")},
                                  name=f"curve-{measure}")
        fig = figure(width=width, height=height, title=label, x_axis_label="layer", tools="save",
                     toolbar_location=None)
        fig.varea(x="layer", y1="ci_low", y2="ci_high", source=source, fill_color="#1f77b4", fill_alpha=0.2)
        fig.line("layer", "mean", source=source, line_width=2, color="#1f77b4")
        means = fig.scatter("layer", "mean", source=source, size=5, color="#1f77b4")
        if measure == "sentence_purity" and "sentence_purity_chance" in present:
            chance = curves[curves["measure"] == "sentence_purity_chance"].sort_values("layer")
            fig.line(chance["layer"].to_numpy(), chance["mean"].to_numpy(), line_dash="dashed", color="#7f7f7f")
        if level is not None:
            fig.add_layout(Span(location=level, dimension="width", line_dash="dashed", line_color="#7f7f7f"))
        peak = rows[rows["peak"].astype(bool)]
        if not peak.empty:
            fig.scatter(peak["layer"].to_numpy(), peak["mean"].to_numpy(), marker="star", size=16, color="#d62728",
                        legend_label=f"peak: layer {int(peak['layer'].iloc[0])}")
            fig.legend.location = "top_left"
            fig.legend.label_text_font_size = "9px"
        fig.add_tools(HoverTool(renderers=[means], tooltips=[
            ("layer", "@layer"), ("mean", "@mean{0.000}"), ("interval", "@ci_low{0.000} to @ci_high{0.000}"),
            ("n", "@n")]))
        fig.xaxis.ticker = sorted(int(v) for v in rows["layer"].unique())
        figures.append(fig)
    return gridplot(figures, ncols=3)


__all__ = ["COLOR_BY", "PHASE_ROLE_COLORS", "failure_view", "phase_curve_view", "phase_view"]
