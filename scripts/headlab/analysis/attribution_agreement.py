"""How well do the one-pass screens predict the exact sweep? Agreement of screens and sweep deltas.

Input, for one model x task, every seed: the attribution table (issue 21 table 2, every mode),
the sweep predictions with per-example `score` (every mode; a table with a `mode` column or a
mapping mode -> table) and the per-example importance table (table 3, `importance-examples`).

Definitions (a unit's *exact delta* is the sweep's delta of the mean score: the mean over the dev
examples of the unit's mask's per-example score minus the baseline's; for target = the task's
metric, the metric of the mask's predictions minus the baseline's):

* screen "attribution", unit "head": per head, the mean over the dev examples of `estimate`
  (attribution patching's first-order estimate of that example's score change when the head
  alone is disabled in the mode) against the head's exact delta in the same mode;
* screen "attribution", unit "layer": the sum of the layer's head estimates against the layer
  mask's exact delta (rows only where the sweep has layer masks);
* screen "importance": Michel et al.'s importance of a head (the mean over its sample of
  |dL/dxi_h|, the `importance` column of the aggregated table 3, *not* the per-layer normalised
  one) against minus the exact head delta in mode "uniform" (else the first mode of the sweep).
  The estimate compared is minus the importance (so every statistic reads like attribution's:
  high = agrees), i.e. Spearman and Pearson of importance with minus the delta.

Statistics over the units: `spearman` (average ranks), `pearson` and `top_k_overlap`: the share
of the k units with the lowest exact delta (most harmful to disable) among the k lowest
estimates (for importance: the k highest importances); k is capped at the number of units. For
target = the metric only Spearman is reported (the metric's deltas tie often). Scope "seed": one
seed; "pooled": estimates and exact deltas averaged over the seeds first.

Intervals: percentile intervals over B example resamples. The dev examples are crossed with the
seeds and with the screens: one set of bootstrap counts serves the estimates and the exact
deltas, every seed and every mode, so each replicate recomputes both sides on the same examples.
The importance sample is other examples (e.g. of the training split): its examples are resampled
separately (one set of counts for every seed), jointly with the dev resample of the same index.
Seeds are not resampled: the intervals are conditional on these fine-tuning seeds. The top-k
overlap gets no interval (NaN): it is a step function of the ranks near the k-th unit, where the
deltas crowd, and its percentile bootstrap is not centred on it (the quick run, SST-2 pooled:
observed 0.6, 95 % of the replicates in [0.7, 1.0]); read its seed-to-seed spread instead.
The estimate and the exact delta share their example noise (the same examples), so their statistics are
attenuated far less than two seeds' (`headlab.analysis.replication`). n_examples is
the dev set's size for the attribution screen and the importance sample's for importance.

Table (`ATTRIBUTION_AGREEMENT_SCHEMA`): model, task, screen, mode, unit, target, scope, seed
(null pooled), statistic, value, ci_low, ci_high, k, n_units, n_examples.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from headlab.analysis.head_arrays import ScoreSweep, head_values, interval_fields, score_sweep, weighted_means
from headlab.analysis.mode_agreement import _overlap_rows, _spearman_rows, corrected_pearson
from headlab.analysis.significance import (
    StatisticsSettings,
    crossed_weights,
    observed_deltas,
    weighted_deltas,
)

ATTRIBUTION_AGREEMENT_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "screen": pl.String(),
    "mode": pl.String(),
    "unit": pl.String(),
    "target": pl.String(),
    "scope": pl.String(),
    "seed": pl.Int64(),
    "statistic": pl.String(),
    "value": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "k": pl.Int64(),
    "n_units": pl.Int64(),
    "n_examples": pl.Int64(),
}
STATISTICS = ("spearman", "pearson", "top_k_overlap")
NO_INTERVAL = frozenset({"top_k_overlap"})  # a step function: its bootstrap is off centre (module doc)
SCORE_TARGET = "score"
IMPORTANCE_MODE = "uniform"


def screen_statistics(
    estimate: np.ndarray, exact: np.ndarray, k: int, statistics: tuple[str, ...] = STATISTICS
) -> dict[str, np.ndarray]:
    """statistic -> (R,) over the rows of (R, units) estimates and exact deltas, for `statistics`."""
    functions = {
        "spearman": lambda: _spearman_rows(estimate, exact),
        "pearson": lambda: corrected_pearson(estimate, exact, 0.0, 0.0, 0.0),  # no noise removed: Pearson
        "top_k_overlap": lambda: _overlap_rows(estimate, exact, k),
    }
    return {name: functions[name]() for name in statistics}


def _compare(
    keys: dict[str, object],
    seeds: list[int],
    estimate: tuple[np.ndarray, np.ndarray],
    exact: tuple[np.ndarray, np.ndarray],
    statistics: tuple[str, ...],
    alpha: float,
) -> list[dict[str, object]]:
    """Rows of every scope: estimate and exact given as (observed (S, U), replicates (B, S, U))."""
    (est_obs, est_rep), (exact_obs, exact_rep) = estimate, exact
    units = est_obs.shape[1]
    k = min(int(keys["k"]), units)
    scopes = [
        ("seed", s, est_obs[i], exact_obs[i], est_rep[:, i], exact_rep[:, i]) for i, s in enumerate(seeds)
    ]
    scopes.append(("pooled", None, est_obs.mean(0), exact_obs.mean(0), est_rep.mean(1), exact_rep.mean(1)))
    rows = []
    for scope, seed, e_obs, x_obs, e_rep, x_rep in scopes:
        observed = screen_statistics(e_obs[None], x_obs[None], k, statistics)  # statistic -> (1,)
        with_interval = tuple(name for name in statistics if name not in NO_INTERVAL)
        replicated = screen_statistics(e_rep, x_rep, k, with_interval)  # statistic -> (B,)
        where = {**keys, "k": k, "n_units": units, "scope": scope, "seed": seed}
        for name in statistics:
            draws = replicated.get(name, np.full(1, np.nan))  # all NaN: no interval
            rows.append({**where, "statistic": name, **interval_fields(observed[name][0], draws, alpha)})
    return rows


def _exact(
    sweep: ScoreSweep, kind: str, metric: str, weights: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """target -> (observed (S, K), replicates (B, S, K)) of the exact deltas of one kind of mask."""
    deltas = sweep.deltas(kind)  # (S, K, n)
    rows = sweep.of_kind(kind)
    pred, base = sweep.pred[:, rows], sweep.pred[:, sweep.base]  # (S, K, n), (S, n)
    return {
        SCORE_TARGET: (deltas.mean(-1), weighted_means(weights, deltas)),
        metric: (
            observed_deltas(metric, pred, base, sweep.gold),
            weighted_deltas(metric, weights, pred, base, sweep.gold),
        ),
    }


def _mode_tables(sweeps: pl.DataFrame | Mapping[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """mode -> that mode's sweep predictions, in the order the modes first appear."""
    table = pl.concat(list(sweeps.values())) if isinstance(sweeps, Mapping) else sweeps
    modes = table["mode"].unique(maintain_order=True).to_list()
    return {mode: table.filter(pl.col("mode") == mode) for mode in modes}


def _check_seeds(what: str, found: list[int], seeds: list[int]) -> None:
    if sorted(found) != seeds:
        raise ValueError(f"{what} has seeds {sorted(found)}, the sweep has {seeds}")


def attribution_agreement(
    attribution: pl.DataFrame,
    sweeps: pl.DataFrame | Mapping[str, pl.DataFrame],
    importance: pl.DataFrame,
    metric: str,
    k: int,
    settings: StatisticsSettings,
) -> pl.DataFrame:
    """The agreement table of one model x task (every seed and every mode of the attribution);
    `importance` is the per-example importance table (its mean per head is table 3's importance)."""
    tables = _mode_tables(sweeps)
    if not tables:
        raise ValueError("no sweep predictions")
    per_mode = {mode: score_sweep(table) for mode, table in tables.items()}
    first_mode = next(iter(per_mode.values()))
    n = first_mode.examples.size
    weights = crossed_weights(np.random.default_rng([settings.seed, 21]), settings.resamples, n)  # (B, n)
    row = next(iter(tables.values())).row(0, named=True)
    base_keys = {"model": row["model"], "task": row["task"], "k": k}
    rows: list[dict[str, object]] = []
    exact_heads: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for mode in attribution["mode"].unique(maintain_order=True).to_list():
        if mode not in per_mode:
            raise ValueError(f"the attribution has mode {mode!r} but the sweeps only {sorted(per_mode)}")
        sweep = per_mode[mode]
        if not np.array_equal(sweep.examples, first_mode.examples):
            raise ValueError(f"the {mode} sweep's dev examples differ from the {next(iter(tables))} sweep's")
        table = attribution.filter(pl.col("mode") == mode)
        _check_seeds(f"the {mode} attribution", table["seed"].unique().to_list(), sweep.seeds)
        heads = sweep.units("head")
        estimate, _ = head_values(table, "estimate", sweep.seeds, heads, sweep.examples)  # (S, H, n)
        keys = {**base_keys, "screen": "attribution", "mode": mode, "n_examples": n}
        exact_heads[mode] = _exact(sweep, "head", metric, weights)
        units = {"head": (estimate.mean(-1), weighted_means(weights, estimate), exact_heads[mode])}
        if sweep.of_kind("layer").size:
            layers = sweep.units("layer")["layer"].to_numpy()  # (L,)
            member = (heads["layer"].to_numpy()[:, None] == layers[None]).astype(np.float64)  # (H, L)
            units["layer"] = (
                estimate.mean(-1) @ member,  # (S, L): the sum of the layer's head estimates
                weighted_means(weights, estimate) @ member,  # (B, S, L)
                _exact(sweep, "layer", metric, weights),
            )
        for unit, (est_obs, est_rep, exact) in units.items():
            for target, statistics in ((SCORE_TARGET, STATISTICS), (metric, ("spearman",))):
                rows += _compare(
                    {**keys, "unit": unit, "target": target},
                    sweep.seeds,
                    (est_obs, est_rep),
                    exact[target],
                    statistics,
                    settings.alpha,
                )
    rows += _importance_rows(importance, per_mode, exact_heads, weights, metric, base_keys, settings)
    return pl.DataFrame(rows, schema=ATTRIBUTION_AGREEMENT_SCHEMA)


def _importance_rows(
    importance: pl.DataFrame,
    per_mode: dict[str, ScoreSweep],
    exact_heads: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]],
    weights: np.ndarray,
    metric: str,
    base_keys: dict[str, object],
    settings: StatisticsSettings,
) -> list[dict[str, object]]:
    """The importance screen's rows: minus the importance against the exact head deltas."""
    mode = IMPORTANCE_MODE if IMPORTANCE_MODE in per_mode else next(iter(per_mode))
    sweep = per_mode[mode]
    if mode not in exact_heads:
        exact_heads[mode] = _exact(sweep, "head", metric, weights)
    _check_seeds("the importance table", importance["seed"].unique().to_list(), sweep.seeds)
    values, sample = head_values(importance, "value", sweep.seeds, sweep.units("head"))  # (S, H, m)
    sample_weights = crossed_weights(
        np.random.default_rng([settings.seed, 22]), settings.resamples, sample.size
    )  # (B, m): the sample's own examples, one set of counts for every seed
    estimate = (-values.mean(-1), -weighted_means(sample_weights, values))
    keys = {**base_keys, "screen": "importance", "mode": mode, "unit": "head", "n_examples": sample.size}
    rows = []
    for target, statistics in ((SCORE_TARGET, STATISTICS), (metric, ("spearman",))):
        target_keys = {**keys, "target": target}
        rows += _compare(
            target_keys, sweep.seeds, estimate, exact_heads[mode][target], statistics, settings.alpha
        )
    return rows
