"""Paired intervals and tests of score differences over fine-tuning seeds and dev examples.

The design is crossed: every fine-tuning seed is scored on the *same* dev examples, so a
head that changes a given example tends to change it in every seed. Everything is paired: a
mask and its baseline are scored on the same resample (or the same swap) of the same examples.

* `crossed_deltas`: bootstrap replicates (B, S, K) of metric(mask k) - metric(baseline) in each
  of S seeds, with *one* example-weight vector per replicate for every seed (drawn in blocks to
  bound memory; optionally stratified, e.g. within halves of the dev set).
* `swap_deltas`: the paired permutation (approximate randomisation, Riezler and Maxwell 2005;
  Dror et al. 2018) of every metric: on each swapped example the mask's and the baseline's
  predictions trade places, in every seed at once (the crossed design: a swap of example i is
  a swap in every seed). Accuracy, F1, Matthews and Pearson are functions of feature sums, so a
  block of swaps is one matrix product; Spearman's rho is tested with the Pearson correlation of
  the *pooled* ranks of mask and baseline (ranks that a swap moves along with the predictions),
  a rank statistic whose permutation distribution is exact, while the reported delta stays the
  Spearman difference.
* `crossed_variance`: the variance of the mean delta over seeds as a crossed random-effects
  model: an example part (the crossed bootstrap's covariance between seeds: shared and
  seed-specific example noise) plus a seed part (the spread of the seeds' deltas beyond their
  seed-specific example noise, estimated on S - 1 degrees of freedom), with Satterthwaite's
  degrees of freedom for the sum.
* `pooled_inference`: the mean delta over seeds with a t interval of that variance and its
  p-value; with permutations, p = max(t p-value, joint-swap permutation p-value), so a test
  rejects only when both do (the permutation test keeps a few discordant examples from passing
  as an effect; the t test keeps seed spread from doing so). The interval stays the t interval
  (calibrated as an interval, docs/calibration.md): with very few discordant examples it can
  exclude 0 while p >= alpha, so verdicts read the p-value as well as the interval.
* `seed_inference`: one seed's percentile bootstrap interval with the permutation p-value.
* `benjamini_hochberg`: adjusted p-values (q) of a family; `simultaneous_bounds`: Bonferroni
  one-sided bounds over a family.

A spread below `ZERO_SPREAD` is none: identical predictions give p = 1 whatever float noise a
metric adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from headlab.analysis.resampling import (
    SUMMABLE,
    bootstrap_weights,
    gold_features,
    metric_classes,
    metric_features,
    metric_of_sums,
    weighted_metric,
)

# Resample and swap blocks hold at most this many weights (replicates x examples), about 40 MB.
BLOCK_WEIGHTS = 5_000_000
# Intervals and p-values need this share of finite replicates (a metric can be undefined on a
# resample, e.g. Pearson's r of constant predictions); else they are NaN.
MIN_FINITE_SHARE = 0.95
# The columns of one inference in every table (Inference.row).
INFERENCE_COLUMNS = ("delta", "se", "df", "ci_low", "ci_high", "p_value")
# A delta or a standard error smaller than this is float noise, not a difference (metrics are
# fractions or correlations, so this is an absolute tolerance of 1e-7 points).
ZERO_SPREAD = 1e-9


@dataclass(frozen=True)
class StatisticsSettings:
    """The config's ``statistics.*`` that the intervals and tests read (defaults: the schema)."""

    resamples: int  # bootstrap resamples
    permutations: int  # joint swaps: p >= 1 / (1 + permutations)
    alpha: float  # 1 - the intervals' level, and the BH threshold
    seed: int  # of every resample, permutation and the split into halves

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> StatisticsSettings:
        """From the config's ``statistics`` section (its other keys, such as top_k, left out)."""
        return cls(
            int(config["resamples"]), int(config["permutations"]), float(config["alpha"]), int(config["seed"])
        )


@dataclass(frozen=True)
class Inference:
    """Estimates with their standard errors, degrees of freedom, intervals and p-values, (K,) each."""

    estimate: np.ndarray
    se: np.ndarray
    df: np.ndarray
    low: np.ndarray
    high: np.ndarray
    p: np.ndarray

    def take(self, columns: np.ndarray | slice) -> Inference:
        """The inference of some columns only."""
        fields = (self.estimate, self.se, self.df, self.low, self.high, self.p)
        return Inference(*(np.atleast_1d(f[columns]) for f in fields))

    def row(self, column: int = 0) -> dict[str, float]:
        """One column under the tables' names: delta, se, df, ci_low, ci_high, p_value."""
        values = (self.estimate, self.se, self.df, self.low, self.high, self.p)
        return {name: float(v[column]) for name, v in zip(INFERENCE_COLUMNS, values, strict=True)}


def _blocks(total: int, n: int) -> list[tuple[int, int]]:
    """(start, size) of blocks of at most BLOCK_WEIGHTS // n rows."""
    block = max(1, BLOCK_WEIGHTS // max(n, 1))
    return [(start, min(block, total - start)) for start in range(0, total, block)]


def _stack(pred: np.ndarray, base: np.ndarray) -> np.ndarray:
    """(S, 1 + K, n): each seed's baseline, then its masks, from pred (S, K, n) and base (S, n)."""
    return np.concatenate([np.asarray(base)[:, None], np.asarray(pred)], axis=1)


def weighted_deltas(
    metric: str, weights: np.ndarray, pred: np.ndarray, base: np.ndarray, gold: np.ndarray
) -> np.ndarray:
    """(b, S, K) metric(mask) - metric(baseline) of every seed under weights (b, n) shared by
    the seeds; pred (S, K, n), base (S, n)."""
    both = _stack(pred, base)  # (S, 1 + K, n)
    seeds, width, n = both.shape
    if metric in SUMMABLE:
        classes = metric_classes(both, gold) if metric == "matthews" else None
        features = metric_features(metric, both.reshape(seeds * width, n), gold, classes)  # (S(1+K), F, n)
        sums = (weights @ features.reshape(-1, n).T).reshape(weights.shape[0], seeds, width, -1)
        gold_sums = (weights @ gold_features(metric, gold).T)[:, None, :]  # (b, 1, G)
        scores = metric_of_sums(metric, sums, gold_sums)  # (b, S, 1 + K)
    else:
        scores = np.stack([weighted_metric(metric, weights, both[s], gold) for s in range(seeds)], axis=1)
    return scores[:, :, 1:] - scores[:, :, :1]


def observed_deltas(
    metric: str, pred: np.ndarray, base: np.ndarray, gold: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """(S, K) metric(mask) - metric(baseline) per seed on all examples (or the examples `rows`)."""
    weights = np.ones((1, gold.shape[0]))
    if rows is not None:
        weights = np.zeros((1, gold.shape[0]))
        weights[0, rows] = 1.0
    return weighted_deltas(metric, weights, pred, base, gold)[0]


def crossed_weights(
    rng: np.random.Generator, n_resamples: int, n_examples: int, strata: list[np.ndarray] | None = None
) -> np.ndarray:
    """(B, n) bootstrap counts: over all examples, or drawn within each stratum (index arrays)
    so that every stratum keeps its size."""
    if not strata:
        return bootstrap_weights(rng, n_resamples, n_examples)
    return sum(bootstrap_weights(rng, n_resamples, n_examples, among=s) for s in strata)


def crossed_deltas(
    metric: str,
    pred: np.ndarray,
    base: np.ndarray,
    gold: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
    strata: list[np.ndarray] | None = None,
) -> np.ndarray:
    """(B, S, K) bootstrap replicates of every seed's deltas; replicate b uses one example
    resample for every seed (the examples are crossed with the seeds)."""
    n = gold.shape[0]
    out = [
        weighted_deltas(metric, crossed_weights(rng, size, n, strata), pred, base, gold)
        for _, size in _blocks(n_resamples, n)
    ]
    return np.concatenate(out)


def _swap_inputs(
    metric: str, pred: np.ndarray, base: np.ndarray, gold: np.ndarray
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(metric of the sums, mask features (S, K, F, n), baseline features (S, K, F, n), gold)
    of the swap test; Spearman becomes Pearson of pooled ranks (each mask with its baseline)."""
    seeds, masks, n = pred.shape
    if metric == "spearman":
        pooled = np.concatenate([pred, np.broadcast_to(base[:, None], pred.shape)], axis=2)  # (S, K, 2n)
        ranks = stats.rankdata(pooled, axis=2)
        pred, base_k = ranks[..., :n], ranks[..., n:]  # (S, K, n) each
        gold, metric = stats.rankdata(gold), "pearson"
    else:
        base_k = np.broadcast_to(base[:, None], pred.shape)
    classes = metric_classes(_stack(pred, base), gold) if metric == "matthews" else None

    def features(values: np.ndarray) -> np.ndarray:
        flat = metric_features(metric, values.reshape(seeds * masks, n), gold, classes)
        return flat.reshape(seeds, masks, -1, n)

    return metric, features(pred), features(base_k), gold


def swap_deltas(
    metric: str,
    pred: np.ndarray,
    base: np.ndarray,
    gold: np.ndarray,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """(observed (S, K), permuted (P, S, K)): the swap test's statistic (the delta; for Spearman
    the pooled-rank Pearson difference) and its value under P joint swaps: each example is
    swapped with probability 1/2, in every seed and for every mask at once."""
    name, mask_features, base_features, gold = _swap_inputs(metric, np.asarray(pred), np.asarray(base), gold)
    seeds, masks, width, n = mask_features.shape
    gold_sums = gold_features(name, gold).sum(axis=1)  # (G,)
    mask_sums, base_sums = mask_features.sum(-1), base_features.sum(-1)  # (S, K, F)
    trade = (base_features - mask_features).reshape(-1, n).T  # (n, S K F)

    def statistic(mask_s: np.ndarray, base_s: np.ndarray) -> np.ndarray:
        return metric_of_sums(name, mask_s, gold_sums) - metric_of_sums(name, base_s, gold_sums)

    observed = statistic(mask_sums, base_sums)  # (S, K)
    # only examples where some mask differs from its baseline move a sum; indicator features
    # (classification) sum exactly in float32 (integers below 2^24)
    moving = np.flatnonzero(np.any(trade != 0, axis=1))
    exact = name != "pearson" and n < 2**24
    dtype = np.float32 if exact else np.float64
    trade = trade[moving].astype(dtype)  # (moving, S K F)
    out = []
    for _, size in _blocks(n_permutations, n):
        swaps = rng.integers(0, 2, size=(size, n))[:, moving].astype(dtype)  # (p, moving): 1 = swapped
        moved = (swaps @ trade).astype(np.float64).reshape(size, seeds, masks, width)  # (p, S, K, F)
        out.append(statistic(mask_sums[None] + moved, base_sums[None] - moved))
    return observed, np.concatenate(out)


def permutation_pvalues(
    observed: np.ndarray, permuted: np.ndarray, alternative: str = "two-sided"
) -> np.ndarray:
    """(K,) p = (1 + #{permuted as extreme as observed}) / (1 + #permutations), over the finite
    permuted values (P, K); `alternative` "two-sided" (|.|) or "greater". NaN where the observed
    value is NaN or too few permuted values are finite."""
    observed = np.asarray(observed, dtype=np.float64)
    finite = np.isfinite(permuted)
    if alternative == "two-sided":
        extreme = np.abs(permuted) >= np.abs(observed)[None] - ZERO_SPREAD
    elif alternative == "greater":
        extreme = permuted >= observed[None] - ZERO_SPREAD
    else:
        raise ValueError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    count = finite.sum(axis=0)
    p = (1.0 + (extreme & finite).sum(axis=0)) / (1.0 + count)
    ok = np.isfinite(observed) & (count >= MIN_FINITE_SHARE * permuted.shape[0])
    return np.where(ok, p, np.nan)


def crossed_variance(
    observed: np.ndarray, replicates: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, variance, df), each (K,), of the mean over seeds of per-seed deltas (S, K), from
    the crossed replicates (B, S, K).

    A crossed random-effects model: seed s's delta is mu + tau_s + e_s, the seed effects tau_s
    independent with variance tau^2, the example errors e_s correlated between seeds (the same
    examples) with covariance Sigma (S, S), measured by the crossed replicates. Then
    Var(mean) = C + (tau^2 + U') / S with C the mean off-diagonal of Sigma (the noise the seeds
    share) and U' the rest of the diagonal; and the seeds' spread A = s^2 / S (sample variance
    over seeds) has expectation (tau^2 + U') / S. So the variance is C + A, and since only A is
    estimated from few values (S - 1 degrees of freedom; C from the examples is precise),
    Satterthwaite's degrees of freedom are df = (S - 1) (C + A)^2 / A^2: a t on S - 1 df when
    the seeds disagree, a normal quantile when the shared noise dominates. (1'Sigma1 / S^2 + A,
    which counts the seed-specific example noise twice, covers 97-99 % under the null.) A spread
    of exactly 0 (every seed's delta tied) is replaced by the seed-specific noise
    U = (tr Sigma - 1'Sigma1 / S) / (S (S - 1)). With one seed the variance is that seed's
    bootstrap variance, df infinite. Seeds with a NaN delta are left out of their column; a
    column with too few finite replicates is NaN."""
    kept = np.isfinite(observed)  # (S, K)
    n_kept = kept.sum(axis=0)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        estimate = np.where(kept, observed, 0.0).sum(0) / n_kept
        finite = np.isfinite(replicates) & kept[None]  # (B, S, K)
        counts = finite.sum(axis=0)  # (S, K)
        centre = np.where(finite, replicates, 0.0).sum(0) / counts
        centred = np.where(finite, replicates - centre[None], 0.0)  # (B, S, K)
        pairs = np.einsum("bsk,btk->stk", finite.astype(np.float64), finite.astype(np.float64))
        sigma = np.einsum("bsk,btk->stk", centred, centred) / np.maximum(pairs - 1.0, 1.0)  # (S, S, K)
        example = sigma.sum(axis=(0, 1)) / n_kept**2  # (K,)
        own = np.clip(
            (np.einsum("ssk->k", sigma) - example * n_kept) / (n_kept * (n_kept - 1)), 0.0, None
        )  # U
        spread = np.where(kept, (observed - estimate[None]) ** 2, 0.0).sum(0) / (n_kept - 1) / n_kept  # A
        several = n_kept > 1
        shared = np.clip(example - own, 0.0, None)  # C: the example noise the seeds share
        # seeds whose deltas tie exactly (discrete metrics, few changed examples) do not show that
        # their example noise is shared: the spread is then the seed-specific noise U
        spread = np.where(spread <= ZERO_SPREAD**2, own, spread)
        variance = np.where(several, shared + spread, example)  # C + A, or the one seed's
        df = np.where(several & (spread > 0), (n_kept - 1) * variance**2 / spread**2, np.inf)
    enough = (counts >= MIN_FINITE_SHARE * replicates.shape[0]) | ~kept
    ok = (n_kept > 0) & enough.all(axis=0)
    return np.where(ok, estimate, np.nan), np.where(ok, variance, np.nan), np.where(ok, df, np.nan)


def t_pvalues(
    estimate: np.ndarray, se: np.ndarray, df: np.ndarray, alternative: str = "two-sided"
) -> np.ndarray:
    """(K,) t-test p-values of "delta = 0" (or "delta <= 0" for "greater"); a zero standard
    error gives 1 for a zero delta and 0 (two-sided) otherwise."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = estimate / se
    if alternative == "two-sided":
        p = 2.0 * stats.t.sf(np.abs(t), df)
        degenerate = np.where(np.abs(estimate) <= ZERO_SPREAD, 1.0, 0.0)
    else:
        p = stats.t.sf(t, df)
        degenerate = np.where(estimate > ZERO_SPREAD, 0.0, 1.0)
    p = np.where(se <= ZERO_SPREAD, degenerate, p)
    return np.where(np.isfinite(estimate) & np.isfinite(se), np.minimum(p, 1.0), np.nan)


def t_bounds(
    estimate: np.ndarray, se: np.ndarray, df: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the two-sided t interval of confidence `level`."""
    half = stats.t.ppf(0.5 + level / 2, df) * se
    return estimate - half, estimate + half


def pooled_inference(
    observed: np.ndarray,
    replicates: np.ndarray,
    alpha: float,
    swaps: tuple[np.ndarray, np.ndarray] | None = None,
) -> Inference:
    """The mean over seeds of per-seed deltas (S, K) with its crossed t interval and p-value;
    with `swaps` (the observed statistic (S, K), permuted (P, S, K)) p is the larger of the t
    and the joint-swap p-values."""
    estimate, variance, df = crossed_variance(observed, replicates)
    se = np.sqrt(variance)
    low, high = t_bounds(estimate, se, df, 1 - alpha)
    p = t_pvalues(estimate, se, df)
    if swaps is not None:
        with np.errstate(invalid="ignore"):
            statistic, permuted = np.nanmean(swaps[0], axis=0), np.nanmean(swaps[1], axis=1)
        p = np.fmax(p, permutation_pvalues(statistic, permuted))
    return Inference(estimate, se, df, low, high, p)


def percentile_interval(replicates: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(low, high), each (K,): the alpha/2 and 1 - alpha/2 quantiles of replicates (B, K) over
    the finite ones; NaN where fewer than MIN_FINITE_SHARE are finite."""
    finite = np.isfinite(replicates)
    ok = finite.mean(axis=0) >= MIN_FINITE_SHARE
    quantile = np.quantile if finite.all() else np.nanquantile  # nanquantile is far slower
    safe = np.where(finite, replicates, np.nan)
    with np.errstate(all="ignore"):
        low, high = quantile(safe, [alpha / 2, 1 - alpha / 2], axis=0) if safe.size else (np.nan, np.nan)
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def seed_inference(observed: np.ndarray, replicates: np.ndarray, p: np.ndarray, alpha: float) -> Inference:
    """One seed's deltas (K,) with percentile bootstrap intervals of replicates (B, K) and the
    permutation p-values `p`."""
    low, high = percentile_interval(replicates, alpha)
    with np.errstate(all="ignore"):
        se = np.nanstd(np.where(np.isfinite(replicates), replicates, np.nan), axis=0, ddof=1)
    return Inference(np.asarray(observed, np.float64), se, np.full(se.shape, np.inf), low, high, p)


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


def simultaneous_bounds(
    estimate: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper): one-sided t bounds at level 1 - alpha / m each, so that the m lower (or
    the m upper) bounds hold together with probability >= 1 - alpha (Bonferroni)."""
    half = stats.t.ppf(1 - alpha / max(m, 1), df) * se
    return estimate - half, estimate + half


def delta_inference(
    metric: str,
    pred: np.ndarray,
    base: np.ndarray,
    gold: np.ndarray,
    settings: StatisticsSettings,
    rng: np.random.Generator,
) -> Inference:
    """The pooled inference of K masks' mean delta over seeds: pred (S, K, n), base (S, n)."""
    observed = observed_deltas(metric, pred, base, gold)
    replicates = crossed_deltas(metric, pred, base, gold, settings.resamples, rng)
    swaps = swap_deltas(metric, pred, base, gold, settings.permutations, rng)
    return pooled_inference(observed, replicates, settings.alpha, swaps)
