"""GLUE metrics of many models at once under example weights: the engine of every bootstrap.

A bootstrap resample of n examples is a vector of counts w (how often each example was drawn);
the metric of the resampled data is the metric of the data with those weights. Every metric of
`headlab.analysis.metrics` is written here for a weight matrix W (resamples, n) and the
predictions of K models (K, n) against one gold vector, as matrix products (accuracy, F1,
Matthews, Pearson) or weighted ranks (Spearman), so B resamples of K masks cost a few matrix
products instead of B x K metric calls. With W = ones the result equals
`headlab.analysis.metrics` (tested), and with the counts of a resample it equals the metric of
the explicitly resampled data (tested, ties included).

`bootstrap_weights` draws the counts (seeded; optionally only over a subset of the examples).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def bootstrap_weights(
    rng: np.random.Generator, n_resamples: int, n_examples: int, among: np.ndarray | None = None
) -> np.ndarray:
    """Counts (n_resamples, n_examples) of a bootstrap over all examples, or only over the
    indices `among` (the other examples get weight 0)."""
    pool = np.arange(n_examples) if among is None else np.asarray(among)
    drawn = rng.integers(0, pool.size, size=(n_resamples, pool.size))  # (B, |pool|)
    flat = (np.arange(n_resamples)[:, None] * n_examples + pool[drawn]).reshape(-1)  # (B * |pool|,)
    counts = np.bincount(flat, minlength=n_resamples * n_examples)
    return counts.reshape(n_resamples, n_examples).astype(np.float64)


def _weighted_sums(weights: np.ndarray, indicator: np.ndarray) -> np.ndarray:
    """(B, n) @ (K, n)^T -> (B, K): the weighted count of each model's indicator."""
    return weights @ indicator.T.astype(np.float64)


def accuracy(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) accuracy of K models' class indices `pred` (K, n) under weights (B, n)."""
    correct = pred == gold[None, :]  # (K, n)
    return _weighted_sums(weights, correct) / weights.sum(axis=1, keepdims=True)


def f1(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray, positive: int = 1) -> np.ndarray:
    """(B, K) F1 of class `positive`; 0 where there is no true positive (as metrics.f1_binary)."""
    predicted, actual = pred == positive, (gold == positive)[None, :]  # (K, n), (1, n)
    tp = _weighted_sums(weights, predicted & actual)
    fp = _weighted_sums(weights, predicted & ~actual)
    fn = _weighted_sums(weights, ~predicted & actual)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = 2 * tp / (2 * tp + fp + fn)
    return np.where(tp > 0, score, 0.0)


def matthews(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) Matthews correlation (multiclass R_K form); 0 where undefined (as metrics.matthews)."""
    classes = np.unique(np.concatenate([gold, pred.reshape(-1)]))
    # confusion[b, k, g, p]: weighted count of gold class g predicted as p
    confusion = np.stack(
        [
            np.stack([_weighted_sums(weights, (pred == p) & (gold == g)[None, :]) for p in classes], axis=-1)
            for g in classes
        ],
        axis=-2,
    )  # (B, K, classes, classes)
    t = confusion.sum(axis=-1)  # (B, K, classes): gold totals
    q = confusion.sum(axis=-2)  # (B, K, classes): predicted totals
    c = np.trace(confusion, axis1=-2, axis2=-1)  # (B, K)
    s = confusion.sum(axis=(-2, -1))  # (B, K)
    denominator = (s * s - (q * q).sum(-1)) * (s * s - (t * t).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        score = (c * s - (t * q).sum(-1)) / np.sqrt(denominator)
    return np.where(denominator > 0, score, 0.0)


def _pearson_of_sums(
    total: np.ndarray, sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, syy: np.ndarray, sxy: np.ndarray
) -> np.ndarray:
    """Pearson's r from weighted sums; NaN where either side has no variance (as metrics.pearson)."""
    vx = total * sxx - sx * sx
    vy = total * syy - sy * sy
    scale = np.maximum(np.abs(total * sxx), 1.0) * 1e-12  # relative tolerance for "no variance"
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (total * sxy - sx * sy) / np.sqrt(vx * vy)
    defined = (vx > scale) & (vy > np.maximum(np.abs(total * syy), 1.0) * 1e-12)
    return np.where(defined, np.clip(r, -1.0, 1.0), np.nan)


def pearson(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) weighted Pearson's r of K models' outputs (K, n) with gold (n,)."""
    x, y = pred.astype(np.float64), gold.astype(np.float64)
    total = weights.sum(axis=1, keepdims=True)  # (B, 1)
    sy, syy = weights @ y[:, None], weights @ (y * y)[:, None]  # (B, 1)
    return _pearson_of_sums(total, weights @ x.T, sy, weights @ (x * x).T, syy, weights @ (x * y[None]).T)


def weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, n) average ranks (1-based, ties averaged) of `values` (n,) in each weighted sample:
    the rank an example's copies would get in the explicitly resampled data."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    group = np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])])  # (n,) tie group ids
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))  # (groups,)
    w = weights[:, order]  # (B, n)
    totals = np.add.reduceat(w, starts, axis=1)  # (B, groups): weight of each tie group
    before = np.cumsum(totals, axis=1) - totals  # (B, groups): weight strictly below
    rank_of_group = before + (totals + 1.0) / 2.0  # (B, groups)
    ranks = np.empty_like(w)
    ranks[:, order] = rank_of_group[:, group]
    return ranks


def spearman(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) weighted Spearman's rho: Pearson's r of the weighted average ranks."""
    gold_ranks = weighted_ranks(gold.astype(np.float64), weights)  # (B, n)
    total = weights.sum(axis=1)  # (B,)
    sy = (weights * gold_ranks).sum(1)
    syy = (weights * gold_ranks**2).sum(1)
    result = np.empty((weights.shape[0], pred.shape[0]))
    for k in range(pred.shape[0]):
        ranks = weighted_ranks(pred[k].astype(np.float64), weights)  # (B, n)
        weighted = weights * ranks
        result[:, k] = _pearson_of_sums(
            total, weighted.sum(1), sy, (weighted * ranks).sum(1), syy, (weighted * gold_ranks).sum(1)
        )
    return result


WEIGHTED_METRICS: dict[str, WeightedMetric] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews": matthews,
    "pearson": pearson,
    "spearman": spearman,
}


def weighted_metric(name: str, weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) metric `name` of K models' predictions (K, n) under the weights (B, n)."""
    if name not in WEIGHTED_METRICS:
        raise ValueError(f"no weighted form of metric {name!r}; known: {sorted(WEIGHTED_METRICS)}")
    return WEIGHTED_METRICS[name](np.atleast_2d(weights), np.atleast_2d(pred), np.asarray(gold))
