"""The weighted metrics of `headlab.analysis.resampling` are the plain metrics of resampled data.

Proved here:

* with all weights 1, every weighted metric equals `headlab.analysis.metrics.METRICS[name]`;
* with the counts of a bootstrap resample, each equals the plain metric of the explicitly
  resampled data (`np.repeat` of the examples by their counts), with ties in regression values
  (values rounded to one decimal) and for a three-class Matthews correlation; with 0/1 weights it
  is the metric of the subset;
* `weighted_ranks` are the average ranks the copies get in the resampled data;
* `bootstrap_weights` rows are counts summing to the number of drawn examples, only the indices
  `among` get weight, and the same seed gives the same weights;
* the degenerate cases follow metrics.py: constant predictions give NaN Pearson / Spearman and
  Matthews 0, F1 without a true positive is 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from headlab.analysis.metrics import METRICS
from headlab.analysis.resampling import WEIGHTED_METRICS, bootstrap_weights, weighted_metric, weighted_ranks

RTOL, ATOL = 1e-9, 1e-12
CLASSIFICATION = ("accuracy", "f1", "matthews")
REGRESSION = ("pearson", "spearman")


def classification_data(
    rng: np.random.Generator, n: int, models: int, classes: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Gold class indices (n,) and predictions (models, n) that agree with gold about 70 % of the time."""
    gold = rng.integers(0, classes, n)
    other = rng.integers(0, classes, (models, n))
    pred = np.where(rng.random((models, n)) < 0.7, gold[None], other)
    return pred, gold


def regression_data(
    rng: np.random.Generator, n: int, models: int, decimals: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Gold floats (n,) and noisy predictions (models, n); rounded to `decimals` to force ties."""
    gold = rng.uniform(0.0, 5.0, n)
    pred = gold[None] + rng.normal(0.0, 1.0, (models, n))
    if decimals is not None:
        gold, pred = np.round(gold, decimals), np.round(pred, decimals)
    return pred, gold


def data_for(name: str, rng: np.random.Generator, n: int, models: int) -> tuple[np.ndarray, np.ndarray]:
    return classification_data(rng, n, models) if name in CLASSIFICATION else regression_data(rng, n, models)


def resampled_metric(name: str, counts: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> float:
    """The plain metric of the data with each example repeated `counts` times."""
    rows = np.repeat(np.arange(gold.size), counts.astype(int))
    return METRICS[name](pred[rows], gold[rows])


def explicit(name: str, weights: np.ndarray, pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(B, K) plain metric of every resample (rows of `weights`) and model (rows of `pred`)."""
    return np.array([[resampled_metric(name, w, p, gold) for p in pred] for w in weights])


def test_every_plain_metric_has_a_weighted_form() -> None:
    assert set(WEIGHTED_METRICS) == set(METRICS)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_unit_weights_equal_the_plain_metric(name: str) -> None:
    pred, gold = data_for(name, np.random.default_rng(1), 80, 3)
    got = weighted_metric(name, np.ones((1, gold.size)), pred, gold)
    assert got.shape == (1, 3)
    expected = [METRICS[name](p, gold) for p in pred]
    np.testing.assert_allclose(got[0], expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_bootstrap_counts_equal_the_metric_of_the_resampled_data(name: str) -> None:
    rng = np.random.default_rng(2)
    pred, gold = data_for(name, rng, 60, 3)
    weights = bootstrap_weights(rng, 25, gold.size)
    got = weighted_metric(name, weights, pred, gold)
    assert got.shape == (25, 3)
    np.testing.assert_allclose(got, explicit(name, weights, pred, gold), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", REGRESSION)
def test_resampled_correlations_with_ties(name: str) -> None:
    rng = np.random.default_rng(3)
    pred, gold = regression_data(rng, 60, 3, decimals=1)
    # values on a 0.1 grid over a few units: many ties within gold and within each prediction
    assert np.unique(gold).size < gold.size and all(np.unique(p).size < p.size for p in pred)
    weights = bootstrap_weights(rng, 25, gold.size)
    got = weighted_metric(name, weights, pred, gold)
    np.testing.assert_allclose(got, explicit(name, weights, pred, gold), rtol=RTOL, atol=ATOL)


def test_resampled_spearman_with_heavy_ties() -> None:
    # integer scores 0..3: every example shares its value with about a quarter of the others
    rng = np.random.default_rng(4)
    gold = rng.integers(0, 4, 50).astype(float)
    pred = np.clip(gold[None] + rng.integers(-1, 2, (2, 50)), 0, 3).astype(float)
    weights = bootstrap_weights(rng, 20, gold.size)
    got = weighted_metric("spearman", weights, pred, gold)
    np.testing.assert_allclose(got, explicit("spearman", weights, pred, gold), rtol=RTOL, atol=ATOL)


def test_three_class_matthews() -> None:
    rng = np.random.default_rng(5)
    pred, gold = classification_data(rng, 90, 3, classes=3)
    assert set(np.unique(gold)) == {0, 1, 2}
    ones = np.ones((1, gold.size))
    np.testing.assert_allclose(
        weighted_metric("matthews", ones, pred, gold)[0],
        [METRICS["matthews"](p, gold) for p in pred],
        rtol=RTOL,
        atol=ATOL,
    )
    weights = bootstrap_weights(rng, 25, gold.size)
    got = weighted_metric("matthews", weights, pred, gold)
    np.testing.assert_allclose(got, explicit("matthews", weights, pred, gold), rtol=RTOL, atol=ATOL)


def test_matthews_with_a_class_only_predicted() -> None:
    # class 2 is predicted but never gold: it still takes part in the confusion matrix
    gold = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    pred = np.array([[0, 1, 2, 1, 0, 2, 1, 1]])
    got = weighted_metric("matthews", np.ones((1, 8)), pred, gold)[0, 0]
    assert got == pytest.approx(METRICS["matthews"](pred[0], gold), rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_zero_one_weights_are_the_metric_of_the_subset(name: str) -> None:
    rng = np.random.default_rng(6)
    pred, gold = data_for(name, rng, 60, 2)
    rows = np.sort(rng.choice(gold.size, 25, replace=False))
    weights = np.zeros((1, gold.size))
    weights[0, rows] = 1.0
    got = weighted_metric(name, weights, pred, gold)[0]
    expected = [METRICS[name](p[rows], gold[rows]) for p in pred]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_weighted_ranks_are_the_ranks_of_the_copies() -> None:
    rng = np.random.default_rng(7)
    values = np.round(rng.uniform(0.0, 2.0, 40), 1)  # ties
    weights = bootstrap_weights(rng, 15, values.size)
    ranks = weighted_ranks(values, weights)
    assert ranks.shape == (15, 40)
    for w, r in zip(weights, ranks, strict=True):
        rows = np.repeat(np.arange(values.size), w.astype(int))
        # every copy of an example gets the example's average rank in the resampled data
        np.testing.assert_allclose(r[rows], stats.rankdata(values[rows]), rtol=RTOL, atol=ATOL)


def test_weighted_ranks_with_unit_weights_are_scipy_ranks() -> None:
    values = np.array([3.0, 1.0, 2.0, 1.0, 3.0, 3.0])
    # hand: 1.0 x2 -> ranks 1, 2 -> 1.5; 2.0 -> 3; 3.0 x3 -> ranks 4, 5, 6 -> 5
    expected = np.array([5.0, 1.5, 3.0, 1.5, 5.0, 5.0])
    np.testing.assert_array_equal(weighted_ranks(values, np.ones((1, 6)))[0], expected)


def test_bootstrap_weights_are_counts_summing_to_n() -> None:
    weights = bootstrap_weights(np.random.default_rng(8), 50, 30)
    assert weights.shape == (50, 30)
    assert weights.dtype == np.float64
    assert np.all(weights >= 0) and np.array_equal(weights, np.round(weights))
    np.testing.assert_array_equal(weights.sum(axis=1), np.full(50, 30.0))
    assert not np.all(weights == 1.0)  # resampled, not the identity


def test_bootstrap_weights_among_a_subset() -> None:
    among = np.array([2, 5, 7, 11, 19])
    weights = bootstrap_weights(np.random.default_rng(9), 200, 20, among=among)
    assert weights.shape == (200, 20)
    outside = np.setdiff1d(np.arange(20), among)
    assert np.all(weights[:, outside] == 0.0)
    np.testing.assert_array_equal(weights.sum(axis=1), np.full(200, float(among.size)))
    assert np.all(weights[:, among].sum(axis=0) > 0)  # every member is drawn in some resample


def test_same_seed_same_weights() -> None:
    first = bootstrap_weights(np.random.default_rng(10), 20, 40)
    again = bootstrap_weights(np.random.default_rng(10), 20, 40)
    other = bootstrap_weights(np.random.default_rng(11), 20, 40)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("name", REGRESSION)
def test_constant_predictions_give_nan_correlations(name: str) -> None:
    rng = np.random.default_rng(12)
    gold = rng.uniform(0.0, 5.0, 30)
    # 0.1 is not exact in binary: "no variance" must survive the rounding of the weighted sums
    pred = np.stack([np.full(30, 0.1), np.full(30, 2.0), gold + rng.normal(0.0, 1.0, 30)])
    weights = np.concatenate([np.ones((1, 30)), bootstrap_weights(rng, 10, 30)])
    got = weighted_metric(name, weights, pred, gold)
    assert np.all(np.isnan(got[:, :2]))
    assert np.all(np.isfinite(got[:, 2]))
    assert math.isnan(METRICS[name](pred[0], gold))  # as the plain metric
    # constant gold: undefined for every model
    assert np.all(np.isnan(weighted_metric(name, np.ones((1, 30)), pred, np.full(30, 1.5))))


@pytest.mark.parametrize("name", REGRESSION)
def test_a_resample_of_one_example_gives_nan_correlations(name: str) -> None:
    pred, gold = regression_data(np.random.default_rng(13), 10, 2)
    weights = np.zeros((1, 10))
    weights[0, 3] = 10.0  # the resample drew example 3 ten times: both sides are constant
    assert np.all(np.isnan(weighted_metric(name, weights, pred, gold)))


def test_constant_predictions_give_zero_matthews() -> None:
    rng = np.random.default_rng(14)
    gold = rng.integers(0, 2, 30)
    pred = np.stack([np.ones(30, dtype=int), np.zeros(30, dtype=int)])
    weights = np.concatenate([np.ones((1, 30)), bootstrap_weights(rng, 10, 30)])
    got = weighted_metric("matthews", weights, pred, gold)
    np.testing.assert_array_equal(got, np.zeros_like(got))
    assert METRICS["matthews"](pred[0], gold) == 0.0
    # constant gold too
    np.testing.assert_array_equal(weighted_metric("matthews", np.ones((1, 30)), gold[None], np.ones(30)), 0.0)


def test_f1_without_true_positive_is_zero() -> None:
    gold = np.array([1, 1, 0, 0, 1])
    pred = np.stack([np.zeros(5, dtype=int), 1 - gold])  # no positive predicted; all wrong
    got = weighted_metric("f1", np.ones((1, 5)), pred, gold)[0]
    np.testing.assert_array_equal(got, [0.0, 0.0])
    assert [METRICS["f1"](p, gold) for p in pred] == [0.0, 0.0]


def test_one_dimensional_inputs_are_one_resample_of_one_model() -> None:
    pred, gold = classification_data(np.random.default_rng(15), 20, 1)
    got = weighted_metric("accuracy", np.ones(20), pred[0], gold)
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(METRICS["accuracy"](pred[0], gold), rel=RTOL, abs=ATOL)


def test_unknown_metric_raises() -> None:
    with pytest.raises(ValueError, match="no weighted form"):
        weighted_metric("bleu", np.ones((1, 3)), np.ones((1, 3)), np.ones(3))
