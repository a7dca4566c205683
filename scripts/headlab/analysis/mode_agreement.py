"""Do the disabling modes agree on which heads matter? Rank agreement of per-head deltas.

Input: the sweep predictions of one model x task in two or more modes (uniform, zero, mean),
every seed. For each pair of modes and the task's primary metric: the Spearman and Kendall
correlations of the single-head deltas, and the overlap of the two modes' top-k heads (the k
heads whose disabling costs most, i.e. the lowest deltas), per seed and pooled (deltas averaged
over seeds). Intervals: every mode is scored on the same bootstrap resamples of the examples
(the same seeded weights), so the replicate correlations are paired; pooled, a two-level
bootstrap (seeds, then examples) drawn jointly for all modes.

Table (`AGREEMENT_SCHEMA`): model, task, metric, scope (seed | pooled), seed (null pooled),
mode_a, mode_b, statistic (spearman | kendall | top_k_overlap), value, ci_low, ci_high, k,
n_heads, n_examples.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import polars as pl
from scipy import stats

from headlab.analysis.significance import paired_deltas, percentile_interval, subset_deltas, two_level
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
STATISTICS = ("spearman", "kendall", "top_k_overlap")


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


def agreement_statistics(a: np.ndarray, b: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """statistic -> (B,) over rows of two (B, heads) delta arrays."""
    return {
        "spearman": _spearman_rows(a, b),
        "kendall": _kendall_rows(a, b),
        "top_k_overlap": _overlap_rows(a, b, k),
    }


def _head_deltas(
    metric: str, per_seed: list[SeedSweep], heads: np.ndarray, base: int, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(observed (seeds, heads), replicates (seeds, B, heads)) of one mode's single-head deltas;
    the resample weights depend only on (seed, seed index), so every mode gets the same ones."""
    observed, replicates = [], []
    for index, sweep in enumerate(per_seed):
        everything = np.arange(sweep.gold.size)
        observed.append(subset_deltas(metric, sweep.pred[heads], sweep.pred[base], sweep.gold, everything))
        rng = np.random.default_rng([seed, index])
        replicates.append(
            paired_deltas(metric, sweep.pred[heads], sweep.pred[base], sweep.gold, resamples, rng)
        )
    return np.stack(observed), np.stack(replicates)


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
    per_mode = {}
    for mode, table in predictions.items():
        sweeps = seed_sweeps(table, masks)
        per_mode[mode] = _head_deltas(metric, sweeps, heads, base, resamples, seed)
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
    modes = list(per_mode)
    # pooled replicates: one two-level draw for every mode (stacked along the head axis)
    stacked = np.concatenate([per_mode[m][1] for m in modes], axis=2)  # (seeds, B, modes * heads)
    pooled = np.split(two_level(stacked, np.random.default_rng([seed, 99])), len(modes), axis=1)
    rows = []
    for a, b in combinations(modes, 2):
        scopes = [
            ("seed", s, per_mode[a][0][i], per_mode[b][0][i], per_mode[a][1][i], per_mode[b][1][i])
            for i, s in enumerate(seeds)
        ]
        scopes.append(
            (
                "pooled",
                None,
                per_mode[a][0].mean(0),
                per_mode[b][0].mean(0),
                pooled[modes.index(a)],
                pooled[modes.index(b)],
            )
        )
        for scope, seed_value, obs_a, obs_b, rep_a, rep_b in scopes:
            observed = agreement_statistics(obs_a[None], obs_b[None], k)
            replicated = agreement_statistics(rep_a, rep_b, k)
            for statistic in STATISTICS:
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
