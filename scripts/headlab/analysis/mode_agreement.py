"""Do the disabling modes agree on which heads matter? Rank agreement of per-head deltas.

Input: the sweep predictions of one model x task in two or more modes (uniform, zero, mean),
every seed. For each pair of modes and the task's primary metric: the Spearman and Kendall
correlations of the single-head deltas, and the overlap of the two modes' top-k heads (the k
heads whose disabling costs most, i.e. the lowest deltas), per seed and pooled (deltas averaged
over seeds); and `pearson_corrected`, the correlation of the heads' *true* deltas: observed
deltas are true deltas plus example noise, which attenuates every correlation of them towards 0
(two modes with identical true effects and noisy deltas agree at, say, 0.6). The correction
subtracts the noise, measured by the bootstrap, from the deltas' variances and covariance over
the heads: (cov(a, b) - noise covariance) / sqrt((var a - noise variance a)(var b - ...)), the
noise being the part the heads do not share (`spread_noise`).

Resamples are crossed: one example resample for every seed and every mode (seeds are not drawn
with replacement, so the intervals are conditional on these fine-tuning seeds). Spearman and
Kendall get percentile intervals of the replicates (attenuated like the observed values:
descriptions). The top-k overlap gets none (NaN), as in `headlab.analysis.attribution_agreement`:
a step function of the ranks near the k-th head, where the deltas crowd, its percentile bootstrap
is not centred on it; read its seed-to-seed spread instead. `pearson_corrected` gets the
percentile interval of the corrected replicates, each corrected for twice the noise (a replicate
adds its own noise to the observed deltas'). NaN where no head's deltas vary beyond their noise.

Table (`AGREEMENT_SCHEMA`): model, task, metric, scope (seed | pooled), seed (null pooled),
mode_a, mode_b, statistic (spearman | kendall | top_k_overlap | pearson_corrected), value,
ci_low, ci_high, k, n_heads, n_examples.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import polars as pl
from scipy import stats

from headlab.analysis.significance import crossed_deltas, observed_deltas, percentile_interval
from headlab.analysis.sweep_statistics import SeedSweep, seed_sweeps

AGREEMENT_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "metric": pl.String(),
    "scope": pl.String(),
    "seed": pl.Int64(),
    "mode_a": pl.String(),
    "mode_b": pl.String(),
    "statistic": pl.String(),
    "value": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "k": pl.Int64(),
    "n_heads": pl.Int64(),
    "n_examples": pl.Int64(),
}
STATISTICS = ("spearman", "kendall", "top_k_overlap", "pearson_corrected")
NO_INTERVAL = frozenset({"top_k_overlap"})  # a step function: its bootstrap is off centre (module doc)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B,) Spearman's rho of each row pair of (B, heads) arrays (average ranks for ties)."""
    ra, rb = stats.rankdata(a, axis=1), stats.rankdata(b, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))


def _kendall_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([stats.kendalltau(x, y).statistic for x, y in zip(a, b, strict=True)])


def _overlap_rows(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """(B,) share of the k lowest-delta heads of a that are among the k lowest of b."""
    top_a = np.argsort(a, axis=1, kind="stable")[:, :k]
    top_b = np.argsort(b, axis=1, kind="stable")[:, :k]
    return np.array([np.intersect1d(x, y).size / k for x, y in zip(top_a, top_b, strict=True)])


def spread_noise(draws_a: np.ndarray, draws_b: np.ndarray) -> tuple[float, float, float]:
    """(noise variance a, noise variance b, noise covariance) that noise adds to the variance
    over heads of one (heads,) delta vector, from replicates (B, heads) of both modes. Only the
    part of the noise the heads do not share moves them apart (every head shares the baseline's
    noise, and examples that every head flips), so the noise is centred over the heads in each
    replicate: with equal variances s and covariances c it is s - c, estimated without bias by
    H / (H - 1) x the mean over heads of the centred noise's variance."""
    heads = draws_a.shape[1]
    centred = []
    for draws in (draws_a, draws_b):
        noise = draws - np.nanmean(draws, axis=0, keepdims=True)  # (B, heads): around each head's centre
        centred.append(noise - np.nanmean(noise, axis=1, keepdims=True))  # centred over the heads
    scale = heads / (heads - 1) / (draws_a.shape[0] - 1)
    a, b = centred
    return (
        float(np.nanmean(np.nansum(a * a, axis=0)) * scale),
        float(np.nanmean(np.nansum(b * b, axis=0)) * scale),
        float(np.nanmean(np.nansum(a * b, axis=0)) * scale),
    )


def corrected_pearson(
    a: np.ndarray, b: np.ndarray, noise_a: float, noise_b: float, noise_ab: float, times: float = 1.0
) -> np.ndarray:
    """(R,) correlation over heads of rows of (R, heads) deltas, corrected for `times` x the mean
    noise variances and covariance; NaN where a corrected variance is not positive."""
    ca, cb = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    heads = a.shape[1]
    var_a = (ca * ca).sum(1) / (heads - 1) - times * noise_a
    var_b = (cb * cb).sum(1) / (heads - 1) - times * noise_b
    cov = (ca * cb).sum(1) / (heads - 1) - times * noise_ab
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(var_a * var_b)
    return np.where((var_a > 0) & (var_b > 0), np.clip(r, -1.0, 1.0), np.nan)


def agreement_statistics(
    a: np.ndarray, b: np.ndarray, k: int, noise: tuple[float, float, float], times: float
) -> dict[str, np.ndarray]:
    """statistic -> (R,) over rows of two (R, heads) delta arrays; `noise` (variance a, variance
    b, covariance) of one delta, removed `times` over by the corrected correlation."""
    return {
        "spearman": _spearman_rows(a, b),
        "kendall": _kendall_rows(a, b),
        "top_k_overlap": _overlap_rows(a, b, k),
        "pearson_corrected": corrected_pearson(a, b, *noise, times=times),
    }


def _head_deltas(
    metric: str, sweeps: list[SeedSweep], heads: np.ndarray, base: int, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(observed (seeds, heads), replicates (B, seeds, heads)) of one mode's single-head deltas;
    the resample weights depend only on `seed`, so every mode and seed gets the same ones."""
    pred = np.stack([s.pred[heads] for s in sweeps])  # (S, heads, n)
    base_pred = np.stack([s.pred[base] for s in sweeps])  # (S, n)
    gold = sweeps[0].gold
    rng = np.random.default_rng([seed, 99])
    return observed_deltas(metric, pred, base_pred, gold), crossed_deltas(
        metric, pred, base_pred, gold, resamples, rng
    )


def mode_agreement(
    predictions: dict[str, pl.DataFrame], metric: str, k: int, resamples: int, alpha: float, seed: int
) -> pl.DataFrame:
    """The agreement table of one model x task from each mode's sweep predictions (every seed)."""
    if len(predictions) < 2:
        raise ValueError(f"mode agreement needs two modes or more, got {sorted(predictions)}")
    first = next(iter(predictions.values()))
    masks = first.select("mask", "kind", "layer", "head").unique(subset="mask", maintain_order=True)
    names = masks["mask"].to_list()
    heads = np.flatnonzero(masks["kind"].to_numpy() == "head")
    base = names.index("baseline")
    k = min(k, heads.size)
    per_mode = {
        mode: _head_deltas(metric, seed_sweeps(table, masks), heads, base, resamples, seed)
        for mode, table in predictions.items()
    }
    seeds = sorted(first["seed"].unique().to_list())
    n = int(first.filter((pl.col("mask") == "baseline") & (pl.col("seed") == seeds[0])).height)
    row = first.row(0, named=True)
    keys = {
        "model": row["model"],
        "task": row["task"],
        "metric": metric,
        "k": k,
        "n_heads": heads.size,
        "n_examples": n,
    }
    rows = []
    for a, b in combinations(per_mode, 2):
        (obs_a, rep_a), (obs_b, rep_b) = per_mode[a], per_mode[b]
        scopes = [("seed", s, obs_a[i], obs_b[i], rep_a[:, i], rep_b[:, i]) for i, s in enumerate(seeds)]
        scopes.append(("pooled", None, obs_a.mean(0), obs_b.mean(0), rep_a.mean(1), rep_b.mean(1)))
        for scope, seed_value, delta_a, delta_b, draws_a, draws_b in scopes:
            noise = spread_noise(draws_a, draws_b)
            observed = agreement_statistics(delta_a[None], delta_b[None], k, noise, times=1.0)
            replicated = agreement_statistics(draws_a, draws_b, k, noise, times=2.0)
            for statistic in STATISTICS:
                if statistic in NO_INTERVAL:
                    low = high = np.full(1, np.nan)
                else:
                    low, high = percentile_interval(replicated[statistic][:, None], alpha)
                rows.append(
                    {
                        **keys,
                        "scope": scope,
                        "seed": seed_value,
                        "mode_a": a,
                        "mode_b": b,
                        "statistic": statistic,
                        "value": float(observed[statistic][0]),
                        "ci_low": float(low[0]),
                        "ci_high": float(high[0]),
                    }
                )
    return pl.DataFrame(rows, schema=AGREEMENT_SCHEMA)
