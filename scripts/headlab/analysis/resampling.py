"""GLUE metrics of many models at once under example weights: the engine of every bootstrap and
permutation test.

A bootstrap resample of n examples is a vector of counts w (how often each example was drawn);
the metric of the resampled data is the metric of the data with those weights. Accuracy, F1,
Matthews and Pearson are functions of weighted sums of per-example *features* (correct; true
positive, false positive, false negative; confusion cells; x, x², xy) and of the gold labels
(the total weight; y, y²): `metric_features` and `gold_features` give those features,
`metric_of_sums` the metric of their sums. So B resamples of K masks cost one matrix product
W (B, n) @ features (n, K·F), and a permutation that swaps two systems' predictions on some
examples is a matrix product too (`headlab.analysis.significance.swap_deltas`). Spearman's rho
needs the ranks of each resample (`weighted_ranks`, `spearman`). With W = ones the result
equals `headlab.analysis.metrics` (tested), and with the counts of a resample it equals the
metric of the explicitly resampled data (tested, ties included).

`bootstrap_weights` draws the counts (seeded; optionally only over a subset of the examples).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# Metrics that are functions of feature sums (the others, Spearman, need ranks per resample).
SUMMABLE = ("accuracy", "f1", "matthews", "pearson")


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


def metric_classes(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """The classes of a Matthews confusion matrix: every value in gold or any prediction."""
    return np.unique(np.concatenate([np.asarray(gold).reshape(-1), np.asarray(pred).reshape(-1)]))


def metric_features(
    name: str, pred: np.ndarray, gold: np.ndarray, classes: np.ndarray | None = None
) -> np.ndarray:
    """(K, F, n) per-example features of K models' predictions (K, n) whose weighted sums give
    metric `name` (with `gold_features`); `classes` fixes Matthews' confusion cells (default:
    those of pred and gold)."""
    pred, gold = np.atleast_2d(pred), np.asarray(gold)
    if name == "accuracy":
        return (pred == gold[None])[:, None, :].astype(np.float64)
    if name == "f1":
        predicted, actual = pred == 1, (gold == 1)[None, :]  # (K, n), (1, n)
        return np.stack([predicted & actual, predicted & ~actual, ~predicted & actual], axis=1).astype(
            np.float64
        )
    if name == "matthews":
        cells = metric_classes(pred, gold) if classes is None else classes
        return np.stack([(pred == p) & (gold == g)[None, :] for g in cells for p in cells], axis=1).astype(
            np.float64
        )  # (K, classes * classes, n): cell (g, p) at g * classes + p
    if name == "pearson":
        x, y = pred.astype(np.float64), gold.astype(np.float64)
        return np.stack([x, x * x, x * y[None]], axis=1)
    raise ValueError(f"metric {name!r} is not a function of feature sums; those are {SUMMABLE}")


def gold_features(name: str, gold: np.ndarray) -> np.ndarray:
    """(G, n) the gold side's features: the weight itself, and y, y² for Pearson."""
    y = np.asarray(gold, dtype=np.float64)
    ones = np.ones_like(y)
    return np.stack([ones, y, y * y]) if name == "pearson" else ones[None]


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


def metric_of_sums(name: str, sums: np.ndarray, gold_sums: np.ndarray) -> np.ndarray:
    """(..., K) metric `name` from feature sums (..., K, F) and gold sums (..., G): the same
    leading axes, e.g. resamples or permutations (and seeds)."""
    total = gold_sums[..., :1]  # (..., 1)
    if name == "accuracy":
        return sums[..., 0] / total
    if name == "f1":
        tp, fp, fn = sums[..., 0], sums[..., 1], sums[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            score = 2 * tp / (2 * tp + fp + fn)
        return np.where(tp > 0, score, 0.0)
    if name == "matthews":
        k = math.isqrt(sums.shape[-1])
        confusion = sums.reshape(*sums.shape[:-1], k, k)  # (..., K, gold, predicted)
        t, q = confusion.sum(axis=-1), confusion.sum(axis=-2)  # (..., K, classes)
        c = np.trace(confusion, axis1=-2, axis2=-1)
        s = confusion.sum(axis=(-2, -1))
        denominator = (s * s - (q * q).sum(-1)) * (s * s - (t * t).sum(-1))
        with np.errstate(invalid="ignore", divide="ignore"):
            score = (c * s - (t * q).sum(-1)) / np.sqrt(denominator)
        return np.where(denominator > 0, score, 0.0)
    if name == "pearson":
        sy, syy = gold_sums[..., 1:2], gold_sums[..., 2:3]  # (..., 1)
        return _pearson_of_sums(total, sums[..., 0], sy, sums[..., 1], syy, sums[..., 2])
    raise ValueError(f"metric {name!r} is not a function of feature sums; those are {SUMMABLE}")


def _summed(name: str, weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) a summable metric under weights (B, n)."""
    features = metric_features(name, pred, gold)  # (K, F, n)
    k, f, n = features.shape
    sums = (weights @ features.reshape(k * f, n).T).reshape(-1, k, f)  # (B, K, F)
    return metric_of_sums(name, sums, weights @ gold_features(name, gold).T)


def accuracy(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) accuracy of K models' class indices `pred` (K, n) under weights (B, n)."""
    return _summed("accuracy", weights, pred, gold)


def f1(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) F1 of class 1; 0 where there is no true positive (as metrics.f1_binary)."""
    return _summed("f1", weights, pred, gold)


def matthews(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) Matthews correlation (multiclass R_K form); 0 where undefined (as metrics.matthews)."""
    return _summed("matthews", weights, pred, gold)


def pearson(weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) weighted Pearson's r of K models' outputs (K, n) with gold (n,)."""
    return _summed("pearson", weights, pred, gold)


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
