"""Shared pieces of the views: palettes, colour scales, HTML escaping, input checks, showing."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
from bokeh.models import LinearColorMapper
from bokeh.palettes import Blues9, Category10, PiYG10, YlOrRd9

from ..errors import BertInsightInputError

#: Signed scores: index 0 is the most negative colour (magenta), the last the most positive (green) --
#: green "for the answer", as in captum's text views. An even number of colours puts 0 exactly on the
#: boundary between the halves, so every negative value gets a magenta shade (0 itself the palest green).
DIVERGING: tuple[str, ...] = tuple(reversed(PiYG10))
#: Importances (non-negative): light yellow (0) to red (largest); the darkest reds are left out so black
#: or white text stays readable on every shade.
SEQUENTIAL: tuple[str, ...] = tuple(reversed(YlOrRd9))[:7]
#: JSD and other non-negative matrices: light to dark blue.
SEQUENTIAL_BLUE: tuple[str, ...] = tuple(reversed(Blues9))

#: One colour per token role / segment, fixed so every view agrees.
ROLE_COLORS: dict[str, str] = {
    "answer": "#d62728",
    "supporting": "#ff7f0e",
    "question_word": "#2ca02c",
    "other": "#7f7f7f",
    "question": "#1f77b4",
    "context": "#7f7f7f",
    "special": "#bcbd22",
}


def escape(text: object) -> str:
    """HTML-escape token text (quotes too, since it also lands inside attributes)."""
    return html.escape(str(text), quote=True)


def column_pair(frame: pd.DataFrame, candidates: tuple[tuple[str, str], ...], *, what: str,
                made_by: str) -> tuple[str, str]:
    """The first pair of ``candidates`` whose two columns ``frame`` has; else one error naming them all."""
    for pair in candidates:
        if set(pair) <= set(frame.columns):
            return pair
    raise BertInsightInputError(
        f"the {what} frame has no pair of columns among {list(candidates)}; it has {list(frame.columns)}. "
        f"Pass the frame made by {made_by}."
    )


def select_single(frame: pd.DataFrame, column: str, value: object, *, what: str) -> pd.DataFrame:
    """Rows where ``column == value``; with value None the column must hold one value only."""
    if column not in frame.columns:
        return frame
    present = list(pd.unique(frame[column]))
    if value is None:
        if len(present) > 1:
            raise BertInsightInputError(
                f"{what} holds several {column} values {present}; pass {column}= one of them."
            )
        return frame
    selected = frame[frame[column] == value]
    if selected.empty:
        raise BertInsightInputError(f"{what} has no rows with {column}={value!r}; it has {present}.")
    return selected


def signed_color_mapper(values: Sequence[float] | np.ndarray) -> LinearColorMapper:
    """A diverging colour mapper centred at 0: symmetric limits +-max|value|."""
    limit = _symmetric_limit(values)
    return LinearColorMapper(palette=DIVERGING, low=-limit, high=limit)


def signed_colors(values: Sequence[float] | np.ndarray) -> list[str]:
    """Diverging colours for signed values, centred at 0 (negative -> first half of DIVERGING)."""
    values = np.asarray(values, dtype=float)
    limit = _symmetric_limit(values)
    return _bin(values, -limit, limit, DIVERGING)


def sequential_colors(values: Sequence[float] | np.ndarray, *, high: float | None = None) -> list[str]:
    """Sequential colours for non-negative values, 0 -> lightest, ``high`` (default: max) -> darkest."""
    values = np.asarray(values, dtype=float)
    top = float(np.nanmax(values)) if high is None and values.size else float(high or 0.0)
    return _bin(values, 0.0, top if top > 0 else 1.0, SEQUENTIAL)


def readable_text_color(background: str) -> str:
    """Black or white, whichever reads better on ``background`` (#rrggbb)."""
    red, green, blue = (int(background[i : i + 2], 16) for i in (1, 3, 5))
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    return "#000000" if luminance > 140 else "#ffffff"


def _symmetric_limit(values) -> float:
    values = np.asarray(values, dtype=float)
    limit = float(np.nanmax(np.abs(values))) if values.size else 0.0
    return limit if limit > 0 else 1.0


def _bin(values: np.ndarray, low: float, high: float, palette: Sequence[str]) -> list[str]:
    # Same binning as bokeh's LinearColorMapper, so Python-made HTML and bokeh glyphs agree.
    n = len(palette)
    position = (values - low) / (high - low)
    index = np.clip(np.floor(position * n), 0, n - 1).astype(int)
    return [palette[i] for i in index]


def categorical_colors(categories: Sequence[str]) -> dict[str, str]:
    """A colour per category: the fixed role colours where they apply, Category10 otherwise."""
    spare = iter(c for c in Category10[10] if c not in ROLE_COLORS.values())
    fallback = list(Category10[10])
    colors: dict[str, str] = {}
    for i, category in enumerate(categories):
        colors[category] = ROLE_COLORS.get(str(category)) or next(spare, fallback[i % 10])
    return colors


_notebook_ready = False


def show(obj) -> None:
    """Show a view in the notebook with BokehJS embedded inline (no CDN), so the saved notebook and its
    HTML export render offline and without a kernel."""
    global _notebook_ready
    from bokeh.io import output_notebook
    from bokeh.io import show as bokeh_show
    from bokeh.resources import INLINE

    if not _notebook_ready:
        output_notebook(resources=INLINE, hide_banner=True)
        _notebook_ready = True
    bokeh_show(obj)
