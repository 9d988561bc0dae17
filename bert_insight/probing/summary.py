"""Tenney et al. 2019's summary statistics of a task's layers (section 3).

- center of gravity of the mixing weights s (eq. 2): sum_l l * s_l;
- differential scores Delta(l) = F1(P^(l)) - F1(P^(l-1)) of the cumulative probes (eq. 3), l = 1..L;
- expected layer (eq. 4): sum_{l>=1} l * Delta(l) / sum_{l>=1} Delta(l), a pseudo-expectation: a
  negative Delta (a layer that distracts the probe) enters with its sign, so the value can leave
  [1, L]; when the Deltas sum to zero or less (no layer above 0 helps in total) it is undefined and
  is NaN, never a division by zero;
- KL(p || uniform) for s over layers 0..L and for Delta over 1..L (footnote 5: higher = more
  concentrated). Delta is not a distribution: its negative parts are set to 0 and the rest normalised
  (the paper's Figure 2 plots Delta "normalized"; it does not say how negatives were handled).
"""

from __future__ import annotations

import numpy as np

from ..errors import BertInsightInputError


def _vector(values, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or len(array) == 0:
        raise BertInsightInputError(f"{what} must be a non-empty 1-d sequence, one value per layer.")
    if not np.isfinite(array).all():
        raise BertInsightInputError(f"{what} holds NaN or infinite values: {array.tolist()}.")
    return array


def center_of_gravity(weights) -> float:
    """Eq. 2: sum_l l * s_l for mixing weights s over layers 0..L (they must sum to 1)."""
    s = _vector(weights, "weights")
    if (s < 0).any() or not np.isclose(s.sum(), 1.0, atol=1e-6):
        raise BertInsightInputError(f"mixing weights must be non-negative and sum to 1 (got sum {s.sum():.6f}).")
    return float(np.arange(len(s)) @ s)


def differential_scores(cumulative_scores) -> np.ndarray:
    """Eq. 3: Delta(l) = score(P^(l)) - score(P^(l-1)) for l = 1..L, from the L+1 cumulative scores."""
    scores = _vector(cumulative_scores, "cumulative_scores")
    if len(scores) < 2:
        raise BertInsightInputError("cumulative_scores needs layers 0..L with L >= 1 (two scores or more).")
    return np.diff(scores)


def expected_layer(cumulative_scores) -> float:
    """Eq. 4 over l >= 1 from the cumulative scores of layers 0..L; NaN when sum Delta <= 0."""
    delta = differential_scores(cumulative_scores)
    total = delta.sum()
    if total <= 1e-12:
        return float("nan")
    return float(np.arange(1, len(delta) + 1) @ delta / total)


def kl_to_uniform(values) -> float:
    """KL(p || uniform) in nats, p = ``values`` with negatives set to 0, normalised; NaN if nothing is left."""
    p = np.clip(_vector(values, "values"), 0, None)
    if p.sum() <= 1e-12:
        return float("nan")
    p = p / p.sum()
    inside = p > 0
    return float((p[inside] * np.log(p[inside] * len(p))).sum())
