"""Sec. 5 as an experiment: what disabling the FrameNet relation heads does to each GLUE task.

Input: rule framenet_ablation's per-example predictions, every task x mode x seed: the
baseline, mask "framenet" (the heads above framenet.percentile in framenet.parquet) and the
seeded random head sets of the same size (kind random). Per task x mode, on the task's primary
metric: the framenet mask's mean delta over seeds with its crossed interval and p-value
(`headlab.analysis.significance.delta_inference`; `se`, `df` let the claim widen it for
several tasks x modes), and
the null distribution of "disabling that many random heads" (each set's mean delta over
seeds): its mean and 2.5 / 97.5 % quantiles, and `share_null_below`, the share of random sets
whose delta is lower than the FrameNet heads' (0.5: like a random set; near 0: worse than
almost every random set).

Table (`EFFECT_SCHEMA`): model, task, mode, metric, heads (the FrameNet heads), n_heads, delta,
se, df, ci_low, ci_high, p_value, null_mean, null_low, null_high, share_null_below, n_sets,
n_seeds, n_examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from headlab.analysis.significance import (
    INFERENCE_COLUMNS,
    StatisticsSettings,
    delta_inference,
    observed_deltas,
)
from headlab.analysis.sweep_statistics import seed_sweeps
from headlab.data.tasks import get_task
from headlab.heads import head_names

EFFECT_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "mode": pl.String(),
    "metric": pl.String(),
    "heads": pl.String(),
    "n_heads": pl.Int64(),
    **dict.fromkeys(INFERENCE_COLUMNS, pl.Float64()),
    "null_mean": pl.Float64(),
    "null_low": pl.Float64(),
    "null_high": pl.Float64(),
    "share_null_below": pl.Float64(),
    "n_sets": pl.Int64(),
    "n_seeds": pl.Int64(),
    "n_examples": pl.Int64(),
}


def effect_row(
    predictions: pl.DataFrame, heads: Sequence[tuple[int, int]], settings: StatisticsSettings
) -> dict[str, object]:
    """The row of one task x mode from its predictions (every seed); `heads` the FrameNet heads,
    1-based (layer, head)."""
    first = predictions.row(0, named=True)
    metric = get_task(first["task"]).primary_metric
    masks = predictions.select("mask", "kind", "layer", "head").unique(subset="mask", maintain_order=True)
    names, kinds = masks["mask"].to_list(), masks["kind"].to_numpy()
    base, target = names.index("baseline"), names.index("framenet")
    null = np.flatnonzero(kinds == "random")
    sweeps = seed_sweeps(predictions, masks)
    pred = np.stack([s.pred for s in sweeps])  # (S, masks, n), the baseline included
    gold = sweeps[0].gold
    deltas = np.nanmean(observed_deltas(metric, pred, pred[:, base], gold), axis=0)  # (masks,)
    rng = np.random.default_rng([settings.seed, 5])
    inference = delta_inference(metric, pred[:, [target]], pred[:, base], gold, settings, rng)
    null_deltas = deltas[null]
    null_low, null_high = (
        np.quantile(null_deltas, [settings.alpha / 2, 1 - settings.alpha / 2])
        if null.size
        else (np.nan, np.nan)
    )
    return {
        "model": first["model"],
        "task": first["task"],
        "mode": first["mode"],
        "metric": metric,
        "heads": head_names(heads),
        "n_heads": len(heads),
        **inference.row(),
        "null_mean": float(null_deltas.mean()) if null.size else float("nan"),
        "null_low": float(null_low),
        "null_high": float(null_high),
        "share_null_below": float((null_deltas < deltas[target]).mean()) if null.size else float("nan"),
        "n_sets": int(null.size),
        "n_seeds": len(sweeps),
        "n_examples": int(sweeps[0].gold.size),
    }


def framenet_effect(
    predictions: pl.DataFrame, heads: Sequence[tuple[int, int]], settings: StatisticsSettings
) -> pl.DataFrame:
    """One row per task x mode (sorted)."""
    rows = [
        effect_row(group, heads, settings)
        for _, group in predictions.group_by(["task", "mode"], maintain_order=True)
    ]
    return pl.DataFrame(rows, schema=EFFECT_SCHEMA).sort("task", "mode")
