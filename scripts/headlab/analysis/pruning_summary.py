"""The pruning curves of issue 21 summarised: the task metric as more heads are pruned, per order.

Input: the pruning predictions (issue 21 table 4) of every seed of one model and one or more
tasks: per seed, order (importance | delta | delta_heldout | random), draw (0, or 1..n for the seeded random
orders) and step (0 = nothing pruned), the predictions of the dev examples.

`pruning_summary`: per (task, order, step), `value` is the task's metric
(`headlab.analysis.resampling.weighted_metric`, equal to `headlab.analysis.metrics` on all
examples) averaged over the draws within each seed, then over the seeds; `seed_low` and
`seed_high` are the smallest and largest of those per-seed values. The interval is the percentile
interval of the same mean over `settings.resamples` crossed example resamples: one set of
bootstrap counts of the dev examples for every seed, order, draw and step of a task. Seeds are
not resampled, so the band is conditional on these fine-tuning seeds (their spread is shown by
seed_low..seed_high, not by the band). `baseline` is step 0's value of the same order (nothing
pruned). Every (order, step) must have the same n_pruned and share_pruned in every seed and draw.

`prunable_share`: per task and order, `share` is the largest share_pruned such that every step up
to it (step 0 included, which passes by definition) has value >= baseline - max_cost (max_cost
in metric units: 0.01 = one point of accuracy); `share_conservative` the same with `drop_low` in
place of value - baseline: the lower bound of the paired interval of the change from nothing
pruned (`drop_low`..`drop_high`, the same example resamples at every step, so the noise the steps
share cancels). A NaN value (or bound) fails its step; a NaN baseline gives NaN shares.
`n_heads` = n_pruned / share_pruned of the steps with something pruned (null with none).

Tables: `PRUNING_SUMMARY_SCHEMA` (model, task, order, step, n_pruned, share_pruned, metric,
value, ci_low, ci_high, seed_low, seed_high, baseline, drop_low, drop_high, n_seeds, n_draws,
n_examples) and
`PRUNABLE_SCHEMA` (model, task, order, metric, max_cost, share, share_conservative, n_heads).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from headlab.analysis.resampling import weighted_metric
from headlab.analysis.significance import (
    ZERO_SPREAD,
    StatisticsSettings,
    crossed_weights,
    percentile_interval,
)

PRUNING_SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "order": pl.String(),
    "step": pl.Int64(),
    "n_pruned": pl.Int64(),
    "share_pruned": pl.Float64(),
    "metric": pl.String(),
    "value": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "seed_low": pl.Float64(),
    "seed_high": pl.Float64(),
    "baseline": pl.Float64(),
    "drop_low": pl.Float64(),
    "drop_high": pl.Float64(),
    "n_seeds": pl.Int64(),
    "n_draws": pl.Int64(),
    "n_examples": pl.Int64(),
}
PRUNABLE_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "order": pl.String(),
    "metric": pl.String(),
    "max_cost": pl.Float64(),
    "share": pl.Float64(),
    "share_conservative": pl.Float64(),
    "n_heads": pl.Int64(),
}
CURVE_KEYS = ("seed", "order", "draw", "step")


def _matrices(rows: pl.DataFrame, where: str) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """(curves: one row per seed, order, draw, step with n_pruned and share_pruned; predictions
    (G, n) in that order; gold (n,)): an error naming `where` unless every curve has the same
    examples, with the same labels."""
    rows = rows.sort(*CURVE_KEYS, "example")
    curves = rows.group_by(*CURVE_KEYS, maintain_order=True).agg(
        pl.col("n_pruned").first(),
        pl.col("share_pruned").first(),
        pl.col("n_pruned").n_unique().alias("_n_values"),
        pl.len().alias("_rows"),
    )
    n = int(curves["_rows"][0])
    if (curves["_rows"] != n).any() or (curves["_n_values"] != 1).any():
        raise ValueError(f"{where}: the curves' steps do not all have {n} examples and one n_pruned")
    shape = (curves.height, n)
    examples = rows["example"].to_numpy().reshape(shape)  # (G, n)
    labels = rows["label"].to_numpy().reshape(shape)  # (G, n)
    if (examples != examples[:1]).any() or np.unique(examples[0]).size != n:
        raise ValueError(f"{where}: the curves do not all have the same {n} distinct dev examples")
    if not np.array_equal(labels, np.broadcast_to(labels[:1], shape), equal_nan=True):
        raise ValueError(f"{where}: the curves' labels differ on the same examples")
    return curves.drop("_n_values", "_rows"), rows["prediction"].to_numpy().reshape(shape), labels[0]


def _summary_rows(
    curves: pl.DataFrame, observed: np.ndarray, replicates: np.ndarray, alpha: float, where: str
) -> list[dict[str, object]]:
    """Per (order, step): the mean over seeds of the mean over draws of observed (G,) and of
    replicates (B, G), the percentile interval and the seeds' range."""
    indexed = curves.with_row_index("_g")
    steps = indexed.group_by("order", "step", maintain_order=True).agg(
        pl.col("_g"),
        pl.col("seed"),
        pl.col("n_pruned").n_unique().alias("_n_values"),
        pl.col("n_pruned").first(),
        pl.col("share_pruned").first(),
        pl.col("draw").n_unique().alias("n_draws"),
    )
    if (steps["_n_values"] != 1).any():
        raise ValueError(f"{where}: a step's n_pruned differs between seeds or draws")
    rows = []
    for step in steps.iter_rows(named=True):
        groups, seeds = np.asarray(step["_g"]), np.asarray(step["seed"])
        per_seed = [groups[seeds == s] for s in np.unique(seeds)]
        seed_values = np.array([observed[g].mean() for g in per_seed])  # (S,) mean over draws
        seed_replicates = np.stack([replicates[:, g].mean(axis=1) for g in per_seed], axis=1)  # (B, S)
        means = seed_replicates.mean(axis=1)  # (B,)
        low, high = percentile_interval(means[:, None], alpha)
        rows.append(
            {
                "order": step["order"],
                "step": step["step"],
                "n_pruned": step["n_pruned"],
                "share_pruned": step["share_pruned"],
                "value": float(seed_values.mean()),
                "ci_low": float(low[0]),
                "ci_high": float(high[0]),
                "seed_low": float(seed_values.min()),
                "seed_high": float(seed_values.max()),
                "n_seeds": len(per_seed),
                "n_draws": step["n_draws"],
                "_replicates": means,
            }
        )
    starts = {row["order"]: row["_replicates"] for row in rows if row["step"] == 0}
    for row in rows:  # the paired interval of value - baseline: the same resamples at every step
        replicates = row.pop("_replicates")
        if row["order"] in starts:
            low, high = percentile_interval((replicates - starts[row["order"]])[:, None], alpha)
            row["drop_low"], row["drop_high"] = float(low[0]), float(high[0])
        else:
            row["drop_low"] = row["drop_high"] = float("nan")
    return rows


def pruning_summary(
    predictions: pl.DataFrame, metric: str | Mapping[str, str], settings: StatisticsSettings
) -> pl.DataFrame:
    """The summary of the pruning predictions of every seed of one model and one or more tasks;
    `metric` the metric of every task, or task -> metric."""
    frames = []
    for index, ((model, task), rows) in enumerate(
        sorted(predictions.group_by("model", "task"), key=lambda g: g[0])
    ):
        name = metric if isinstance(metric, str) else metric[task]
        where = f"{model} / {task}"
        curves, pred, gold = _matrices(rows, where)  # pred (G, n)
        n = gold.size
        weights = crossed_weights(np.random.default_rng([settings.seed, 41, index]), settings.resamples, n)
        observed = weighted_metric(name, np.ones((1, n)), pred, gold)[0]  # (G,)
        replicates = weighted_metric(name, weights, pred, gold)  # (B, G)
        frame = pl.DataFrame(_summary_rows(curves, observed, replicates, settings.alpha, where))
        start = frame.filter(pl.col("step") == 0).select("order", baseline="value")
        missing = set(frame["order"]) - set(start["order"])
        if missing:
            raise ValueError(f"{where}: order(s) {sorted(missing)} have no step 0 (nothing pruned)")
        frame = frame.join(start, on="order", how="left", maintain_order="left").with_columns(
            model=pl.lit(model), task=pl.lit(task), metric=pl.lit(name), n_examples=pl.lit(n)
        )
        frames.append(frame.select([pl.col(c).cast(t) for c, t in PRUNING_SUMMARY_SCHEMA.items()]))
    if not frames:
        raise ValueError("no pruning predictions")
    return pl.concat(frames).sort("model", "task", "order", "step")


def _largest_passing(share: np.ndarray, passes: np.ndarray) -> float:
    """The share of the last step before the first failing one (steps in order; step 0 passes)."""
    passes = passes.copy()
    passes[0] = True  # nothing pruned costs nothing
    failing = np.flatnonzero(~passes)
    last = (failing[0] - 1) if failing.size else share.size - 1
    return float(share[last])


def prunable_share(summary: pl.DataFrame, max_cost: float) -> pl.DataFrame:
    """Per task and order of a pruning summary, the largest share prunable within `max_cost`."""
    rows = []
    for (model, task, order, metric), curve in summary.sort("step").group_by(
        "model", "task", "order", "metric", maintain_order=True
    ):
        if curve["step"][0] != 0:
            raise ValueError(f"{model} / {task} / {order}: the curve has no step 0")
        floor = curve["baseline"].to_numpy() - max_cost - ZERO_SPREAD  # (steps,)
        share = curve["share_pruned"].to_numpy()
        with np.errstate(invalid="ignore"):
            passes = curve["value"].to_numpy() >= floor  # NaN fails
            conservative = curve["drop_low"].to_numpy() >= -max_cost - ZERO_SPREAD
        if not np.isfinite(curve["baseline"][0]):  # no baseline, no cost: NaN, not a share of 0
            passes[:] = conservative[:] = False
            share = np.full(share.shape, np.nan)
        pruned = curve.filter(pl.col("share_pruned") > 0)
        heads = np.unique(np.rint(pruned["n_pruned"].to_numpy() / pruned["share_pruned"].to_numpy()))
        if heads.size > 1:
            raise ValueError(
                f"{model} / {task} / {order}: n_pruned / share_pruned is not one number of heads"
            )
        rows.append(
            {
                "model": model,
                "task": task,
                "order": order,
                "metric": metric,
                "max_cost": max_cost,
                "share": _largest_passing(share, passes),
                "share_conservative": _largest_passing(share, conservative),
                "n_heads": int(heads[0]) if heads.size else None,
            }
        )
    return pl.DataFrame(rows, schema=PRUNABLE_SCHEMA)
