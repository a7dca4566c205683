"""Summaries of disabling sweeps: does disabling a random head help on average? (Sec. 4.6)"""

from __future__ import annotations

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
