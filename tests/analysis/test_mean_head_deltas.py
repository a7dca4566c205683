"""Figure 8's note, the mean delta over single heads (`headlab.analysis.ablation_summary`), by hand.

Deltas are multiples of 1/8 so their sums are exact; a mean that divides by three is compared
with assert_allclose (rtol 1e-12, atol 0).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from headlab.analysis.ablation_summary import mean_head_delta, mean_head_deltas


def table() -> pl.DataFrame:
    rows = [
        # task, kind, layer, head, metric, delta
        ("B", "baseline", None, None, "f1", 0.0),
        ("B", "layer", 1, None, "f1", 4.0),  # layer rows are not heads
        ("B", "head", 1, 1, "f1", 0.25),
        ("B", "head", 1, 2, "f1", -0.5),
        ("B", "head", 2, 1, "f1", 0.125),
        ("B", "head", 2, 2, "f1", float("nan")),  # left out
        ("B", "head", 3, 1, "f1", None),  # left out
        ("B", "head", 1, 1, "accuracy", 1.0),  # another metric
        ("A", "head", 1, 1, "accuracy", 0.5),
        ("A", "head", 1, 2, "accuracy", 0.25),
        ("C", "head", 1, 1, "mcc", float("nan")),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "task": pl.String,
            "kind": pl.String,
            "layer": pl.Int32,
            "head": pl.Int32,
            "metric": pl.String,
            "delta": pl.Float64,
        },
        orient="row",
    )


def test_mean_over_the_heads_of_one_metric() -> None:
    np.testing.assert_allclose(
        mean_head_delta(table(), "B", "f1"), (0.25 - 0.5 + 0.125) / 3, rtol=1e-12, atol=0
    )
    assert mean_head_delta(table(), "B", "accuracy") == 1.0
    assert mean_head_delta(table(), "A", "accuracy") == 0.375
    assert math.isnan(mean_head_delta(table(), "C", "mcc"))  # no finite delta


def test_every_task_of_the_table_in_its_order() -> None:
    deltas = mean_head_deltas(table(), {"A": "accuracy", "B": "f1", "C": "mcc", "Z": "f1"})
    assert list(deltas) == ["B", "A", "C"]  # table order; Z is not in the table
    assert deltas["A"] == 0.375 and deltas["B"] == mean_head_delta(table(), "B", "f1")
    assert list(mean_head_deltas(table(), {"A": "accuracy"})) == ["A"]  # a task without a metric: none


def test_errors_name_the_task() -> None:
    with pytest.raises(ValueError, match=r"'A'.*metric 'f1'.*\['accuracy'\]"):
        mean_head_deltas(table(), {"A": "f1"})
    with pytest.raises(ValueError, match=r"'B'.*no head"):
        mean_head_delta(table().filter(pl.col("kind") != "head"), "B", "f1")
