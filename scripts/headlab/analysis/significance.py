"""Paired intervals and tests of score differences, and Benjamini-Hochberg.

Everything is paired: a model and its baseline are scored on the same resample of the same
dev examples, so the example-to-example variation they share cancels in the difference.

* `paired_deltas`: bootstrap replicates (B, K) of metric(model k) - metric(baseline), all K
  models on each resample (`headlab.analysis.resampling` weights, drawn in blocks to bound memory).
* `two_level`: replicates of the mean delta over fine-tuning seeds: seeds drawn with replacement,
  then for each drawn seed an independent example resample (one of its B replicates).
* `percentile_interval`: the 95 % (1 - alpha) percentile interval of replicates.
* `sign_flip_pvalues`: the paired permutation test of accuracy (each example's score difference
  keeps or flips its sign; the observed value counted, so p >= 1 / (1 + permutations): use
  enough permutations for BH over many masks, statistics.permutations); `bootstrap_pvalues`:
  the two-sided bootstrap (Wald) test for the other metrics, from the replicates' spread.
  Identical predictions give p = 1 in both.
* `benjamini_hochberg`: adjusted p-values (q) of a family of tests.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from headlab.analysis.resampling import bootstrap_weights, weighted_metric

# Resample blocks hold at most this many weights (resamples x examples), about 40 MB.
BLOCK_WEIGHTS = 5_000_000
# Intervals and p-values need this share of finite replicates (a metric can be undefined on a
# resample, e.g. Pearson's r of constant predictions); else they are NaN with a note.
MIN_FINITE_SHARE = 0.95


def paired_deltas(
    metric: str,
    pred: np.ndarray,
    baseline: np.ndarray,
    gold: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    among: np.ndarray | None = None,
) -> np.ndarray:
    """(B, K) bootstrap replicates of metric(pred[k]) - metric(baseline) on the same resamples
    of the examples (or of the subset `among`); `pred` (K, n), `baseline` and `gold` (n,)."""
    both = np.concatenate([np.asarray(baseline)[None], np.atleast_2d(pred)])  # (1 + K, n)
    n = both.shape[1]
    block = max(1, BLOCK_WEIGHTS // max(n, 1))
    out = []
    for start in range(0, n_resamples, block):
        weights = bootstrap_weights(rng, min(block, n_resamples - start), n, among)  # (b, n)
        scores = weighted_metric(metric, weights, both, gold)  # (b, 1 + K)
        out.append(scores[:, 1:] - scores[:, :1])
    return np.concatenate(out)


def subset_deltas(
    metric: str, pred: np.ndarray, baseline: np.ndarray, gold: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """(K,) metric(pred[k]) - metric(baseline) on the examples `rows` exactly (no resampling)."""
    weights = np.zeros((1, gold.shape[0]))
    weights[0, rows] = 1.0
    both = np.concatenate([np.asarray(baseline)[None], np.atleast_2d(pred)])
    scores = weighted_metric(metric, weights, both, gold)[0]
    return scores[1:] - scores[0]


def two_level(per_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B, K) replicates of the mean over seeds from per-seed replicates (seeds, B, K): each
    replicate draws the seeds with replacement and, for each, one of its example replicates."""
    seeds, n_resamples, _ = per_seed.shape
    drawn_seeds = rng.integers(0, seeds, size=(n_resamples, seeds))  # (B, seeds)
    drawn_replicates = rng.integers(0, n_resamples, size=(n_resamples, seeds))  # (B, seeds)
    return per_seed[drawn_seeds, drawn_replicates].mean(axis=1)  # (B, seeds, K) -> (B, K)


def _finite_enough(replicates: np.ndarray) -> np.ndarray:
    """(K,) whether each column has MIN_FINITE_SHARE finite replicates."""
    return np.isfinite(replicates).mean(axis=0) >= MIN_FINITE_SHARE


def percentile_interval(replicates: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (K,): the alpha/2 and 1 - alpha/2 quantiles of replicates (B, K) over
    the finite ones; NaN where too few are finite."""
    ok = _finite_enough(replicates)
    safe = np.where(np.isfinite(replicates), replicates, np.nan)
    with np.errstate(all="ignore"):
        low, high = (
            np.nanquantile(safe, [alpha / 2, 1 - alpha / 2], axis=0) if safe.size else (np.nan, np.nan)
        )
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def bootstrap_pvalues(replicates: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(K,) two-sided bootstrap (Wald) p-values of "delta = 0": 2 (1 - Phi(|observed| / sd)),
    sd the standard deviation of the finite replicates (B, K). Unlike the share of replicates
    beyond 0 it has no floor of 1 / B, so a real effect can survive BH over many masks. A zero
    sd gives 1 for a zero observed delta and 0 otherwise; NaN where too few are finite."""
    observed = np.asarray(observed, dtype=np.float64)
    safe = np.where(np.isfinite(replicates), replicates, np.nan)
    with np.errstate(all="ignore"):
        sd = np.nanstd(safe, axis=0, ddof=1) if replicates.shape[0] > 1 else np.zeros(replicates.shape[1])
        z = np.abs(observed) / sd
    p = np.where(sd > 0, 2.0 * special.ndtr(-z), np.where(observed == 0, 1.0, 0.0))
    return np.where(_finite_enough(replicates) & np.isfinite(observed), np.minimum(p, 1.0), np.nan)


def sign_flip_pvalues(
    correct: np.ndarray, baseline_correct: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """(K,) paired permutation p-values of accuracy: the differences d = correct[k] -
    baseline_correct (K, n) keep or flip their sign at random; p = (1 + #{|mean flipped| >=
    |mean d|}) / (1 + permutations). Identical predictions (d = 0) give 1."""
    differences = np.atleast_2d(correct).astype(np.float64) - np.asarray(baseline_correct, np.float64)[None]
    n = differences.shape[1]
    observed = np.abs(differences.mean(axis=1))  # (K,)
    exceed = np.zeros(differences.shape[0])
    block = max(1, BLOCK_WEIGHTS // max(n, 1))
    for start in range(0, n_permutations, block):
        size = min(block, n_permutations - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))  # (P, n)
        flipped = np.abs(signs @ differences.T) / n  # (P, K)
        exceed += (flipped >= observed[None] - 1e-12).sum(axis=0)
    return (1.0 + exceed) / (1.0 + n_permutations)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """(K,) BH-adjusted p-values (q): min over j >= i of p_(j) m / j, in the input order, at most
    1; NaN p-values stay NaN and do not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return q
    order = finite[np.argsort(p[finite], kind="stable")]
    m = finite.size
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q
