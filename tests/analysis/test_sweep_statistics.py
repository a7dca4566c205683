"""The statistics of a whole sweep (`headlab.analysis.sweep_statistics`) on small synthetic sweeps.

A synthetic sweep (3 layers x 4 heads + 3 layers + the baseline, 400 dev examples, 2-3 seeds)
is built here as a predictions table of `SWEEP_PREDICTIONS_SCHEMA`. Under the null, every seed
has a reference prediction (right on about 75 % of the examples) and the baseline and every
mask are that reference with an independent random 3 % of its predictions flipped: the baseline
and a mask are exchangeable, so every mask's difference from the baseline is symmetric around 0.

Proved here:

* the observed values and deltas are the plain metrics of the predictions;
* a mask that corrects many of the baseline's wrong predictions is significant after BH, in
  each seed and pooled, with a positive delta and an interval above 0; masks identical to the
  baseline have delta 0, a zero-width interval at 0 and p = 1;
* on null sweeps the share of significant masks stays below 0.1 and the raw per-seed p-values
  reject at about their level;
* on null sweeps `best_head_split` is centred on 0 while `best_head_naive` is biased upward;
* `random_head` is the mean of the pooled head deltas; `best_head_cross_seed` is NaN with a note
  for one seed and, for two, each seed's best head scored in the other seed;
* a seed that lacks a mask is an error naming the seed.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from headlab.analysis.metrics import METRICS
from headlab.analysis.scoring import SWEEP_PREDICTIONS_SCHEMA
from headlab.analysis.sweep_statistics import (
    SELECTION_SCHEMA,
    STATISTICS_SCHEMA,
    StatisticsSettings,
    sweep_statistics,
)

Mask = tuple[str, str, int | None, int | None]  # name, kind, layer, head
LAYERS, HEADS, EXAMPLES = 3, 4, 400
RTOL, ATOL = 1e-9, 1e-12
ALPHA = 0.05
# A sign-flip p is at least 1 / (1 + permutations), so a lone true effect among m masks has
# q >= m / (1 + permutations) after BH; the bootstrap (Wald) test has no such floor.
SIGNIFICANCE = StatisticsSettings(resamples=1000, permutations=2000, alpha=ALPHA, seed=0)
FAST = StatisticsSettings(resamples=300, permutations=2000, alpha=ALPHA, seed=0)


def sweep_masks(layers: int = LAYERS, heads: int = HEADS) -> list[Mask]:
    """The baseline, every single head L{l}-H{h}, then every layer L{l} (1-based)."""
    masks: list[Mask] = [("baseline", "baseline", None, None)]
    masks += [
        (f"L{layer}-H{head}", "head", layer, head)
        for layer in range(1, layers + 1)
        for head in range(1, heads + 1)
    ]
    masks += [(f"L{layer}", "layer", layer, None) for layer in range(1, layers + 1)]
    return masks


def seed_frame(masks: list[Mask], seed: int, pred: np.ndarray, gold: np.ndarray) -> pl.DataFrame:
    """One seed's rows, every mask x example, as `SWEEP_PREDICTIONS_SCHEMA` (the workflow's table);
    `pred` (masks, examples) in the order of `masks`."""
    n = gold.size
    columns = {
        "model": ["synthetic"] * (len(masks) * n),
        "task": ["SYN"] * (len(masks) * n),
        "seed": [seed] * (len(masks) * n),
        "mode": ["uniform"] * (len(masks) * n),
        **{
            name: [m[column] for m in masks for _ in range(n)]
            for column, name in enumerate(("mask", "kind", "layer", "head"))
        },
        "example": np.tile(np.arange(n, dtype=np.int32), len(masks)),
        "prediction": np.asarray(pred, dtype=np.float64).reshape(-1),
        "label": np.tile(gold.astype(np.float64), len(masks)),
    }
    return pl.from_arrow(pa.Table.from_pydict(columns, schema=SWEEP_PREDICTIONS_SCHEMA))


def sweep_frame(masks: list[Mask], seeds: list[tuple[np.ndarray, np.ndarray]]) -> pl.DataFrame:
    """The predictions table of seeds 0, 1, ... given as (pred (masks, examples), gold)."""
    return pl.concat([seed_frame(masks, seed, pred, gold) for seed, (pred, gold) in enumerate(seeds)])


def flipped(rng: np.random.Generator, pred: np.ndarray, rate: float, copies: int) -> np.ndarray:
    """(copies, n) binary predictions, each with an independent `rate` share of `pred` flipped."""
    return np.where(rng.random((copies, pred.size)) < rate, 1 - pred[None], pred[None])


def null_seed(rng: np.random.Generator, masks: int, n: int = EXAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """(pred (masks, n), gold): the baseline (row 0) and every mask are a reference with 3 % flipped."""
    gold = rng.integers(0, 2, n)
    reference = np.where(rng.random(n) < 0.75, gold, 1 - gold)
    return flipped(rng, reference, 0.03, masks), gold


def null_sweep(seed: int, seeds: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    masks = sweep_masks()
    return sweep_frame(masks, [null_seed(rng, len(masks)) for _ in range(seeds)])


def rows_of(statistics: pl.DataFrame, scope: str, **equal: object) -> pl.DataFrame:
    frame = statistics.filter(pl.col("scope") == scope)
    for column, value in equal.items():
        frame = frame.filter(pl.col(column) == value)
    return frame


def estimate(selection: pl.DataFrame, name: str) -> dict[str, object]:
    rows = selection.filter(pl.col("estimate") == name)
    assert rows.height == 1
    return rows.row(0, named=True)


# --- the tables ----------------------------------------------------------------------------------


def test_tables_have_their_schemas_and_the_plain_metrics() -> None:
    rng = np.random.default_rng(1)
    masks = sweep_masks()
    seeds = [null_seed(rng, len(masks)) for _ in range(2)]
    statistics, selection = sweep_statistics(sweep_frame(masks, seeds), ["accuracy", "f1"], FAST)
    assert dict(statistics.schema) == STATISTICS_SCHEMA
    assert dict(selection.schema) == SELECTION_SCHEMA
    assert statistics.height == 2 * (2 + 1) * len(masks)  # metrics x (seeds + pooled) x masks
    assert selection.height == 2 * 4
    names = [m[0] for m in masks]
    for metric in ("accuracy", "f1"):
        per_seed = []
        for seed, (pred, gold) in enumerate(seeds):
            rows = rows_of(statistics, "seed", metric=metric, seed=seed)
            assert rows["mask"].to_list() == names
            expected = np.array([METRICS[metric](p, gold) for p in pred])
            np.testing.assert_allclose(rows["value"].to_numpy(), expected, rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(rows["delta"].to_numpy(), expected - expected[0], rtol=RTOL, atol=ATOL)
            per_seed.append(expected)
        pooled = rows_of(statistics, "pooled", metric=metric)
        assert pooled["seed"].is_null().all() and (pooled["n_seeds"] == 2).all()
        mean = np.mean(per_seed, axis=0)
        np.testing.assert_allclose(pooled["value"].to_numpy(), mean, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(pooled["delta"].to_numpy(), mean - mean[0], rtol=RTOL, atol=ATOL)
    assert set(statistics.filter(pl.col("metric") == "accuracy", pl.col("scope") == "seed")["test"]) == {
        "sign-flip permutation"
    }
    assert set(statistics.filter(pl.col("metric") == "f1", pl.col("scope") == "seed")["test"]) == {
        "paired bootstrap"
    }
    assert set(statistics.filter(pl.col("scope") == "pooled")["test"]) == {"two-level bootstrap"}
    baseline = statistics.filter(pl.col("mask") == "baseline")
    assert baseline["q_value"].is_nan().all()  # the baseline is not tested
    assert not baseline["significant"].any()


def test_regression_sweep_uses_the_bootstrap_test() -> None:
    rng = np.random.default_rng(2)
    masks = sweep_masks(2, 2)
    gold = rng.uniform(0.0, 5.0, 200)
    base = gold + rng.normal(0.0, 1.0, 200)
    pred = base[None] + rng.normal(0.0, 0.2, (len(masks), 200))
    pred[0] = base
    statistics, _ = sweep_statistics(sweep_frame(masks, [(pred, gold)]), ["pearson", "spearman"], FAST)
    for metric in ("pearson", "spearman"):
        rows = rows_of(statistics, "seed", metric=metric)
        expected = np.array([METRICS[metric](p, gold) for p in pred])
        np.testing.assert_allclose(rows["value"].to_numpy(), expected, rtol=RTOL, atol=ATOL)
        assert set(rows["test"]) == {"paired bootstrap"}
        assert rows.filter(pl.col("kind") != "baseline")["p_value"].is_finite().all()


# --- (a) a truly better mask, and masks identical to the baseline --------------------------------


def better_sweep(seeds: int = 3) -> pl.DataFrame:
    """L1-H1 corrects 60 of the baseline's wrong predictions; L2-H1..L2-H4 and L2 are the baseline;
    every other mask is a null mask (the reference with 3 % flipped, as the baseline)."""
    rng = np.random.default_rng(3)
    masks = sweep_masks()
    names = [m[0] for m in masks]
    out = []
    for _ in range(seeds):
        pred, gold = null_seed(rng, len(masks))
        wrong = np.flatnonzero(pred[0] != gold)
        better = pred[0].copy()
        fix = rng.choice(wrong, 60, replace=False)
        better[fix] = gold[fix]
        pred[names.index("L1-H1")] = better
        for name in ("L2-H1", "L2-H2", "L2-H3", "L2-H4", "L2"):
            pred[names.index(name)] = pred[0]
        out.append((pred, gold))
    return sweep_frame(masks, out)


@pytest.fixture(scope="module")
def better_statistics() -> pl.DataFrame:
    statistics, _ = sweep_statistics(better_sweep(), ["accuracy", "f1"], SIGNIFICANCE)
    return statistics


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_a_truly_better_mask_is_significant(better_statistics: pl.DataFrame, metric: str) -> None:
    for scope in ("seed", "pooled"):
        rows = rows_of(better_statistics, scope, metric=metric, mask="L1-H1")
        assert rows.height == (3 if scope == "seed" else 1)
        assert (rows["delta"] > 0).all()
        assert (rows["ci_low"] > 0).all()
        assert (rows["ci_low"] <= rows["delta"]).all() and (rows["delta"] <= rows["ci_high"]).all()
        assert (rows["q_value"] < ALPHA).all()
        assert rows["significant"].all()
    # 60 of 400 corrected: the accuracy delta is exactly 60 / 400 in every seed
    if metric == "accuracy":
        pooled = rows_of(better_statistics, "pooled", metric=metric, mask="L1-H1")
        assert pooled["delta"][0] == pytest.approx(60 / 400, rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_masks_identical_to_the_baseline(better_statistics: pl.DataFrame, metric: str) -> None:
    rows = better_statistics.filter(
        pl.col("metric") == metric, pl.col("mask").is_in(["L2-H1", "L2-H2", "L2-H3", "L2-H4", "L2"])
    )
    assert rows.height == 5 * (3 + 1)
    for column in ("delta", "ci_low", "ci_high"):
        np.testing.assert_array_equal(rows[column].to_numpy(), 0.0)
    np.testing.assert_array_equal(rows["p_value"].to_numpy(), 1.0)
    assert not rows["significant"].any()


def test_a_lone_effect_survives_bh_over_a_bert_base_sweep() -> None:
    """156 masks (12 x 12 heads, 12 layers), one head correcting 150 of 1000 predictions, the
    default settings: significant in every seed and pooled (a p-value floor of 1 / B would make
    its q at least 156 / 1001 = 0.16)."""
    rng = np.random.default_rng(21)
    masks = sweep_masks(12, 12)
    names = [m[0] for m in masks]
    seeds = []
    for _ in range(2):
        pred, gold = null_seed(rng, len(masks), 1000)
        wrong = np.flatnonzero(pred[0] != gold)
        fix = rng.choice(wrong, 150, replace=False)
        pred[names.index("L5-H5"), fix] = gold[fix]
        seeds.append((pred, gold))
    statistics, _ = sweep_statistics(sweep_frame(masks, seeds), ["accuracy", "f1"], StatisticsSettings())
    rows = statistics.filter(pl.col("mask") == "L5-H5")
    assert rows.height == 2 * (2 + 1)
    assert rows["significant"].all(), rows.select("metric", "scope", "p_value", "q_value")


# --- (b) null sweeps -----------------------------------------------------------------------------


def test_null_sweeps_are_rarely_significant() -> None:
    significant, masks, raw = 0, 0, []
    for seed in range(8):
        statistics, _ = sweep_statistics(null_sweep(100 + seed), ["accuracy"], SIGNIFICANCE)
        tested = statistics.filter(pl.col("kind") != "baseline")
        significant += int(tested["significant"].sum())
        masks += tested.height
        raw.append(tested.filter(pl.col("scope") == "seed")["p_value"].to_numpy())
    # BH at 0.05 under the global null: a significant mask in at most about 5 % of the families,
    # so the share of significant masks is far below 0.05; 0.1 is a loose bound
    assert significant / masks <= 0.1
    # the raw sign-flip p-values (8 sweeps x 3 seeds x 15 masks = 360, correlated through the
    # shared baseline) reject at about 5 %: the bounds are wide enough for that correlation
    p = np.concatenate(raw)
    assert p.size == 8 * 3 * 15
    assert 0.005 <= np.mean(p < 0.05) <= 0.12


# --- (c) selection-aware estimates on null sweeps ------------------------------------------------


def test_split_estimate_is_unbiased_and_naive_estimate_is_biased_on_null_sweeps() -> None:
    split, naive = [], []
    for seed in range(20):
        _, selection = sweep_statistics(null_sweep(200 + seed), ["accuracy"], FAST)
        split.append(estimate(selection, "best_head_split")["delta"])
        naive.append(estimate(selection, "best_head_naive")["delta"])
    split_a, naive_a = np.array(split), np.array(naive)
    # The split estimate scores the chosen head on examples the choice never saw, so it is a mean-0
    # delta; its spread across sweeps (one seed's delta on 200 examples has sd about
    # sqrt(0.06 / 200) = 0.017, 0.01 over 3 seeds) sets the tolerance: 3 standard errors of the mean
    # of 20 sweeps, from the observed spread.
    standard_error = split_a.std(ddof=1) / math.sqrt(split_a.size)
    assert 0.0 < standard_error < 0.005
    assert abs(split_a.mean()) < 3 * standard_error
    # The naive estimate is the largest of 12 head deltas on the same data: clearly above 0, and
    # above the split estimate, by more than 3 of its own standard errors.
    naive_error = naive_a.std(ddof=1) / math.sqrt(naive_a.size)
    assert naive_a.mean() > 3 * naive_error
    assert naive_a.mean() > split_a.mean() + 3 * standard_error


# --- (d) random head -----------------------------------------------------------------------------


def test_random_head_is_the_mean_pooled_head_delta() -> None:
    statistics, selection = sweep_statistics(null_sweep(4), ["accuracy", "f1"], FAST)
    for metric in ("accuracy", "f1"):
        heads = rows_of(statistics, "pooled", metric=metric, kind="head")
        assert heads.height == LAYERS * HEADS
        row = estimate(selection.filter(pl.col("metric") == metric), "random_head")
        assert row["delta"] == pytest.approx(float(heads["delta"].mean()), rel=RTOL, abs=ATOL)
        assert row["ci_low"] <= row["ci_high"]


# --- (e) cross-seed estimate ---------------------------------------------------------------------


def test_cross_seed_estimate_needs_two_seeds() -> None:
    _, selection = sweep_statistics(null_sweep(5, seeds=1), ["accuracy"], FAST)
    row = estimate(selection, "best_head_cross_seed")
    assert math.isnan(row["delta"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert row["share_improving"] is None
    assert "two seeds" in row["note"]
    # the other estimates are still there with one seed
    assert math.isfinite(estimate(selection, "best_head_split")["delta"])


def test_cross_seed_estimate_with_two_seeds() -> None:
    statistics, selection = sweep_statistics(null_sweep(6, seeds=2), ["accuracy"], FAST)
    row = estimate(selection, "best_head_cross_seed")
    assert 0.0 <= row["share_improving"] <= 1.0
    # by hand: each seed's best head (the first of the largest deltas) scored in the other seed
    deltas = [rows_of(statistics, "seed", seed=s, kind="head") for s in (0, 1)]
    best = [frame["mask"][int(np.argmax(frame["delta"].to_numpy()))] for frame in deltas]
    scored = [float(deltas[1 - s].filter(pl.col("mask") == best[s])["delta"][0]) for s in (0, 1)]
    assert row["mask"] == ",".join(best)
    assert row["delta"] == pytest.approx(float(np.mean(scored)), rel=RTOL, abs=ATOL)
    assert row["share_improving"] == pytest.approx(float(np.mean(np.array(scored) > 0)))


# --- (f) inconsistent seeds ----------------------------------------------------------------------


def test_a_seed_without_a_mask_is_an_error_naming_it() -> None:
    predictions = null_sweep(7, seeds=3)
    predictions = predictions.filter(~((pl.col("seed") == 1) & (pl.col("mask") == "L2-H3")))
    with pytest.raises(ValueError, match=r"seed 1: masks \['L2-H3'\]"):
        sweep_statistics(predictions, ["accuracy"], FAST)


def test_predictions_without_a_baseline_are_an_error() -> None:
    predictions = null_sweep(8, seeds=1).filter(pl.col("mask") != "baseline")
    with pytest.raises(ValueError, match="no baseline"):
        sweep_statistics(predictions, ["accuracy"], FAST)
