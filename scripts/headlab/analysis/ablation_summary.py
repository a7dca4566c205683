"""Summaries of disabling sweeps: does disabling a random head help on average? (Sec. 4.6)"""

from __future__ import annotations

import polars as pl

KEYS = ["model", "task", "mode", "metric"]


def summarise(table: pl.DataFrame) -> pl.DataFrame:
    """Per model x task x mode x metric: baseline, mean/max/min delta over single heads and layers.

    `mean_head_delta` > 0 means disabling a head chosen at random improves the score on average,
    the paper's observation for MRPC and RTE.

    Noise: for accuracy, `baseline_se` is the binomial standard error sqrt(p(1-p)/n) of the
    baseline on the n dev examples, and `n_heads_beyond_2se` counts heads whose |delta| exceeds
    two of them (a rough yardstick: a paired test on the same examples is more sensitive).
    Both are null for other metrics.
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
    is_accuracy = pl.col("metric") == "accuracy"
    standard_error = (pl.col("baseline") * (1 - pl.col("baseline")) / pl.col("n_examples")).sqrt()
    summary = summary.with_columns(pl.when(is_accuracy).then(standard_error).alias("baseline_se"))
    beyond = (
        heads.join(summary.select([*KEYS, "baseline_se"]), on=KEYS)
        .group_by(KEYS)
        .agg(
            (pl.col("delta").abs() > 2 * pl.col("baseline_se")).sum().alias("n_heads_beyond_2se"),
        )
    )
    summary = summary.join(beyond, on=KEYS, how="left").with_columns(
        pl.when(is_accuracy).then(pl.col("n_heads_beyond_2se")).alias("n_heads_beyond_2se")
    )
    return summary.sort(KEYS)
