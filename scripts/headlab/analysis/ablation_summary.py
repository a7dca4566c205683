"""Summaries of disabling sweeps: does disabling a random head help on average? (Sec. 4.6)

`summarise` is the table rule collect_ablation writes; `mean_head_deltas` is the number each
Figure 8 panel prints (`headlab.plots.ablation`), from the table that figure draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import polars as pl

KEYS = ["model", "task", "mode", "metric"]
NOISE_SCHEMA = {"median_head_se": pl.Float64(), "n_heads_significant": pl.Int64()}


def summarise(table: pl.DataFrame, statistics: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per model x task x mode x metric: baseline, mean/max/min delta over single heads and layers.

    `mean_head_delta` > 0 means disabling a head chosen at random improves the score on average,
    the paper's observation for MRPC and RTE.

    Noise, from the pooled sweep statistics when given (rule sweep_statistics): `median_head_se`,
    the median standard error of a head's *paired* delta (mean over seeds, crossed variance: the
    yardstick of a delta, far smaller than the binomial error of one accuracy), and
    `n_heads_significant`, the heads significant after Benjamini-Hochberg over the heads. Null
    without statistics.
    """
    heads = table.filter(pl.col("kind") == "head")
    layers = table.filter(pl.col("kind") == "layer")
    head_stats = heads.group_by(KEYS).agg(
        pl.col("baseline").first(),
        pl.col("n_examples").first(),
        pl.len().alias("n_heads"),
        pl.col("delta").mean().alias("mean_head_delta"),
        pl.col("delta").max().alias("max_head_delta"),
        pl.col("mask").sort_by("delta", descending=True).first().alias("best_head"),
        pl.col("delta").min().alias("min_head_delta"),
        pl.col("mask").sort_by("delta").first().alias("worst_head"),
        (pl.col("delta") > 0).sum().alias("n_heads_improving"),
    )
    layer_stats = layers.group_by(KEYS).agg(
        pl.col("delta").mean().alias("mean_layer_delta"),
        pl.col("delta").max().alias("max_layer_delta"),
        pl.col("mask").sort_by("delta", descending=True).first().alias("best_layer"),
        pl.col("delta").min().alias("min_layer_delta"),
    )
    summary = head_stats.join(layer_stats, on=KEYS, how="left")
    if statistics is None:
        noise = pl.DataFrame(schema={**dict(summary.select(KEYS).schema), **NOISE_SCHEMA})
    else:
        noise = (
            statistics.filter((pl.col("scope") == "pooled") & (pl.col("kind") == "head"))
            .group_by(KEYS)
            .agg(
                pl.col("se").median().alias("median_head_se"),
                pl.col("significant").sum().cast(pl.Int64).alias("n_heads_significant"),
            )
        )
    return summary.join(noise, on=KEYS, how="left").sort(KEYS)


def ablation_rows(table: pl.DataFrame, task: str, kind: str, metric: str) -> pl.DataFrame:
    """Rows of one task and kind (head, layer) for `metric`; a ValueError naming the task when it
    has none of that kind, or none for `metric`."""
    of_kind = table.filter((pl.col("task") == task) & (pl.col("kind") == kind))
    if of_kind.height == 0:
        raise ValueError(f"task {task!r}: no {kind}-ablation rows (kind == {kind!r}) in the table")
    rows = of_kind.filter(pl.col("metric") == metric)
    if rows.height == 0:
        available = sorted(of_kind["metric"].unique().to_list())
        raise ValueError(f"task {task!r}: metric {metric!r} not in its {kind} rows (has {available})")
    return rows


def mean_head_delta(table: pl.DataFrame, task: str, metric: str) -> float:
    """Mean of the table's `delta` over the task's single-head rows (kind "head") for `metric`,
    NaN and null deltas left out; NaN when none is left.

    A ValueError names the task when it has no head rows, or none for `metric`.
    """
    rows = ablation_rows(table, task, "head", metric)
    deltas = rows["delta"].cast(pl.Float64).drop_nans().drop_nulls()
    return float(deltas.mean()) if deltas.len() else math.nan


def mean_head_deltas(table: pl.DataFrame, metric_by_task: Mapping[str, str]) -> dict[str, float]:
    """Figure 8's note: `mean_head_delta` of every task of the table (first-appearance order) that
    `metric_by_task` gives a metric, for that metric (the figure refuses a task without one)."""
    tasks = table["task"].unique(maintain_order=True).to_list()
    return {
        task: mean_head_delta(table, task, metric_by_task[task]) for task in tasks if task in metric_by_task
    }
