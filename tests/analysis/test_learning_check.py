"""The learning check: hand-computed rows, the best constant, errors, and the paired standard error
against a simulation with a known answer (its size, the false "beats" rate when the two models are
equally good, and its power when the fine-tuned one is better)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from headlab.analysis.learning_check import (
    MAJORITY,
    SE_MULTIPLE,
    constant_prediction,
    learning_check,
    learning_markdown,
    paired_difference,
    task_verdicts,
)
from headlab.conditions import FINETUNED, PRETRAINED


def predictions(task: str, seed: int, label, tuned, plain) -> pl.DataFrame:
    """Rule evaluate's predictions of one seed: the finetuned and pretrained conditions."""
    n = len(label)
    return pl.concat(
        pl.DataFrame(
            {
                "model": ["m"] * n,
                "task": [task] * n,
                "seed": [seed] * n,
                "condition": [condition] * n,
                "example": list(range(n)),
                "prediction": [float(p) for p in values],
                "label": [float(x) for x in label],
                "score": [0.0] * n,
            }
        )
        for condition, values in ((FINETUNED, tuned), (PRETRAINED, plain))
    )


def test_rows_match_a_hand_computation() -> None:
    label = [1, 1, 1, 0, 0, 1, 1, 0]  # majority class 1: 5 of 8
    tuned = [1, 1, 1, 0, 0, 1, 0, 0]  # 7 of 8 correct
    plain = [0, 0, 1, 1, 0, 1, 1, 1]  # 4 of 8 correct
    table = learning_check(predictions("MRPC", 42, label, tuned, plain), regression_tasks=set())
    by_reference = {row["reference"]: row for row in table.iter_rows(named=True)}
    majority = by_reference[MAJORITY]
    assert majority["finetuned"] == pytest.approx(7 / 8)
    assert majority["reference_value"] == pytest.approx(5 / 8)
    d = np.array([0, 0, 0, 1, 1, 0, -1, 1], dtype=float)  # tuned correct - majority correct
    assert majority["difference"] == pytest.approx(d.mean())
    assert majority["paired_se"] == pytest.approx(d.std(ddof=1) / math.sqrt(8))
    assert majority["margin"] == pytest.approx(d.mean() / (d.std(ddof=1) / math.sqrt(8)))
    assert majority["beats"] == (d.mean() > SE_MULTIPLE * d.std(ddof=1) / math.sqrt(8))
    plain_row = by_reference[PRETRAINED]
    assert plain_row["reference_value"] == pytest.approx(4 / 8)
    assert plain_row["measure"] == "accuracy" and plain_row["n_examples"] == 8


def test_regression_uses_minus_the_squared_error_and_the_dev_mean() -> None:
    label = np.array([0.0, 1.0, 2.0, 5.0])
    tuned = np.array([0.5, 1.0, 2.5, 4.0])
    plain = np.array([3.0, 3.0, 3.0, 3.0])
    table = learning_check(predictions("STS-B", 1, label, tuned, plain), regression_tasks={"STS-B"})
    majority = table.filter(pl.col("reference") == MAJORITY).row(0, named=True)
    assert majority["measure"] == "neg_mse"
    assert majority["finetuned"] == pytest.approx(-np.mean((tuned - label) ** 2))
    assert majority["reference_value"] == pytest.approx(-np.mean((label - label.mean()) ** 2))


def test_constant_prediction_is_the_most_frequent_class_smallest_on_a_tie() -> None:
    assert constant_prediction(np.array([2.0, 1.0, 2.0, 0.0]), regression=False) == 2.0
    assert constant_prediction(np.array([1.0, 0.0, 1.0, 0.0]), regression=False) == 0.0
    assert constant_prediction(np.array([1.0, 2.0, 6.0]), regression=True) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="no dev examples"):
        constant_prediction(np.array([]), regression=False)


def test_degenerate_differences_give_infinite_or_nan_margins() -> None:
    same = np.ones(5)
    assert math.isnan(paired_difference(same, same)[2])
    assert paired_difference(same, np.zeros(5))[2] == math.inf
    assert paired_difference(np.zeros(5), same)[2] == -math.inf
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference(np.ones(1), np.zeros(1))
    with pytest.raises(ValueError, match="different examples"):
        paired_difference(np.ones(3), np.zeros(4))
    with pytest.raises(ValueError, match="1 non-finite"):
        paired_difference(np.array([1.0, np.nan, 0.0]), np.zeros(3))


def test_missing_condition_or_other_examples_stop_with_the_seed_named() -> None:
    table = predictions("RTE", 43, [0, 1, 1], [0, 1, 1], [1, 1, 0])
    with pytest.raises(ValueError, match="RTE seed 43: no pretrained"):
        learning_check(table.filter(pl.col("condition") == FINETUNED), set())
    shifted = table.with_columns(
        pl.when(pl.col("condition") == PRETRAINED).then(pl.col("example") + 1).otherwise(pl.col("example"))
    )
    with pytest.raises(ValueError, match="different examples"):
        learning_check(shifted, set())
    diverged = predictions("STS-B", 44, [0.5, 1.0, 2.0], [np.nan, 1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="STS-B seed 44 against majority: 1 non-finite"):
        learning_check(diverged, {"STS-B"})
    with pytest.raises(ValueError, match="no predictions"):
        learning_check(table.clear(), set())


def test_verdicts_and_markdown_need_every_seed_to_beat_both() -> None:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 400)
    good = np.where(rng.random(400) < 0.9, label, 1 - label)  # 90 % correct
    chance = rng.integers(0, 2, 400)  # 50 % correct
    table = pl.concat(
        [
            predictions("MRPC", 42, label, good, chance),
            predictions("MRPC", 43, label, good, chance),
            predictions("RTE", 42, label, good, chance),
            predictions("RTE", 43, label, chance, chance),  # a seed that did not learn
        ]
    )
    verdicts = task_verdicts(learning_check(table, set()))
    assert verdicts["learns"].to_list() == [True, False]
    assert verdicts.filter(pl.col("task") == "RTE")["beat_majority"].item() == 1
    text = learning_markdown(learning_check(table, set()))
    assert "m on MRPC: learns: 2 of 2 seed(s)" in text
    assert "m on RTE: does **not** clearly learn: 1 of 2 seed(s) beat majority" in text
    assert text.count("\n| m |") == 8


def simulate(rng: np.random.Generator, n: int, p_tuned: float, p_plain: float) -> tuple[float, float, bool]:
    """One dev set: binary labels, two independent models with the given accuracies."""
    label = rng.integers(0, 2, n)
    tuned = np.where(rng.random(n) < p_tuned, label, 1 - label)
    plain = np.where(rng.random(n) < p_plain, label, 1 - label)
    table = learning_check(predictions("X", 0, label, tuned, plain), set())
    row = table.filter(pl.col("reference") == PRETRAINED)
    return row["difference"].item(), row["paired_se"].item(), row["beats"].item()


def test_paired_se_matches_the_spread_of_the_difference_over_simulated_dev_sets() -> None:
    """Known answer: over 300 dev sets of 277 examples (RTE's size), the standard deviation of the
    difference is what the paired SE estimates; the false 'beats' rate of equal models is about
    one-sided 2.3 % (bound 6 %), and a true gain of 15 points (about 3.5 SE) is found almost always."""
    rng = np.random.default_rng(7)
    null = [simulate(rng, 277, 0.6, 0.6) for _ in range(300)]
    differences = np.array([d for d, _, _ in null])
    mean_se = np.mean([se for _, se, _ in null])
    assert mean_se == pytest.approx(differences.std(ddof=1), rel=0.12)
    assert np.mean([beats for _, _, beats in null]) <= 0.06
    power = np.mean([simulate(rng, 277, 0.75, 0.6)[2] for _ in range(200)])
    assert power >= 0.85
