"""Crossed bootstrap, joint-swap permutation test, crossed variance and Benjamini-Hochberg of
`headlab.analysis.significance`.

Every seed is scored on the same dev examples, so the examples are crossed with the seeds. Proved
here, mostly against known answers and hand computations, and by seeded simulation where a
property is about a distribution:

* `weighted_deltas` and `crossed_deltas` are the metric differences of the explicitly resampled
  data (`np.repeat` of the rows, `metrics.METRICS`) for every metric; `crossed_deltas` draws ONE
  weight vector per replicate for every seed (identical seeds give identical replicates; the
  replicates are `weighted_deltas` under `bootstrap_weights` of an identically seeded generator,
  in blocks too); `crossed_weights` with strata keeps each stratum's size;
* constant differences give zero-width intervals at that difference (accuracy all right vs all
  wrong; Pearson of an increasing affine map; Spearman of reversed ranks); identical predictions
  give p == 1 for every metric, and float noise of ~1e-16 is no difference (`ZERO_SPREAD`);
* `swap_deltas` is the joint swap: for accuracy the permuted delta is, by hand,
  mean_i (1 - 2 z_i) (correct_mask_i - correct_base_i) with ONE swap vector z for every seed and
  mask; for F1, Matthews and Pearson it is the metric difference of explicitly swapped predictions,
  and for Spearman the Pearson difference of the pooled ranks swapped with the predictions;
* the swap test is calibrated under exchangeable nulls (rejection rate in [0.02, 0.08] over 300
  data sets) and a mask with exactly 4 discordant examples per seed rarely passes (at most
  0.05 + 2 Monte Carlo SE), for accuracy, F1 and a regression Pearson version;
* under a shared null (the same examples changed the same way in every seed) the crossed design
  rejects at most ~7 % while the old two-level bootstrap (independent example resamples per seed,
  then seeds with replacement) rejects clearly more; when the seeds truly differ the crossed t
  interval covers the mean over the seeds' population in 90-99 % of 300 data sets;
* `crossed_variance`: one seed -> that seed's bootstrap variance, df = inf; replicates identical
  across seeds -> that shared variance; constant replicates with spread seeds -> s^2 / S, df = S - 1;
  by hand C + A (shared example noise + the seeds' spread, the seed-specific noise U on an exact
  tie) on Satterthwaite's df (S - 1) V^2 / A^2; tied seeds keep their example noise; a NaN seed is
  left out;
* `benjamini_hochberg` matches a hand computation and `scipy.stats.false_discovery_control`;
  `percentile_interval` and `permutation_pvalues` are NaN when too few values are finite.

`pooled_inference` is p = max(crossed t, joint swap) with the t interval unchanged (it may
exclude 0 while p >= alpha, as documented).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from headlab.analysis import significance
from headlab.analysis.metrics import METRICS
from headlab.analysis.resampling import bootstrap_weights
from headlab.analysis.significance import (
    ZERO_SPREAD,
    StatisticsSettings,
    benjamini_hochberg,
    crossed_deltas,
    crossed_variance,
    crossed_weights,
    delta_inference,
    observed_deltas,
    percentile_interval,
    permutation_pvalues,
    pooled_inference,
    seed_inference,
    swap_deltas,
    t_pvalues,
    weighted_deltas,
)

RTOL, ATOL = 1e-9, 1e-12
ALPHA = 0.05
CLASSIFICATION = ("accuracy", "f1", "matthews")
ALL_METRICS = sorted(METRICS)


# --- data ----------------------------------------------------------------------------------------


def classification_seeds(
    rng: np.random.Generator, seeds: int, masks: int, n: int, classes: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gold (n,), base (S, n), pred (S, K, n)): class indices right about 70 % of the time."""
    gold = rng.integers(0, classes, n)

    def draw(shape: tuple[int, ...]) -> np.ndarray:
        return np.where(rng.random(shape) < 0.7, gold, rng.integers(0, classes, shape))

    return gold, draw((seeds, n)), draw((seeds, masks, n))


def regression_seeds(
    rng: np.random.Generator, seeds: int, masks: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gold (n,), base (S, n), pred (S, K, n)): gold ~ U(0, 5) plus N(0, 1) errors."""
    gold = rng.uniform(0.0, 5.0, n)
    return gold, gold + rng.normal(0.0, 1.0, (seeds, n)), gold + rng.normal(0.0, 1.0, (seeds, masks, n))


def data_for(
    metric: str, rng: np.random.Generator, seeds: int, masks: int, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary data for accuracy and F1, three classes for Matthews, floats for the correlations."""
    if metric in CLASSIFICATION:
        return classification_seeds(rng, seeds, masks, n, classes=3 if metric == "matthews" else 2)
    return regression_seeds(rng, seeds, masks, n)


def explicit_deltas(
    metric: str, weights: np.ndarray, pred: np.ndarray, base: np.ndarray, gold: np.ndarray
) -> np.ndarray:
    """(B, S, K) METRICS[metric](mask) - METRICS[metric](baseline) of every seed on the data
    with each example repeated weights[b] times: the same rows for every seed."""
    out = np.empty((weights.shape[0], *pred.shape[:2]))
    for b, w in enumerate(weights):
        rows = np.repeat(np.arange(gold.size), w.astype(int))
        for s in range(pred.shape[0]):
            reference = METRICS[metric](base[s, rows], gold[rows])
            out[b, s] = [METRICS[metric](p[rows], gold[rows]) - reference for p in pred[s]]
    return out


def block_draws(seed: int, total: int, n: int, draw: str) -> np.ndarray:
    """The draws of crossed_deltas ("weights") or swap_deltas ("swaps") from default_rng(seed):
    blocks of at most BLOCK_WEIGHTS // n rows, one call of the generator per block."""
    rng = np.random.default_rng(seed)
    block = max(1, significance.BLOCK_WEIGHTS // n)
    sizes = [min(block, total - start) for start in range(0, total, block)]
    if draw == "weights":
        return np.concatenate([bootstrap_weights(rng, size, n) for size in sizes])
    return np.concatenate([rng.integers(0, 2, size=(size, n)) for size in sizes])


def correct(pred: np.ndarray, gold: np.ndarray) -> np.ndarray:
    return (pred == gold).astype(np.float64)


# --- resampled deltas ----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_weighted_deltas_are_differences_on_the_explicitly_resampled_data(metric: str) -> None:
    rng = np.random.default_rng(1)
    gold, base, pred = data_for(metric, rng, 2, 2, 40)
    weights = bootstrap_weights(rng, 12, 40)
    weights[0] = 0.0
    weights[0, ::2] = 1.0  # a subset (0/1 weights) as well
    got = weighted_deltas(metric, weights, pred, base, gold)
    assert got.shape == (12, 2, 2)
    np.testing.assert_allclose(got, explicit_deltas(metric, weights, pred, base, gold), rtol=RTOL, atol=ATOL)
    # observed_deltas: all weights 1, or the subset `rows`
    np.testing.assert_allclose(
        observed_deltas(metric, pred, base, gold),
        explicit_deltas(metric, np.ones((1, 40)), pred, base, gold)[0],
        rtol=RTOL,
        atol=ATOL,
    )
    np.testing.assert_allclose(
        observed_deltas(metric, pred, base, gold, rows=np.arange(0, 40, 2)), got[0], rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_crossed_deltas_are_differences_on_one_resample_shared_by_the_seeds(metric: str) -> None:
    gold, base, pred = data_for(metric, np.random.default_rng(2), 3, 2, 40)
    got = crossed_deltas(metric, pred, base, gold, 15, np.random.default_rng(3))
    assert got.shape == (15, 3, 2)
    # explicit_deltas repeats the same rows in every seed: one weight vector per replicate
    weights = bootstrap_weights(np.random.default_rng(3), 15, 40)
    np.testing.assert_allclose(got, explicit_deltas(metric, weights, pred, base, gold), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "spearman"])
def test_identical_seeds_give_identical_replicates(metric: str) -> None:
    # three copies of one seed: with one weight vector per replicate for every seed, the replicates
    # are identical across the seed axis (independent resamples per seed would differ)
    gold, base, pred = data_for(metric, np.random.default_rng(4), 1, 2, 50)
    copies_pred, copies_base = np.repeat(pred, 3, axis=0), np.repeat(base, 3, axis=0)
    got = crossed_deltas(metric, copies_pred, copies_base, gold, 40, np.random.default_rng(5))
    for s in (1, 2):
        np.testing.assert_array_equal(got[:, s], got[:, 0])
    assert np.unique(got[:, 0, 0]).size > 5  # resampled, not one replicate repeated
    # and they are weighted_deltas under bootstrap_weights of an identically seeded generator
    weights = bootstrap_weights(np.random.default_rng(5), 40, 50)
    np.testing.assert_allclose(
        got, weighted_deltas(metric, weights, copies_pred, copies_base, gold), rtol=RTOL, atol=ATOL
    )


def test_crossed_deltas_in_blocks_share_each_replicates_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    # blocks of 100 // 30 = 3 resamples: 10 resamples come in 4 draws of the generator
    monkeypatch.setattr(significance, "BLOCK_WEIGHTS", 100)
    gold, base, pred = classification_seeds(np.random.default_rng(6), 2, 2, 30)
    got = crossed_deltas("matthews", pred, base, gold, 10, np.random.default_rng(7))
    weights = block_draws(7, 10, 30, "weights")
    assert weights.shape == (10, 30)
    np.testing.assert_allclose(
        got, explicit_deltas("matthews", weights, pred, base, gold), rtol=RTOL, atol=ATOL
    )


def test_crossed_weights_with_strata_keep_each_stratum_size() -> None:
    strata = [np.arange(0, 30), np.arange(30, 50), np.arange(50, 60)]
    weights = crossed_weights(np.random.default_rng(8), 200, 60, strata)
    assert weights.shape == (200, 60)
    np.testing.assert_array_equal(weights[:, :30].sum(1), 30)
    np.testing.assert_array_equal(weights[:, 30:50].sum(1), 20)
    np.testing.assert_array_equal(weights[:, 50:].sum(1), 10)
    assert np.array_equal(weights, np.round(weights)) and weights.min() >= 0
    # resampled within each stratum, not a fixed allocation
    assert np.unique(weights[:, :30], axis=0).shape[0] > 100
    # no strata: the plain bootstrap counts
    np.testing.assert_array_equal(
        crossed_weights(np.random.default_rng(9), 5, 60), bootstrap_weights(np.random.default_rng(9), 5, 60)
    )
    # crossed_deltas with strata uses exactly such weights
    gold, base, pred = classification_seeds(np.random.default_rng(10), 2, 1, 60)
    got = crossed_deltas("accuracy", pred, base, gold, 20, np.random.default_rng(11), strata)
    expected = weighted_deltas(
        "accuracy", crossed_weights(np.random.default_rng(11), 20, 60, strata), pred, base, gold
    )
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


# --- known answers -------------------------------------------------------------------------------


def test_constant_accuracy_difference_has_a_zero_width_interval() -> None:
    # baseline all wrong, mask all right in both seeds: every replicate's delta is 1 - 0 = 1
    gold = np.random.default_rng(12).integers(0, 2, 40)
    pred, base = np.stack([gold[None], gold[None]]), np.stack([1 - gold, 1 - gold])
    rng = np.random.default_rng(13)
    replicates = crossed_deltas("accuracy", pred, base, gold, 200, rng)
    np.testing.assert_array_equal(replicates, 1.0)
    low, high = percentile_interval(replicates[:, 0])
    assert (low[0], high[0]) == (1.0, 1.0)
    inference = pooled_inference(observed_deltas("accuracy", pred, base, gold), replicates, ALPHA)
    assert inference.estimate[0] == 1.0 and inference.se[0] == 0.0
    assert (inference.low[0], inference.high[0]) == (1.0, 1.0)
    assert inference.p[0] == 0.0  # no spread, delta 1: the t test rejects (no floor)
    # the joint swap: |permuted delta| = 1 only if all or none of the 40 examples are swapped, so
    # the permutation p is its floor 1 / (1 + P) and the pooled p is that
    swaps = swap_deltas("accuracy", pred, base, gold, 500, rng)
    with_swaps = pooled_inference(observed_deltas("accuracy", pred, base, gold), replicates, ALPHA, swaps)
    assert with_swaps.p[0] == pytest.approx(1 / 501, rel=RTOL)


def test_affine_regression_mask_has_a_zero_width_pearson_interval_and_p_one() -> None:
    # mask = 2 x baseline + 3 has the baseline's Pearson r on every resample: delta 0 up to float noise
    gold, base, _ = regression_seeds(np.random.default_rng(14), 2, 1, 60)
    pred = 2.0 * base[:, None] + 3.0
    rng = np.random.default_rng(15)
    observed = observed_deltas("pearson", pred, base, gold)
    replicates = crossed_deltas("pearson", pred, base, gold, 200, rng)
    np.testing.assert_allclose(replicates, 0.0, atol=1e-12)
    low, high = percentile_interval(replicates[:, 0])
    assert high[0] - low[0] == pytest.approx(0.0, abs=1e-12) and low[0] == pytest.approx(0.0, abs=1e-12)
    # the swaps do change r (a mix of the two scales), but |observed| is float noise: p == 1
    inference = pooled_inference(
        observed, replicates, ALPHA, swap_deltas("pearson", pred, base, gold, 500, rng)
    )
    assert inference.p[0] == 1.0
    assert inference.low[0] == pytest.approx(0.0, abs=1e-12) and inference.high[0] == pytest.approx(
        0.0, abs=1e-12
    )


def test_reversed_ranks_have_a_constant_spearman_difference() -> None:
    # baseline = gold (rho = 1) and mask = -exp(gold) (rho = -1) on every resample: delta -2
    gold = np.random.default_rng(16).uniform(0.0, 2.0, 50)
    pred, base = -np.exp(gold)[None, None], gold[None]
    replicates = crossed_deltas("spearman", pred, base, gold, 200, np.random.default_rng(17))
    np.testing.assert_allclose(replicates, -2.0, rtol=RTOL, atol=ATOL)
    inference = pooled_inference(observed_deltas("spearman", pred, base, gold), replicates, ALPHA)
    assert inference.estimate[0] == pytest.approx(-2.0, rel=RTOL)
    assert inference.low[0] == pytest.approx(-2.0, rel=RTOL) and inference.high[0] == pytest.approx(
        -2.0, rel=RTOL
    )


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_identical_predictions_have_p_one(metric: str) -> None:
    gold, base, _ = data_for(metric, np.random.default_rng(18), 2, 1, 60)
    pred = np.repeat(base[:, None], 2, axis=1)  # two masks equal to the baseline in both seeds
    observed, permuted = swap_deltas(metric, pred, base, gold, 500, np.random.default_rng(19))
    np.testing.assert_array_equal(observed, 0.0)
    assert permuted.shape == (500, 2, 2)
    for s in range(2):
        np.testing.assert_array_equal(permutation_pvalues(observed[s], permuted[:, s]), [1.0, 1.0])
    settings = StatisticsSettings(resamples=200, permutations=500, alpha=0.05, seed=0)
    inference = delta_inference(metric, pred, base, gold, settings, np.random.default_rng(20))
    # p == 1 even where the matrix products of the pooled path add float noise (~1e-16 for Pearson)
    np.testing.assert_array_equal(inference.p, [1.0, 1.0])
    for values in (inference.estimate, inference.low, inference.high):
        np.testing.assert_allclose(values, 0.0, atol=ZERO_SPREAD)


def test_float_noise_is_no_difference() -> None:
    # a metric that adds noise of ~1e-16 to identical predictions: far below ZERO_SPREAD
    rng = np.random.default_rng(21)
    observed = rng.normal(0.0, 1e-16, (3, 2))
    replicates = rng.normal(0.0, 1e-16, (200, 3, 2))
    permuted = rng.normal(0.0, 1e-16, (500, 3, 2))
    assert pooled_inference(observed, replicates, ALPHA).p.tolist() == [1.0, 1.0]
    assert pooled_inference(observed, replicates, ALPHA, (observed, permuted)).p.tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(permutation_pvalues(observed[0], permuted[:, 0]), [1.0, 1.0])
    # the tolerance is ZERO_SPREAD: a constant delta 100 times larger with no spread is a difference
    constant = np.full((3, 1), 100 * ZERO_SPREAD)
    assert pooled_inference(constant, np.broadcast_to(constant, (200, 3, 1)), ALPHA).p[0] == 0.0
    assert t_pvalues(np.array([0.5 * ZERO_SPREAD]), np.array([0.0]), np.array([np.inf]))[0] == 1.0


# --- the joint swap ------------------------------------------------------------------------------


@pytest.mark.parametrize("block_weights", [None, 100])
def test_accuracy_swaps_by_hand(monkeypatch: pytest.MonkeyPatch, block_weights: int | None) -> None:
    # swapped example i: the mask and the baseline trade predictions, so its contribution to the
    # delta changes sign: permuted delta = mean_i (1 - 2 z_i) (correct_mask_i - correct_base_i), with
    # the same swap vector z in every seed and for every mask
    if block_weights is not None:  # blocks of 100 // 30 = 3 permutations
        monkeypatch.setattr(significance, "BLOCK_WEIGHTS", block_weights)
    n, permutations = 30, 40
    gold, base, pred = classification_seeds(np.random.default_rng(22), 3, 2, n)
    observed, permuted = swap_deltas("accuracy", pred, base, gold, permutations, np.random.default_rng(23))
    difference = correct(pred, gold) - correct(base, gold)[:, None]  # (S, K, n)
    np.testing.assert_allclose(observed, difference.mean(-1), rtol=RTOL, atol=ATOL)
    z = block_draws(23, permutations, n, "swaps")  # (P, n)
    expected = np.einsum("pn,skn->psk", 1.0 - 2.0 * z, difference) / n
    np.testing.assert_allclose(permuted, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("metric", ["f1", "matthews", "pearson"])
def test_swaps_are_metric_differences_of_explicitly_swapped_predictions(metric: str) -> None:
    n = 40
    gold, base, pred = data_for(metric, np.random.default_rng(24), 2, 2, n)
    observed, permuted = swap_deltas(metric, pred, base, gold, 2, np.random.default_rng(25))
    z = np.random.default_rng(25).integers(0, 2, size=(2, n)).astype(bool)
    m = METRICS[metric]
    for s in range(2):
        for k in range(2):
            assert observed[s, k] == pytest.approx(m(pred[s, k], gold) - m(base[s], gold), rel=RTOL, abs=ATOL)
            for p in range(2):
                mask = np.where(z[p], base[s], pred[s, k])
                reference = np.where(z[p], pred[s, k], base[s])
                expected = m(mask, gold) - m(reference, gold)
                assert permuted[p, s, k] == pytest.approx(expected, rel=RTOL, abs=ATOL)


def test_spearman_swaps_use_the_pooled_ranks() -> None:
    # the statistic is Pearson's r of the ranks of mask and baseline pooled (2n values) with the
    # ranks of gold; a swap moves an example's ranks along with its predictions
    n = 40
    gold, base, pred = regression_seeds(np.random.default_rng(26), 2, 1, n)
    observed, permuted = swap_deltas("spearman", pred, base, gold, 3, np.random.default_rng(27))
    z = np.random.default_rng(27).integers(0, 2, size=(3, n)).astype(bool)
    gold_ranks = stats.rankdata(gold)
    r = METRICS["pearson"]
    for s in range(2):
        ranks = stats.rankdata(np.concatenate([pred[s, 0], base[s]]))
        mask_ranks, base_ranks = ranks[:n], ranks[n:]
        expected = r(mask_ranks, gold_ranks) - r(base_ranks, gold_ranks)
        assert observed[s, 0] == pytest.approx(expected, rel=RTOL, abs=ATOL)
        for p in range(3):
            swapped = r(np.where(z[p], base_ranks, mask_ranks), gold_ranks) - r(
                np.where(z[p], mask_ranks, base_ranks), gold_ranks
            )
            assert permuted[p, s, 0] == pytest.approx(swapped, rel=RTOL, abs=ATOL)


def test_permutation_pvalues_count_the_observed_and_handle_nan() -> None:
    rng = np.random.default_rng(28)
    gold, base, _ = classification_seeds(rng, 1, 1, 200)
    # the mask corrects 30 of the baseline's wrong predictions and breaks none
    mask = base[0].copy()
    fixed = rng.choice(np.flatnonzero(mask != gold), 30, replace=False)
    mask[fixed] = gold[fixed]
    observed, permuted = swap_deltas("accuracy", mask[None, None], base, gold, 1000, rng)
    p = permutation_pvalues(observed[0], permuted[:, 0])[0]
    assert p == pytest.approx(1 / 1001)  # the observed statistic counts: p >= 1 / (1 + P)
    assert permutation_pvalues(observed[0], permuted[:, 0], "greater")[0] == pytest.approx(1 / 1001)
    assert permutation_pvalues(-observed[0], -permuted[:, 0], "greater")[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="alternative"):
        permutation_pvalues(observed[0], permuted[:, 0], "less")
    # by hand: |permuted| >= |observed| counts, NaN observed or < 95 % finite permuted values give NaN
    table = np.array([[0.1, 0.3, 0.0], [-0.3, 0.1, 0.0], [0.2, np.nan, np.nan], [0.0, 0.2, 0.0]])
    table = np.concatenate([table, np.zeros((36, 3))])  # 40 permutations: one NaN is 97.5 % finite
    table[4:6, 2] = np.nan  # column 2: 37 of 40 finite (92.5 %)
    got = permutation_pvalues(np.array([0.2, 0.2, 0.0]), table)
    assert got[0] == pytest.approx((1 + 2) / (1 + 40))  # -0.3 and 0.2
    assert got[1] == pytest.approx((1 + 2) / (1 + 39))  # 0.3 and 0.2, over the 39 finite values
    assert np.isnan(got[2])
    assert np.isnan(permutation_pvalues(np.array([np.nan]), np.zeros((10, 1)))[0])


# --- calibration under the null ------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_swap_test_is_calibrated_under_an_exchangeable_null(metric: str) -> None:
    # 300 null data sets of 3 seeds: the baseline and the mask right independently with probability
    # 0.5 on each example (i.i.d., so exchangeable; about 50 discordant examples, so the statistic
    # is not too discrete). The swap test is exact: one seed's test and the joint swap of the mean
    # over seeds reject at about 5 % (4.6 % and 4.9 % over 3000 such data sets); [0.02, 0.08] is
    # about +-2.4 binomial SE (0.0126).
    rng = np.random.default_rng(43)
    seed_p, pooled_p = [], []
    for _ in range(300):
        gold = rng.integers(0, 2, 100)
        base = np.where(rng.random((3, 100)) < 0.5, gold, 1 - gold)
        pred = np.where(rng.random((3, 1, 100)) < 0.5, gold, 1 - gold)
        observed, permuted = swap_deltas(metric, pred, base, gold, 500, rng)
        seed_p.append(permutation_pvalues(observed[0], permuted[:, 0])[0])
        pooled_p.append(permutation_pvalues(observed.mean(0), permuted.mean(1))[0])
    for p in (np.array(seed_p), np.array(pooled_p)):
        assert np.all((p > 0) & (p <= 1))
        assert 0.02 <= np.mean(p < ALPHA) <= 0.08, np.mean(p < ALPHA)


def four_discordant(rng: np.random.Generator, metric: str, seeds: int = 3, n: int = 100) -> tuple:
    """(gold, base (S, n), pred (S, 1, n)): the mask differs from the baseline on exactly 4 examples
    per seed, each a fair coin in direction (classification: the baseline's correctness there is a
    coin, the mask the other label; regression: the mask redraws the baseline's error there)."""
    if metric == "pearson":
        gold, base, _ = regression_seeds(rng, seeds, 1, n)
    else:
        gold = rng.integers(0, 2, n)
        base = np.where(rng.random((seeds, n)) < 0.75, gold, 1 - gold)
    pred = base[:, None].copy()
    for s in range(seeds):
        rows = rng.choice(n, 4, replace=False)
        if metric == "pearson":
            pred[s, 0, rows] = gold[rows] + rng.normal(0.0, 1.0, 4)
        else:
            base[s, rows] = np.where(rng.random(4) < 0.5, gold[rows], 1 - gold[rows])
            pred[s, 0, rows] = 1 - base[s, rows]
    return gold, base, pred


@pytest.mark.parametrize("metric", ["accuracy", "f1", "pearson"])
def test_four_discordant_examples_rarely_pass(metric: str) -> None:
    # one seed's swap test has 2^4 equally likely swaps of the 4 discordant examples: p >= 2 / 16;
    # the pooled test (crossed t and joint swap of 3 seeds) is exact as well. Over 300 null data sets
    # each rejects at most alpha + 2 Monte Carlo SE.
    rng = np.random.default_rng(30)
    reps = 300
    seed_reject = pooled_reject = 0
    for _ in range(reps):
        gold, base, pred = four_discordant(rng, metric)
        observed = observed_deltas(metric, pred, base, gold)
        replicates = crossed_deltas(metric, pred, base, gold, 200, rng)
        swaps = swap_deltas(metric, pred, base, gold, 500, rng)
        seed_reject += permutation_pvalues(swaps[0][0], swaps[1][:, 0])[0] < ALPHA
        pooled_reject += pooled_inference(observed, replicates, ALPHA, swaps).p[0] < ALPHA
    bound = ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / reps)
    assert seed_reject / reps <= bound
    assert pooled_reject / reps <= bound, pooled_reject / reps


def old_two_level(pred: np.ndarray, base: np.ndarray, gold: np.ndarray, resamples: int, rng) -> np.ndarray:
    """(B, K) the OLD method: independent example resamples in each seed, then seeds drawn with
    replacement and averaged (it ignores that the seeds share the examples)."""
    seeds = pred.shape[0]
    per_seed = np.stack(
        [
            weighted_deltas(
                "accuracy",
                bootstrap_weights(rng, resamples, gold.size),
                pred[s : s + 1],
                base[s : s + 1],
                gold,
            )[:, 0]
            for s in range(seeds)
        ],
        axis=1,
    )  # (B, S, K)
    drawn = rng.integers(0, seeds, (resamples, seeds))
    return per_seed[np.arange(resamples)[:, None], drawn].mean(axis=1)


def shared_null(rng: np.random.Generator, seeds: int = 3, n: int = 200, flips: int = 12) -> tuple:
    """(gold, base (S, n), pred (S, 1, n)): the mask flips the same `flips` examples in every seed;
    on those the baseline's correctness is a fair coin shared by the seeds (elsewhere each seed's
    baseline is right with probability 0.75 on its own)."""
    gold = rng.integers(0, 2, n)
    base = np.where(rng.random((seeds, n)) < 0.75, gold, 1 - gold)
    rows = rng.choice(n, flips, replace=False)
    base[:, rows] = np.where(rng.random(flips) < 0.5, gold[rows], 1 - gold[rows])[None]
    pred = base[:, None].copy()
    pred[:, 0, rows] = 1 - base[:, rows]
    return gold, base, pred


def test_shared_null_crossed_design_versus_the_old_two_level_bootstrap() -> None:
    # every seed has the SAME delta (the same examples changed the same way), so the mean over
    # seeds is as noisy as one seed: the crossed replicates see it, the old method divides the
    # example noise by the number of seeds
    rng = np.random.default_rng(31)
    reps, new, old = 200, 0, 0
    for _ in range(reps):
        gold, base, pred = shared_null(rng)
        observed = observed_deltas("accuracy", pred, base, gold)
        np.testing.assert_allclose(observed, observed[:1].repeat(3, axis=0), atol=ATOL)  # one delta
        replicates = crossed_deltas("accuracy", pred, base, gold, 200, rng)
        swaps = swap_deltas("accuracy", pred, base, gold, 500, rng)
        new += pooled_inference(observed, replicates, ALPHA, swaps).p[0] < ALPHA
        two_level = old_two_level(pred, base, gold, 200, rng)[:, 0]
        sd = two_level.std(ddof=1)
        old_p = 2 * stats.norm.sf(abs(observed.mean()) / sd) if sd > 0 else float(observed.mean() == 0)
        old += old_p < ALPHA  # the old bootstrap (Wald) test
    assert new / reps <= 0.07, new / reps
    # the old method: 14 % here (its standard error is about sqrt(5 / 9) of the truth)
    assert old / reps >= 2 * new / reps or old / reps > 0.10, (old / reps, new / reps)
    assert old > new


def test_crossed_t_interval_covers_the_seed_population_mean() -> None:
    # seed s's true delta is mu + tau_s, tau_s ~ N(0, 2 points^2); on each of n examples the mask
    # differs from the baseline with probability h, then fixes it with probability (1 + d_s / h) / 2
    # (so the count of changes is random). The pooled interval targets mu, the mean over seeds.
    rng = np.random.default_rng(32)
    mu, tau, h, n, seeds, reps = 0.03, 0.02, 0.25, 400, 3, 300
    covered, dfs = 0, []
    for _ in range(reps):
        gold = rng.integers(0, 2, n)
        truth = np.clip(mu + rng.normal(0.0, tau, seeds), -h, h)
        differ = rng.random((seeds, n)) < h
        fixes = rng.random((seeds, n)) < (1 + truth[:, None] / h) / 2
        right = rng.random(n) < 0.7  # where the mask agrees with the baseline
        base_right = np.where(differ, ~fixes, right[None])
        mask_right = np.where(differ, fixes, right[None])
        base = np.where(base_right, gold, 1 - gold)
        pred = np.where(mask_right, gold, 1 - gold)[:, None]
        observed = observed_deltas("accuracy", pred, base, gold)
        inference = pooled_inference(observed, crossed_deltas("accuracy", pred, base, gold, 300, rng), ALPHA)
        covered += inference.low[0] <= mu <= inference.high[0]
        dfs.append(inference.df[0])
    assert 0.90 <= covered / reps <= 0.99, covered / reps
    assert np.all(np.array(dfs) >= seeds - 1)  # Satterthwaite: at least the seed part's S - 1


# --- crossed_variance ----------------------------------------------------------------------------


def test_crossed_variance_of_one_seed_is_its_bootstrap_variance() -> None:
    rng = np.random.default_rng(33)
    observed = rng.normal(size=(1, 3))
    replicates = rng.normal(size=(500, 1, 3)) * np.array([0.5, 1.0, 2.0])
    estimate, variance, df = crossed_variance(observed, replicates)
    np.testing.assert_allclose(estimate, observed[0], rtol=RTOL)
    np.testing.assert_allclose(variance, replicates[:, 0].var(axis=0, ddof=1), rtol=RTOL)
    assert np.all(np.isinf(df))


def test_crossed_variance_of_shared_noise_is_that_variance() -> None:
    # replicates identical across 3 seeds (the seeds share all example noise) and equal deltas:
    # the mean over seeds is exactly as noisy as one seed, and no seed part is estimated
    rng = np.random.default_rng(34)
    shared = rng.normal(0.02, 0.01, (500, 2))
    replicates = np.repeat(shared[:, None], 3, axis=1)
    observed = np.full((3, 2), 0.02)
    estimate, variance, df = crossed_variance(observed, replicates)
    np.testing.assert_allclose(estimate, 0.02, rtol=RTOL)
    np.testing.assert_allclose(variance, shared.var(axis=0, ddof=1), rtol=1e-9)
    assert np.all(df > 1e12)  # no seed part to estimate: infinite (up to float noise in Sigma)


def test_crossed_variance_of_spread_seeds_without_example_noise() -> None:
    # constant replicates in each seed: only the seeds' spread, s^2 / S on S - 1 df
    observed = np.random.default_rng(35).normal(size=(4, 2))
    replicates = np.broadcast_to(observed, (300, 4, 2))
    estimate, variance, df = crossed_variance(observed, replicates)
    np.testing.assert_allclose(estimate, observed.mean(0), rtol=RTOL)
    np.testing.assert_allclose(variance, observed.var(axis=0, ddof=1) / 4, rtol=RTOL)
    np.testing.assert_allclose(df, 3.0, rtol=RTOL)


def test_crossed_variance_leaves_out_a_nan_seed_and_needs_finite_replicates() -> None:
    rng = np.random.default_rng(36)
    observed = rng.normal(size=(3, 2))
    replicates = observed[None] + rng.normal(0.0, 0.1, (400, 3, 2)) + rng.normal(0.0, 0.1, (400, 1, 2))
    observed[1, 0] = np.nan
    replicates[:, 1, 0] = np.nan  # seed 1 has no delta for mask 0
    got = crossed_variance(observed, replicates)
    kept = crossed_variance(observed[[0, 2], :1], replicates[:, [0, 2], :1])
    for a, b in zip(got, kept, strict=True):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-12)
    assert np.all(np.isfinite([g[1] for g in got]))
    replicates[:25, 2, 1] = np.nan  # 93.75 % finite in a kept seed: too few
    assert all(np.isnan(g[1]) for g in crossed_variance(observed, replicates))


def test_equal_seed_deltas_keep_their_example_noise() -> None:
    # two seeds with exactly the same delta (discrete metrics tie) and independent example noise of
    # sd 0.01 each: the mean's variance is about 0.01^2 / 2, not 0 (the spread of 0 does not show
    # that the seeds' noise is independent)
    rng = np.random.default_rng(37)
    observed = np.full((2, 1), 0.01)
    replicates = 0.01 + rng.normal(0.0, 0.01, (1000, 2, 1))
    _, variance, _ = crossed_variance(observed, replicates)
    assert variance[0] >= 0.5 * np.cov(replicates[:, :, 0].T).sum() / 4
    assert pooled_inference(observed, replicates, ALPHA).p[0] > 0.1  # t = 0.01 / 0.0071 = 1.4


def hand_variance(observed: np.ndarray, replicates: np.ndarray) -> tuple[float, float]:
    """(variance, df) of one column by the docstring of crossed_variance: Sigma the (S, S)
    covariance of the replicates, U = (tr Sigma - 1'Sigma1 / S) / (S (S - 1)), C = 1'Sigma1 / S^2 - U
    (the shared noise), A = s^2 / S (U when every seed's delta ties); V = C + A on
    df = (S - 1) V^2 / A^2."""
    seeds = observed.size
    sigma = np.cov(replicates.T)
    own = max((np.trace(sigma) - sigma.sum() / seeds) / (seeds * (seeds - 1)), 0.0)
    shared = max(sigma.sum() / seeds**2 - own, 0.0)
    spread = observed.var(ddof=1) / seeds
    spread = own if spread <= ZERO_SPREAD**2 else spread
    variance = shared + spread
    return variance, (seeds - 1) * variance**2 / spread**2


def test_crossed_variance_by_hand() -> None:
    rng = np.random.default_rng(38)
    shared = rng.normal(0.0, 0.01, (1000, 1, 4))
    own = rng.normal(0.0, 0.01, (1000, 3, 4)) * np.array([1.0, 1.0, 1.0, 2.0])
    # columns: seeds spread far beyond their noise; spread within the noise; no shared noise;
    # an exact tie (a discrete metric)
    shared[:, :, 2] = 0.0
    observed = np.array([[0.0, 0.010, 0.010, 0.02], [0.08, 0.018, 0.004, 0.02], [0.03, 0.012, 0.02, 0.02]])
    replicates = observed[None] + shared + own
    _, variance, df = crossed_variance(observed, replicates)
    for k in range(4):
        expected_variance, expected_df = hand_variance(observed[:, k], replicates[:, :, k])
        assert variance[k] == pytest.approx(expected_variance, rel=1e-9), k
        assert df[k] == pytest.approx(expected_df, rel=1e-9), k
    # the tie keeps the seed-specific noise U (sd 0.02 per seed over 3 seeds: about 0.02^2 / 3)
    assert variance[3] > 0.5 * (0.01**2 + 0.02**2 / 3)


# --- pooled and seed inference -------------------------------------------------------------------


def test_pooled_p_is_the_larger_of_the_t_and_the_joint_swap_p() -> None:
    rng = np.random.default_rng(48)
    gold, base, pred = classification_seeds(rng, 3, 4, 150)
    pred[:, 0] = np.where(rng.random((3, 150)) < 0.1, gold, pred[:, 0])  # a mask a little better
    observed = observed_deltas("accuracy", pred, base, gold)
    replicates = crossed_deltas("accuracy", pred, base, gold, 300, rng)
    swaps = swap_deltas("accuracy", pred, base, gold, 1000, rng)
    plain = pooled_inference(observed, replicates, ALPHA)
    both = pooled_inference(observed, replicates, ALPHA, swaps)
    permutation = permutation_pvalues(swaps[0].mean(0), swaps[1].mean(1))
    np.testing.assert_allclose(both.p, np.maximum(plain.p, permutation), rtol=RTOL)
    np.testing.assert_allclose(both.estimate, observed.mean(0), rtol=RTOL, atol=ATOL)
    # the interval is the t interval of the crossed variance
    half = stats.t.ppf(1 - ALPHA / 2, plain.df) * plain.se
    np.testing.assert_allclose(plain.low, plain.estimate - half, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(plain.high, plain.estimate + half, rtol=RTOL, atol=ATOL)


def test_the_interval_stays_the_t_interval_whatever_the_swap_p() -> None:
    # the documented contract: p = max(t p, swap p), but the interval is the t interval (pooled) or
    # the percentile interval (seed), so it can exclude 0 while p >= alpha; verdicts read both.
    # Here the t interval excludes 0 (delta 0.1, shared sd 0.01) and the swap p-value is about 0.5.
    rng = np.random.default_rng(39)
    observed = np.full((3, 1), 0.1)
    replicates = np.repeat(rng.normal(0.1, 0.01, (300, 1, 1)), 3, axis=1)
    permuted = rng.normal(0.0, 0.15, (500, 3, 1))
    plain = pooled_inference(observed, replicates, ALPHA)
    pooled = pooled_inference(observed, replicates, ALPHA, (observed, permuted))
    assert plain.p[0] < ALPHA <= pooled.p[0]
    assert (pooled.low[0], pooled.high[0]) == (plain.low[0], plain.high[0])
    assert pooled.low[0] > 0
    seed = seed_inference(observed[0], replicates[:, 0], np.array([0.5]), ALPHA)
    low, high = percentile_interval(replicates[:, 0], ALPHA)
    assert (seed.low[0], seed.high[0]) == (low[0], high[0]) and seed.low[0] > 0 and seed.p[0] == 0.5


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
    p = np.random.default_rng(40).random(40) ** 3
    p[5] = p[6] = p[7]  # ties
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q, stats.false_discovery_control(p), rtol=RTOL)
    assert np.all(q >= p * (1 - 1e-12)) and np.all(q <= 1.0)  # p m / m may round down by an ulp


# --- percentile_interval -------------------------------------------------------------------------


def test_percentile_interval_is_the_quantiles_of_the_finite_replicates() -> None:
    replicates = np.random.default_rng(41).normal(size=(400, 3))
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
    inference = seed_inference(np.ones(3), replicates, np.array([0.01, 0.01, 0.01]), ALPHA)
    assert (inference.low[0], inference.high[0]) == (1.0, 1.0) and inference.se[0] == 0.0
    assert np.isnan(inference.low[1:]).all() and np.all(np.isinf(inference.df))
