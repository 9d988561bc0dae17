"""Bokeh views built from bert_insight's tidy frames (never from a model).

Every view returns a bokeh layout: interactive in a live kernel (sliders, hover) through bokeh's own
JavaScript, and a self-contained static HTML output under papermill / nbconvert. Show one with
:func:`show`, which embeds BokehJS inline (no CDN) the first time.

    from bert_insight import viz
    viz.show(viz.passage_view(attributions, tokens=tokens, example_id=eid, top_k=5))

Views: jsd_heatmaps, passage_view, layer_curves, token_scatter, qa_roles_view, head_grid (any per-head
statistic), attention_view (one example's maps),
pattern_gallery (typical maps per attention pattern class), probe_trace_view (edge
probes' per-layer predictions of one target), token_heatmap (every token's signed score per layer:
DeepLIFT Figures 1-12), output_view (start / end probabilities: Figure 13), phase_view /
failure_view / phase_curve_view (van Aken et al. 2019's transformation phases: token maps coloured by
phase role with a layer slider, a right and a wrong prediction side by side, the measured phases over
layers; docs/phases.md), probing_heatmap (van Aken et al.'s Figure 6) (see docs/widgets.md);
ramnath2020_comparison puts the paper's reported trends next to ours in a frame; ramnath2020_by_depth
puts a BERT-base measurement of the same shares next to ours, per third of the depth.
"""

from __future__ import annotations

from ._common import DIVERGING, ROLE_COLORS, SEQUENTIAL, show, signed_color_mapper, signed_colors
from .attention import attention_view, head_grid, pattern_gallery
from .attribution import jsd_heatmaps, layer_curves, passage_view, passage_word_scores
# The comparison tables live with the analysis; re-exported here, where the notebook has used them.
from ..attribution.ramnath2020 import (
    MLRC2020_BERT_BASE_SQUAD,
    RAMNATH2020_PAPER,
    RAMNATH2020_TRENDS,
    ramnath2020_by_depth,
    ramnath2020_comparison,
)
from .deeplift import output_view, token_heatmap
from .phases import PHASE_ROLE_COLORS, failure_view, phase_curve_view, phase_view
from .probing import probe_trace_view, probing_heatmap
from .tokens import qa_roles_view, token_scatter

__all__ = [
    "attention_view",
    "token_heatmap",
    "output_view",
    "head_grid",
    "pattern_gallery",
    "probe_trace_view",
    "probing_heatmap",
    "phase_view",
    "failure_view",
    "phase_curve_view",
    "PHASE_ROLE_COLORS",
    "DIVERGING",
    "ROLE_COLORS",
    "SEQUENTIAL",
    "jsd_heatmaps",
    "layer_curves",
    "passage_view",
    "passage_word_scores",
    "MLRC2020_BERT_BASE_SQUAD",
    "RAMNATH2020_PAPER",
    "RAMNATH2020_TRENDS",
    "qa_roles_view",
    "ramnath2020_by_depth",
    "ramnath2020_comparison",
    "show",
    "signed_color_mapper",
    "signed_colors",
    "token_scatter",
]
