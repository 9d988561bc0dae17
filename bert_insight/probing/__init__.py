"""Edge probing (Tenney et al. 2019): probes on a frozen encoder's cached hidden states.

``edge_probe(handle, task)`` runs the paper's analysis of one task (single-layer, cumulative and
scalar-mix probes trained together; center of gravity, expected layer); ``EdgeProbe`` is one probe as
a scikit-learn style estimator on ``encode_targets(handle, task)``; ``probe_traces`` gives Figure 3's
per-layer predictions for hard targets. Tasks come from ``bert_insight.data.edge_tasks``.
"""

from .edge import EdgeProbeResult, edge_probe, probe_traces
from .encode import EncodedTargets, encode_targets
from .estimator import EdgeProbe
from .summary import center_of_gravity, differential_scores, expected_layer, kl_to_uniform
from .train import macro_f1, micro_f1

__all__ = ["EdgeProbe", "EdgeProbeResult", "EncodedTargets", "center_of_gravity", "differential_scores",
           "edge_probe", "encode_targets", "expected_layer", "kl_to_uniform", "macro_f1", "micro_f1", "probe_traces"]
