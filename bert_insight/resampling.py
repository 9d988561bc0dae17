"""Paired bootstrap of a metric difference over examples (significance for ablations and comparisons).

Two systems scored on the same examples: resample the examples with replacement, score both on every
resample, and read the distribution of the difference. Metrics are computed vectorised over resamples
(percent, as the library reports them): ``mean`` of per-example scores (accuracy from 0/1 correctness,
SQuAD exact match and F1), ``f1`` of the positive class from (gold, predicted) labels, ``pearson`` and
``spearman`` from (gold, predicted) scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BertInsightInputError

METRIC_KINDS = ("mean", "f1", "pearson", "spearman")


@dataclass(frozen=True)
class BootstrapResult:
    """``delta`` = metric(b) - metric(a) on all examples; ``ci_low``/``ci_high`` the percentile interval
    of the resampled deltas; ``p_value`` two-sided, for "the difference is zero"."""

    delta: float
    ci_low: float
    ci_high: float
    p_value: float


def resample_indices(n_examples: int, *, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_examples) example indices drawn with replacement; share one draw across every
    comparison of a study so their intervals come from the same resamples."""
    if n_examples < 2:
        raise BertInsightInputError(f"A bootstrap needs at least 2 examples (got {n_examples}).")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 100:
        raise BertInsightInputError(f"n_resamples={n_resamples!r}; pass a whole number of at least 100 (1000 is usual).")
    return np.random.default_rng(seed).integers(0, n_examples, size=(n_resamples, n_examples))


def _correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (x * y).sum(axis=-1) / denominator
    return np.where(denominator > 0, value, 0.0)  # constant predictions: 0, as score_predictions says


def metric_values(kind: str, scores: np.ndarray, gold: np.ndarray | None, indices: np.ndarray) -> np.ndarray:
    """The metric (percent) on each resample: ``indices`` (R, n) into ``scores`` (per-example scores for
    "mean", predicted labels for "f1", predicted values for the correlations) and ``gold``."""
    if kind not in METRIC_KINDS:
        raise BertInsightInputError(f"Unknown metric kind {kind!r}; use one of {', '.join(METRIC_KINDS)}.")
    picked = np.asarray(scores, dtype=float)[indices]
    if kind == "mean":
        return 100.0 * picked.mean(axis=-1)
    if gold is None:
        raise BertInsightInputError(f"The {kind} metric needs the gold labels or scores.")
    truth = np.asarray(gold, dtype=float)[indices]
    if kind == "f1":
        true_positive = ((picked == 1) & (truth == 1)).sum(axis=-1)
        wrong = ((picked == 1) != (truth == 1)).sum(axis=-1)  # false positives + false negatives
        denominator = 2 * true_positive + wrong
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, 100.0 * 2 * true_positive / denominator, 0.0)
    if kind == "spearman":
        from scipy.stats import rankdata

        picked, truth = rankdata(picked, axis=-1), rankdata(truth, axis=-1)
    return 100.0 * _correlation(picked, truth)


def paired_bootstrap(kind: str, scores_a: np.ndarray, scores_b: np.ndarray, gold: np.ndarray | None,
                     indices: np.ndarray, *, confidence: float = 0.95) -> BootstrapResult:
    """Paired bootstrap of metric(b) - metric(a) over the same resampled examples.

    The p-value is the share of resampled deltas at least as far from the observed delta as the observed
    delta is from zero (the shifted-null test of Efron & Tibshirani 1993, ch. 16; as in Berg-Kirkpatrick
    et al. 2012), with the usual +1 correction so it is never 0.
    """
    everything = np.arange(len(scores_a))[None, :]
    delta = float(metric_values(kind, scores_b, gold, everything)[0] - metric_values(kind, scores_a, gold, everything)[0])
    resampled = metric_values(kind, scores_b, gold, indices) - metric_values(kind, scores_a, gold, indices)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(resampled, [tail, 1.0 - tail])
    if delta == 0.0 and not resampled.any():
        p_value = 1.0
    else:
        extreme = np.abs(resampled - delta) >= abs(delta) - 1e-12
        p_value = float((extreme.sum() + 1) / (len(resampled) + 1))
    return BootstrapResult(delta=delta, ci_low=float(low), ci_high=float(high), p_value=min(1.0, p_value))
