"""Paired bootstrap intervals, p-values and Benjamini-Hochberg of `headlab.analysis.significance`.

Proved here, mostly against known answers:

* `paired_deltas` are the metric differences of the same explicit resamples; a constant
  difference (baseline all wrong, model all right; a regression model that is an increasing
  affine map of the baseline) gives a zero-width interval at that difference;
* `subset_deltas` are the plain metric differences on the subset;
* identical predictions give p == 1 in the sign-flip test and in the bootstrap test; a strongly
  shifted model gets a small sign-flip p, and under the null the sign-flip test rejects at about
  its level (seeded, 200 null data sets);
* `benjamini_hochberg` matches a hand computation and scipy, NaN p-values stay NaN and do not
  count in m;
* `two_level` with one seed only returns that seed's replicates, and with constant seeds means
  of drawn seeds;
* `percentile_interval` and `bootstrap_pvalues` are NaN when fewer than 95 % of the replicates
  are finite.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from headlab.analysis import significance
from headlab.analysis.metrics import METRICS
from headlab.analysis.resampling import bootstrap_weights
from headlab.analysis.significance import (
    benjamini_hochberg,
    bootstrap_pvalues,
    paired_deltas,
    percentile_interval,
    sign_flip_pvalues,
    subset_deltas,
    two_level,
)

RTOL, ATOL = 1e-9, 1e-12


def binary_data(rng: np.random.Generator, n: int, models: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gold (n,), a baseline (n,) and models (models, n), each right about 75 % of the time."""
    gold = rng.integers(0, 2, n)
    baseline = np.where(rng.random(n) < 0.75, gold, 1 - gold)
    pred = np.where(rng.random((models, n)) < 0.75, gold[None], 1 - gold[None])
    return gold, baseline, pred


# --- paired_deltas and subset_deltas -------------------------------------------------------------


def test_paired_deltas_are_differences_on_the_same_explicit_resamples() -> None:
    gold, baseline, pred = binary_data(np.random.default_rng(0), 50, 3)
    got = paired_deltas("f1", pred, baseline, gold, 30, np.random.default_rng(1))
    assert got.shape == (30, 3)
    # one block (30 x 50 weights is far below BLOCK_WEIGHTS): the same draws as bootstrap_weights
    weights = bootstrap_weights(np.random.default_rng(1), 30, 50)
    expected = np.empty((30, 3))
    for b, w in enumerate(weights):
        rows = np.repeat(np.arange(50), w.astype(int))
        base = METRICS["f1"](baseline[rows], gold[rows])
        expected[b] = [METRICS["f1"](p[rows], gold[rows]) - base for p in pred]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_paired_deltas_among_a_subset_only_resample_it() -> None:
    gold, baseline, pred = binary_data(np.random.default_rng(2), 40, 2)
    among = np.arange(0, 40, 2)
    got = paired_deltas("accuracy", pred, baseline, gold, 20, np.random.default_rng(3), among=among)
    weights = bootstrap_weights(np.random.default_rng(3), 20, 40, among=among)
    correct = (pred == gold).astype(float) - (baseline == gold).astype(float)  # (K, n)
    np.testing.assert_allclose(got, weights @ correct.T / among.size, rtol=RTOL, atol=ATOL)


def test_paired_deltas_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # blocks of 100 // 30 = 3 resamples: 10 resamples come in 4 blocks and still pair each model
    # with the baseline on the same resample (here the model is the baseline: all deltas 0)
    monkeypatch.setattr(significance, "BLOCK_WEIGHTS", 100)
    gold, baseline, _ = binary_data(np.random.default_rng(4), 30, 1)
    got = paired_deltas(
        "matthews", np.stack([baseline, baseline]), baseline, gold, 10, np.random.default_rng(5)
    )
    assert got.shape == (10, 2)
    np.testing.assert_array_equal(got, 0.0)


def test_constant_accuracy_difference_has_a_zero_width_interval() -> None:
    # baseline all wrong, model all right: every resample's accuracy delta is 1 - 0 = 1
    gold = np.random.default_rng(6).integers(0, 2, 40)
    replicates = paired_deltas("accuracy", gold[None], 1 - gold, gold, 200, np.random.default_rng(7))
    np.testing.assert_array_equal(replicates, 1.0)
    low, high = percentile_interval(replicates)
    assert (low[0], high[0]) == (1.0, 1.0)
    # no spread and a non-zero observed delta: the Wald test gives 0 (no floor of 1 / B)
    assert bootstrap_pvalues(replicates, np.array([1.0]))[0] == 0.0


def test_affine_regression_model_has_a_zero_width_pearson_interval() -> None:
    # model = 2 x baseline + 3 has the baseline's Pearson r on every resample: delta 0 each time
    rng = np.random.default_rng(8)
    gold = rng.uniform(0.0, 5.0, 60)
    baseline = gold + rng.normal(0.0, 1.0, 60)
    replicates = paired_deltas("pearson", 2.0 * baseline[None] + 3.0, baseline, gold, 200, rng)
    np.testing.assert_allclose(replicates, 0.0, atol=1e-12)
    low, high = percentile_interval(replicates)
    assert high[0] - low[0] == pytest.approx(0.0, abs=1e-12)
    assert low[0] == pytest.approx(0.0, abs=1e-12)


def test_reversed_ranks_have_a_constant_spearman_difference() -> None:
    # baseline = gold (rho = 1) and model = -exp(gold) (reversed ranks, rho = -1), on every resample
    # with at least two distinct values: delta -2
    rng = np.random.default_rng(9)
    gold = rng.uniform(0.0, 2.0, 50)
    replicates = paired_deltas("spearman", -np.exp(gold)[None], gold, gold, 200, rng)
    np.testing.assert_allclose(replicates, -2.0, rtol=RTOL, atol=ATOL)
    low, high = percentile_interval(replicates)
    assert low[0] == pytest.approx(-2.0, rel=RTOL) and high[0] == pytest.approx(-2.0, rel=RTOL)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_subset_deltas_are_plain_differences_on_the_subset(metric: str) -> None:
    rng = np.random.default_rng(10)
    if metric in ("pearson", "spearman"):
        gold = rng.uniform(0.0, 5.0, 60)
        baseline = gold + rng.normal(0.0, 1.0, 60)
        pred = gold[None] + rng.normal(0.0, 1.0, (3, 60))
    else:
        gold, baseline, pred = binary_data(rng, 60, 3)
    rows = np.sort(rng.choice(60, 30, replace=False))
    got = subset_deltas(metric, pred, baseline, gold, rows)
    base = METRICS[metric](baseline[rows], gold[rows])
    expected = [METRICS[metric](p[rows], gold[rows]) - base for p in pred]
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


# --- p-values ------------------------------------------------------------------------------------


def test_sign_flip_of_identical_predictions_is_one() -> None:
    gold, baseline, _ = binary_data(np.random.default_rng(11), 80, 1)
    correct = baseline == gold
    p = sign_flip_pvalues(np.stack([correct, correct]), correct, 500, np.random.default_rng(12))
    np.testing.assert_array_equal(p, [1.0, 1.0])


def test_bootstrap_pvalue_of_zero_replicates_is_one() -> None:
    assert bootstrap_pvalues(np.zeros((300, 2)), np.zeros(2)).tolist() == [1.0, 1.0]
    gold, baseline, _ = binary_data(np.random.default_rng(13), 50, 1)
    replicates = paired_deltas("f1", baseline[None], baseline, gold, 100, np.random.default_rng(14))
    assert bootstrap_pvalues(replicates, np.zeros(1))[0] == 1.0


def test_bootstrap_pvalue_by_hand() -> None:
    # replicates 1..9: sample sd sqrt(7.5) = 2.7386; observed 5.4772 is 2 sd from 0, and
    # 2 (1 - Phi(2)) = 0.045500 (the normal table's two-sided 2-sigma tail)
    replicates = np.arange(1.0, 10.0)[:, None]
    observed = np.array([2 * np.sqrt(7.5)])
    assert bootstrap_pvalues(replicates, observed)[0] == pytest.approx(0.0455003, rel=1e-5)
    # observed 0: p = 1
    assert bootstrap_pvalues(replicates, np.zeros(1))[0] == 1.0


def test_sign_flip_of_a_strongly_shifted_model_is_small() -> None:
    rng = np.random.default_rng(15)
    gold, baseline, _ = binary_data(rng, 200, 1)
    baseline_correct = baseline == gold
    # the model corrects 30 of the baseline's wrong predictions and breaks none
    wrong = np.flatnonzero(~baseline_correct)
    correct = baseline_correct.copy()
    correct[rng.choice(wrong, 30, replace=False)] = True
    p = sign_flip_pvalues(correct[None], baseline_correct, 1000, rng)[0]
    assert p < 0.01
    assert p >= 1 / 1001  # the observed statistic is counted


def test_sign_flip_is_calibrated_under_the_null() -> None:
    # 200 null data sets: baseline and model right independently with the same probability, so
    # every example's difference is symmetric around 0. The test rejects at about 5 %; the bounds
    # (0.01, 0.10) are about +-2.5 binomial standard errors (sqrt(.05 x .95 / 200) = 0.015) plus
    # room for the discreteness of a sign-flip test on 100 examples.
    rng = np.random.default_rng(16)
    p = np.array(
        [
            sign_flip_pvalues(rng.random((1, 100)) < 0.7, rng.random(100) < 0.7, 200, rng)[0]
            for _ in range(200)
        ]
    )
    share = float(np.mean(p < 0.05))
    assert 0.01 <= share <= 0.10, share
    assert np.all((p > 0) & (p <= 1))


# --- Benjamini-Hochberg --------------------------------------------------------------------------


def test_benjamini_hochberg_by_hand() -> None:
    # p = [0.01, 0.04, 0.03, 0.2], m = 4; sorted 0.01, 0.03, 0.04, 0.2 at ranks 1..4
    # p m / rank: 0.01 x 4 = 0.04, 0.03 x 4/2 = 0.06, 0.04 x 4/3 = 0.0533.., 0.2 x 4/4 = 0.2
    # running minimum from the largest rank down: 0.2, 0.0533.., min(0.06, 0.0533..) = 0.0533.., 0.04
    # back in input order: [0.04, 0.0533.., 0.0533.., 0.2]
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.2]))
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.2], rtol=RTOL)
    np.testing.assert_allclose(q, stats.false_discovery_control([0.01, 0.04, 0.03, 0.2]), rtol=RTOL)


def test_benjamini_hochberg_ignores_nan() -> None:
    # NaN entries stay NaN and m is the number of finite p-values (4), so the answers are those above
    q = benjamini_hochberg(np.array([np.nan, 0.01, 0.04, np.nan, 0.03, 0.2]))
    assert np.isnan(q[0]) and np.isnan(q[3])
    np.testing.assert_allclose(q[[1, 2, 4, 5]], [0.04, 0.16 / 3, 0.16 / 3, 0.2], rtol=RTOL)
    assert np.all(np.isnan(benjamini_hochberg(np.array([np.nan, np.nan]))))
    assert benjamini_hochberg(np.array([])).shape == (0,)


def test_benjamini_hochberg_against_scipy_with_ties() -> None:
    p = np.random.default_rng(17).random(40) ** 3
    p[5] = p[6] = p[7]  # ties
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q, stats.false_discovery_control(p), rtol=RTOL)
    assert np.all(q >= p) and np.all(q <= 1.0)


# --- two_level and percentile_interval -----------------------------------------------------------


def test_two_level_with_one_seed_draws_that_seeds_replicates() -> None:
    per_seed = (np.arange(50.0)[:, None] + np.array([0.0, 0.25])[None])[None]  # (1 seed, 50, 2 models)
    got = two_level(per_seed, np.random.default_rng(18))
    assert got.shape == (50, 2)
    # every row is one of the seed's replicate rows (both models from the same resample)
    rows = got[:, 0].astype(int)
    assert np.array_equal(got[:, 0], rows)
    np.testing.assert_array_equal(got, per_seed[0][rows])
    assert np.unique(rows).size > 1  # resampled, not one replicate repeated


def test_two_level_means_the_drawn_seeds() -> None:
    # three seeds with constant replicates 0, 1, 2: each replicate is the mean of 3 seeds drawn with
    # replacement, a multiple of 1/3 in [0, 2]; seeds are drawn, so not every mean is 1
    per_seed = np.broadcast_to(np.array([0.0, 1.0, 2.0])[:, None, None], (3, 400, 1))
    got = two_level(per_seed, np.random.default_rng(19))[:, 0]
    thirds = got * 3
    np.testing.assert_allclose(thirds, np.round(thirds), atol=1e-9)
    assert got.min() >= 0.0 and got.max() <= 2.0
    assert np.unique(np.round(thirds)).size > 3
    assert got.mean() == pytest.approx(1.0, abs=0.1)  # sd of one mean is sqrt(2/3) / sqrt(3) = 0.47


def test_percentile_interval_is_the_quantiles_of_the_finite_replicates() -> None:
    replicates = np.random.default_rng(20).normal(size=(400, 3))
    replicates[:10, 1] = np.nan  # 2.5 % not finite: still enough
    low, high = percentile_interval(replicates, alpha=0.1)
    finite = [column[np.isfinite(column)] for column in replicates.T]
    np.testing.assert_allclose(low, [np.quantile(c, 0.05) for c in finite], rtol=RTOL)
    np.testing.assert_allclose(high, [np.quantile(c, 0.95) for c in finite], rtol=RTOL)


def test_too_few_finite_replicates_give_nan() -> None:
    replicates = np.ones((100, 3))
    replicates[:5, 0] = np.nan  # 95 % finite: enough
    replicates[:6, 1] = np.nan  # 94 % finite: too few
    replicates[:3, 2], replicates[3:6, 2] = np.inf, -np.inf  # infinities are not finite either
    with np.errstate(all="ignore"):
        low, high = percentile_interval(replicates)
    assert (low[0], high[0]) == (1.0, 1.0)
    assert np.isnan(low[1:]).all() and np.isnan(high[1:]).all()
    p = bootstrap_pvalues(replicates, np.ones(3))
    assert p[0] == 0.0  # 95 finite replicates, all 1: no spread, observed 1
    assert np.isnan(p[1:]).all()
