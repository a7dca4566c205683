"""Per-example tables as arrays (`headlab.analysis.head_arrays`).

Proved here:

* `weighted_means` under bootstrap counts equals the mean of the explicitly resampled examples;
* `head_values` puts every value at its (seed, head, example) in the requested orders, and
  names the cause when a key is missing, repeated, or outside the heads or examples asked for;
* `score_sweep` reads the score and prediction matrices of a sweep (the masks in table order,
  the examples ascending) and its per-example score deltas; a table without `score` or with
  several modes is an error;
* `interval_fields` is the percentile interval of the replicates, NaN without finite ones.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from headlab.analysis.head_arrays import head_values, interval_fields, score_sweep, weighted_means
from headlab.analysis.resampling import bootstrap_weights
from headlab.analysis.significance import percentile_interval
from score_helpers import head_table, planted_sweep

RTOL, ATOL = 1e-12, 1e-12


def test_weighted_means_are_the_means_of_the_resampled_examples() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(2, 3, 50))  # (S, H, n)
    draws = rng.integers(0, 50, size=(4, 50))  # (B, n): the explicit resamples
    weights = np.stack([np.bincount(d, minlength=50) for d in draws]).astype(np.float64)
    expected = np.stack([values[..., d].mean(-1) for d in draws])  # (B, S, H)
    np.testing.assert_allclose(weighted_means(weights, values), expected, rtol=RTOL, atol=ATOL)
    counts = bootstrap_weights(rng, 3, 50)
    assert weighted_means(counts, values).shape == (3, 2, 3)


def test_head_values_orders_and_checks_the_keys() -> None:
    values = np.arange(2 * 6 * 5, dtype=np.float64).reshape(2, 6, 5)  # (S, H, n): 2 layers x 3 heads
    examples = np.array([7, 3, 9, 1, 5])
    table = head_table(values, 2, 3, "estimate", examples).sample(fraction=1.0, shuffle=True, seed=1)
    heads = pl.DataFrame({"layer": [2, 1], "head": [3, 1]})  # H6 then H1
    wanted = ((pl.col("layer") == 2) & (pl.col("head") == 3)) | (
        (pl.col("layer") == 1) & (pl.col("head") == 1)
    )
    subset = table.filter(wanted & pl.col("example").is_in([1, 7]))
    array, order = head_values(subset, "estimate", [1, 0], heads, np.array([1, 7]))
    np.testing.assert_array_equal(order, [1, 7])
    # seed 1 then 0; head (2, 3) is index 5, (1, 1) index 0; example 1 is column 3, 7 column 0
    np.testing.assert_array_equal(array, values[[1, 0]][:, [5, 0]][:, :, [3, 0]])
    every = pl.DataFrame({"layer": [1, 1, 1, 2, 2, 2], "head": [1, 2, 3, 1, 2, 3]})
    full, order = head_values(table.filter(pl.col("seed") == 0), "estimate", [0], every)
    np.testing.assert_array_equal(order, np.sort(examples))  # default: the table's, ascending
    np.testing.assert_array_equal(full[0], values[0][:, np.argsort(examples)])
    one = (pl.col("seed") == 0) & (pl.col("example") == 1) & (pl.col("layer") == 2) & (pl.col("head") == 3)
    with pytest.raises(ValueError, match=r"1 of the 60 .* missing and 0 repeated"):
        head_values(table.filter(~one), "estimate", [0, 1], every)
    with pytest.raises(ValueError, match=r"missing and 1 repeated"):
        head_values(pl.concat([table, table.head(1)]), "estimate", [0, 1], every)
    with pytest.raises(ValueError, match=r"outside the 2 heads and 5 examples"):
        head_values(table, "estimate", [0, 1], heads, None)  # the other 4 heads' rows


def test_score_sweep_reads_the_matrices() -> None:
    rng = np.random.default_rng(2)
    effects = rng.normal(0, 0.1, size=(2, 6))  # (S, H): 2 layers x 3 heads
    table, deltas = planted_sweep(rng, effects, 2, 3, 0.05, 40)
    sweep = score_sweep(table)
    assert sweep.seeds == [0, 1] and sweep.base == 0
    np.testing.assert_array_equal(sweep.examples, np.arange(100, 220, 3))
    np.testing.assert_allclose(sweep.deltas("head"), deltas, rtol=1e-12, atol=1e-12)
    assert sweep.units("layer")["layer"].to_list() == [1, 2]
    first = table.filter((pl.col("seed") == 1) & (pl.col("mask") == "L2-H1")).sort("example")
    np.testing.assert_array_equal(sweep.score[1, sweep.of_kind("head")[3]], first["score"].to_numpy())
    np.testing.assert_array_equal(sweep.pred[1, sweep.of_kind("head")[3]], first["prediction"].to_numpy())
    np.testing.assert_array_equal(sweep.gold, first["label"].to_numpy())
    # rows in any order: the masks in the order of their first rows, the same deltas per head
    shuffled = score_sweep(table.sample(fraction=1.0, shuffle=True, seed=3))
    order = shuffled.units("head").with_row_index("i").sort("layer", "head")["i"].to_numpy()
    np.testing.assert_allclose(shuffled.deltas("head")[:, order], deltas, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"no 'score' column"):
        score_sweep(table.drop("score"))
    with pytest.raises(ValueError, match=r"got modes \['uniform', 'zero'\]"):
        score_sweep(pl.concat([table, table.with_columns(mode=pl.lit("zero"))]))


def test_interval_fields() -> None:
    replicates = np.random.default_rng(4).normal(size=300)
    fields = interval_fields(0.5, replicates, 0.1)
    low, high = percentile_interval(replicates[:, None], 0.1)
    assert fields == {"value": 0.5, "ci_low": float(low[0]), "ci_high": float(high[0])}
    empty = interval_fields(1.0, np.full(10, np.nan), 0.05)
    assert empty["value"] == 1.0 and math.isnan(empty["ci_low"]) and math.isnan(empty["ci_high"])
