"""Summaries of disabling sweeps: does disabling a random head help on average? (Sec. 4.6)"""

from __future__ import annotations

import polars as pl

KEYS = ["model", "task", "mode", "metric"]


def summarise(table: pl.DataFrame) -> pl.DataFrame:
    """Per model x task x mode x metric: baseline, mean/max/min delta over single heads and layers.

    `mean_head_delta` > 0 means disabling a head chosen at random improves the score on average,
    the paper's observation for MRPC and RTE.
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
    return head_stats.join(layer_stats, on=KEYS, how="left").sort(KEYS)
