"""The pruning curves summarised (`headlab.analysis.pruning_summary`).

A synthetic pruning predictions table (issue 21 table 4: 24 heads pruned in steps of 6, 200 dev
examples, 3 seeds, orders importance and delta (draw 0) and random (draws 1, 2)) in which every
(seed, order, draw, step) gets exactly a planned number of right predictions, so each curve's
accuracy is known exactly.

Proved here:

* `value` is the planned accuracy averaged over the draws within each seed, then over the seeds;
  `seed_low` / `seed_high` the smallest / largest seed's; `baseline` step 0's; the interval
  contains the value and is as wide as a normal interval of the mean over the examples of their
  correctness (averaged over draws and seeds: the crossed resample), within 30 %; n_pruned,
  share_pruned, n_seeds, n_draws, n_examples as planned; a second task with its own metric (F1
  by a task -> metric mapping) equals `headlab.analysis.metrics.f1_binary` of the predictions;
* the resamples are crossed: curves with identical predictions get identical intervals;
* `prunable_share` on hand-made curves: the largest share whose every step is within max_cost of
  the baseline (a step exactly at the boundary passes despite float rounding), the conservative
  share from ci_low, NaN values fail, a NaN baseline gives NaN shares, n_heads;
* errors name the cause: a step whose n_pruned differs between seeds, an order without step 0,
  curves on different examples.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from headlab.analysis.metrics import f1_binary
from headlab.analysis.pruning_summary import (
    PRUNABLE_SCHEMA,
    PRUNING_SUMMARY_SCHEMA,
    prunable_share,
    pruning_summary,
)
from headlab.analysis.significance import StatisticsSettings

EXAMPLES, SEEDS, HEADS, STEPS = 200, 3, 24, 5
SETTINGS = StatisticsSettings(resamples=200, permutations=100, alpha=0.05, seed=9)
RTOL, ATOL = 1e-12, 1e-12
CURVES = [("importance", 0), ("delta", 0), ("random", 1), ("random", 2)]


def planned_right(seed: int, order: str, draw: int, step: int) -> int:
    """How many of the 200 examples the curve predicts right: 170 unpruned (every order),
    falling with the step, fastest for random, a little different in each seed and draw."""
    if step == 0:
        return 170 - 4 * seed
    slope = {"importance": 3, "delta": 5, "random": 12}[order]
    return 170 - 4 * seed - slope * step - 2 * draw - (seed * step) % 3


def curve_rows(
    task: str, seed: int, order: str, draw: int, step: int, right: int, gold: np.ndarray
) -> pl.DataFrame:
    """The predictions of one curve step: `right` examples drawn at random (seeded) are right;
    step 0 (the unpruned model) is the same predictions in every order and draw of a seed."""
    rng = np.random.default_rng([seed, 0, 0, 0] if step == 0 else [seed, draw, step, len(order)])
    correct = np.zeros(EXAMPLES, dtype=bool)
    correct[rng.permutation(EXAMPLES)[:right]] = True
    prediction = np.where(correct, gold, 1 - gold)
    n_pruned = 6 * step
    return pl.DataFrame(
        {
            "model": "synthetic",
            "task": task,
            "seed": np.full(EXAMPLES, seed, np.int64),
            "order": order,
            "draw": np.full(EXAMPLES, draw, np.int64),
            "step": np.full(EXAMPLES, step, np.int64),
            "n_pruned": np.full(EXAMPLES, n_pruned, np.int64),
            "share_pruned": np.full(EXAMPLES, n_pruned / HEADS),
            "example": np.arange(1000, 1000 + EXAMPLES, dtype=np.int64)[::-1],  # rows in any order
            "prediction": prediction[::-1].astype(np.float64),
            "label": gold[::-1].astype(np.float64),
            "score": np.where(correct, -0.1, -2.0)[::-1],
        }
    )


def predictions(task: str = "SYN") -> pl.DataFrame:
    gold = np.random.default_rng(1).integers(0, 2, EXAMPLES)
    frames = [
        curve_rows(task, seed, order, draw, step, planned_right(seed, order, draw, step), gold)
        for seed in range(SEEDS)
        for order, draw in CURVES
        for step in range(STEPS)
    ]
    return pl.concat(frames).sample(fraction=1.0, shuffle=True, seed=2)  # rows in any order


def planned_value(order: str, step: int) -> tuple[float, float, float]:
    """(mean over seeds of the mean over draws, lowest seed, highest seed) of the accuracy."""
    draws = [d for o, d in CURVES if o == order]
    per_seed = [np.mean([planned_right(s, order, d, step) / EXAMPLES for d in draws]) for s in range(SEEDS)]
    return float(np.mean(per_seed)), float(min(per_seed)), float(max(per_seed))


def example_spread(table: pl.DataFrame, order: str, step: int) -> float:
    """The standard error of the mean over examples of each example's correctness averaged over
    draws, then seeds: the bootstrap's standard error of the value (its interval about +-1.96 x)."""
    rows = table.filter((pl.col("order") == order) & (pl.col("step") == step))
    per_example = (
        rows.with_columns(right=(pl.col("prediction") == pl.col("label")).cast(pl.Float64))
        .group_by("seed", "example")
        .agg(pl.col("right").mean())
        .group_by("example")
        .agg(pl.col("right").mean())["right"]
        .to_numpy()
    )
    return float(per_example.std() / np.sqrt(EXAMPLES))


def test_values_are_the_planned_accuracies_and_intervals_contain_them() -> None:
    table = predictions()
    summary = pruning_summary(table, "accuracy", SETTINGS)
    assert dict(summary.schema) == PRUNING_SUMMARY_SCHEMA
    assert summary.height == 3 * STEPS
    for row in summary.iter_rows(named=True):
        value, low, high = planned_value(row["order"], row["step"])
        assert row["value"] == pytest.approx(value, rel=RTOL, abs=ATOL), row
        assert row["seed_low"] == pytest.approx(low, rel=RTOL, abs=ATOL), row
        assert row["seed_high"] == pytest.approx(high, rel=RTOL, abs=ATOL), row
        assert row["baseline"] == pytest.approx(planned_value(row["order"], 0)[0], rel=RTOL, abs=ATOL)
        assert row["ci_low"] < row["value"] < row["ci_high"], row
        # the width of a normal 95 % interval of the mean over examples, up to 30 % (200 resamples)
        expected_width = 2 * 1.96 * example_spread(table, row["order"], row["step"])
        assert row["ci_high"] - row["ci_low"] == pytest.approx(expected_width, rel=0.3), row
        assert row["n_pruned"] == 6 * row["step"] and row["share_pruned"] == pytest.approx(row["step"] / 4)
        assert row["n_seeds"] == SEEDS and row["n_examples"] == EXAMPLES
        assert row["n_draws"] == (2 if row["order"] == "random" else 1)
        assert (row["metric"], row["model"], row["task"]) == ("accuracy", "synthetic", "SYN")


def test_several_tasks_each_with_its_metric() -> None:
    table = pl.concat([predictions("SYN"), predictions("OTHER")])
    summary = pruning_summary(table, {"SYN": "accuracy", "OTHER": "f1"}, SETTINGS)
    other = table.filter((pl.col("task") == "OTHER") & (pl.col("order") == "delta") & (pl.col("step") == 2))
    per_seed = [
        f1_binary(part.sort("example")["prediction"].to_numpy(), part.sort("example")["label"].to_numpy())
        for part in other.partition_by("seed")
    ]
    row = summary.filter((pl.col("task") == "OTHER") & (pl.col("order") == "delta") & (pl.col("step") == 2))
    assert row["metric"][0] == "f1"
    assert row["value"][0] == pytest.approx(np.mean(per_seed), rel=RTOL, abs=ATOL)
    assert row["seed_low"][0] == pytest.approx(min(per_seed), rel=RTOL, abs=ATOL)
    assert set(summary["task"]) == {"SYN", "OTHER"}


def test_identical_curves_get_identical_intervals() -> None:
    """Step 0 is the same predictions in every order: the same resamples give the same interval."""
    summary = pruning_summary(predictions(), "accuracy", SETTINGS)
    start = summary.filter(pl.col("step") == 0)
    assert start["ci_low"].n_unique() == 1 and start["ci_high"].n_unique() == 1


def hand_curve(values: list[float], ci_low: list[float], baseline: float = 0.8) -> pl.DataFrame:
    steps = len(values)
    return pl.DataFrame(
        {
            "model": "m",
            "task": "T",
            "order": "importance",
            "step": np.arange(steps, dtype=np.int64),
            "n_pruned": np.arange(steps, dtype=np.int64) * 12,
            "share_pruned": np.arange(steps) * 12 / 144,
            "metric": "accuracy",
            "value": values,
            "ci_low": ci_low,
            "baseline": baseline,
            "drop_low": np.asarray(ci_low) - baseline,  # the paired bound, as far below as ci_low
        }
    )


def test_prunable_share_on_hand_made_curves() -> None:
    # max_cost 0.01: 0.79 = 0.8 - 0.01 passes (float rounding aside), 0.785 fails at step 3
    curve = hand_curve([0.8, 0.795, 0.79, 0.785, 0.81], [0.77, 0.79, 0.78, 0.76, 0.80])
    table = prunable_share(curve, 0.01)
    assert dict(table.schema) == PRUNABLE_SCHEMA
    row = table.row(0, named=True)
    assert row["share"] == pytest.approx(24 / 144, rel=RTOL)  # step 2; step 4 comes after a failure
    assert row["share_conservative"] == pytest.approx(12 / 144, rel=RTOL)  # ci_low 0.78 < 0.79 at step 2
    assert row["n_heads"] == 144 and row["max_cost"] == 0.01
    # a larger allowance: every step passes
    assert prunable_share(curve, 0.05)["share"][0] == pytest.approx(48 / 144, rel=RTOL)
    # no step but the first passes: share 0 (nothing pruned)
    assert prunable_share(hand_curve([0.8, 0.7], [0.7, 0.6]), 0.01)["share"][0] == 0.0
    # a NaN value fails its step
    assert prunable_share(hand_curve([0.8, 0.8, math.nan, 0.8], [0.8] * 4), 0.01)["share"][
        0
    ] == pytest.approx(12 / 144)
    nan_baseline = prunable_share(hand_curve([math.nan, 0.8], [0.7, 0.7], baseline=math.nan), 0.01).row(
        0, named=True
    )
    assert math.isnan(nan_baseline["share"]) and math.isnan(nan_baseline["share_conservative"])


def test_prunable_share_of_a_summary() -> None:
    summary = pruning_summary(predictions(), "accuracy", SETTINGS)
    table = prunable_share(summary, 0.02)
    shares = dict(zip(table["order"], table["share"], strict=True))
    # from 0.83: importance's step 1 costs exactly 0.02 (passes at the boundary), its step 2 0.035;
    # delta's step 1 costs 0.03, random's more
    assert shares == {"delta": 0.0, "importance": 0.25, "random": 0.0}
    assert set(table["n_heads"]) == {HEADS}
    # the paired interval of the change: zero at step 0, around the observed change after
    start = summary.filter(pl.col("step") == 0)
    assert (start["drop_low"] == 0).all() and (start["drop_high"] == 0).all()
    later = summary.filter(pl.col("step") > 0)
    inside = (later["drop_low"] <= later["value"] - later["baseline"] + 1e-12) & (
        later["value"] - later["baseline"] <= later["drop_high"] + 1e-12
    )
    assert inside.all()


def test_errors_name_the_cause() -> None:
    table = predictions()
    odd = table.with_columns(
        n_pruned=pl.when((pl.col("seed") == 1) & (pl.col("step") == 2)).then(13).otherwise(pl.col("n_pruned"))
    )
    with pytest.raises(ValueError, match=r"n_pruned differs"):
        pruning_summary(odd, "accuracy", SETTINGS)
    with pytest.raises(ValueError, match=r"order\(s\) \['delta'\] have no step 0"):
        pruning_summary(
            table.filter((pl.col("order") != "delta") | (pl.col("step") > 0)), "accuracy", SETTINGS
        )
    shifted = table.with_columns(
        example=pl.when(pl.col("seed") == 2).then(pl.col("example") + 1).otherwise(pl.col("example"))
    )
    with pytest.raises(ValueError, match=r"same 200 distinct dev examples"):
        pruning_summary(shifted, "accuracy", SETTINGS)
