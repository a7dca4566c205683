"""The statistics of a whole sweep (`headlab.analysis.sweep_statistics`) on small synthetic sweeps.

A synthetic sweep (by default 3 layers x 4 heads + 3 layers + the baseline, 200 dev examples,
2-3 seeds, the same examples and gold labels in every seed) is built here as a predictions table
of `SWEEP_PREDICTIONS_SCHEMA`. Two nulls:

* independent (`null_seed`): every seed has a reference prediction (right on about 75 % of the
  examples) and the baseline and every mask are that reference with an independent random 3 %
  of its predictions flipped: a mask and the baseline are exchangeable on every example;
* shared (`shared_null_sweep`): the baseline is right on easy examples, wrong on hard ones and a
  fair coin on a pool, ONE coin for every seed; each mask flips mostly the same pool examples in
  every seed (chosen without looking at the coin): still exchangeable, but the seeds' deltas are
  correlated through the examples (a head that looks good in one seed looks good in all).

Proved here:

* the tables follow `STATISTICS_SCHEMA` (se, df, n_permutations included) and `SELECTION_SCHEMA`
  with the `ESTIMATES` in order; values and deltas are the plain metrics; pooled intervals are
  the t intervals of (se, df); errors name the offending seed;
* a mask that corrects many of the baseline's wrong predictions is significant after BH in each
  seed, with p < alpha and an interval above 0 pooled; masks identical to the baseline have
  delta 0, a zero-width interval and p = 1; a lone effect survives BH in every seed of a
  BERT-base-sized sweep (144 heads + 12 layers) at the defaults (pooled: p < alpha, interval
  above 0), and `some_head_improves` finds it;
* BH runs separately within heads, layers and named masks (q equals `benjamini_hochberg` of the
  family's p-values alone): 12 strongly real layers do not make null heads significant;
* on 40 shared-null sweeps few masks are significant, the raw p-values reject at about their
  level, `some_head_improves` is rarely supported, `best_head_split` and `best_head_cross_seed`
  are centred on 0 (within 2 Monte Carlo SE) while `best_head_naive` is biased upward;
* `some_head_improves` supports a planted head improving 8 % of the examples in every seed (other
  examples in each seed), and says when the permutations cannot reach alpha;
* `best_of` never picks a NaN; `best_head_naive` is a description; `best_head_split` is
  cross-fitted (chosen on one half, scored on the other: heads "A/B"); `best_head_cross_seed`
  needs two seeds, counts ties and leaves them out of `share_improving`; `random_head` is the
  mean pooled head delta.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from headlab.analysis.metrics import METRICS
from headlab.analysis.scoring import SWEEP_PREDICTIONS_SCHEMA
from headlab.analysis.significance import benjamini_hochberg
from headlab.analysis.sweep_statistics import (
    ESTIMATES,
    POOLED_TEST,
    SEED_TEST,
    SELECTION_SCHEMA,
    STATISTICS_SCHEMA,
    StatisticsSettings,
    best_of,
    halves_of,
    sweep_statistics,
)
from headlab.workflow.defaults import config_defaults

Mask = tuple[str, str, int | None, int | None]  # name, kind, layer, head
LAYERS, HEADS, EXAMPLES = 3, 4, 200
RTOL, ATOL = 1e-9, 1e-12
ALPHA = 0.05
FAST = StatisticsSettings(resamples=200, permutations=1000, alpha=ALPHA, seed=0)
SIGNIFICANCE = StatisticsSettings(resamples=500, permutations=2000, alpha=ALPHA, seed=0)


# --- synthetic sweeps ----------------------------------------------------------------------------


def sweep_masks(layers: int = LAYERS, heads: int = HEADS, named: tuple[str, ...] = ()) -> list[Mask]:
    """The baseline, every single head L{l}-H{h}, every layer L{l} (1-based), then named masks."""
    masks: list[Mask] = [("baseline", "baseline", None, None)]
    masks += [(f"L{lay}-H{h}", "head", lay, h) for lay in range(1, layers + 1) for h in range(1, heads + 1)]
    masks += [(f"L{layer}", "layer", layer, None) for layer in range(1, layers + 1)]
    masks += [(name, "named", None, None) for name in named]
    return masks


def sweep_frame(masks: list[Mask], seeds: list[tuple[np.ndarray, np.ndarray]]) -> pl.DataFrame:
    """The predictions table (SWEEP_PREDICTIONS_SCHEMA) of seeds 0, 1, ... given as
    (pred (masks, examples) in the order of `masks`, gold (examples,))."""
    n = seeds[0][1].size
    per_seed = len(masks) * n
    total = per_seed * len(seeds)

    def column(i: int) -> list[object]:
        return [m[i] for m in masks for _ in range(n)] * len(seeds)

    columns = {
        "model": ["synthetic"] * total,
        "task": ["SYN"] * total,
        "seed": np.repeat(np.arange(len(seeds), dtype=np.int64), per_seed),
        "mode": ["uniform"] * total,
        "mask": column(0),
        "kind": column(1),
        "layer": column(2),
        "head": column(3),
        "example": np.tile(np.arange(n, dtype=np.int64), len(masks) * len(seeds)),
        "prediction": np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p, _ in seeds]),
        "label": np.concatenate([np.tile(gold.astype(np.float64), len(masks)) for _, gold in seeds]),
        "score": np.full(total, np.nan),  # no logits behind these predictions
    }
    return pl.from_arrow(pa.Table.from_pydict(columns, schema=SWEEP_PREDICTIONS_SCHEMA))


def flipped(rng: np.random.Generator, pred: np.ndarray, rate: float, copies: int) -> np.ndarray:
    """(copies, n) binary predictions, each with an independent `rate` share of `pred` flipped."""
    return np.where(rng.random((copies, pred.size)) < rate, 1 - pred[None], pred[None])


def null_seed(rng: np.random.Generator, masks: int, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pred (masks, n), gold): the baseline (row 0) and every mask are the seed's reference (right
    on about 75 % of the examples) with 3 % flipped."""
    reference = np.where(rng.random(gold.size) < 0.75, gold, 1 - gold)
    return flipped(rng, reference, 0.03, masks), gold


def null_sweep(seed: int, seeds: int = 3, masks: list[Mask] | None = None, n: int = EXAMPLES) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    masks = masks or sweep_masks()
    gold = rng.integers(0, 2, n)
    return sweep_frame(masks, [null_seed(rng, len(masks), gold) for _ in range(seeds)])


def shared_null_sweep(
    rng: np.random.Generator,
    seeds: int = 3,
    n: int = EXAMPLES,
    pool: int = 60,
    flips: int = 8,
    keep: float = 0.8,
) -> pl.DataFrame:
    """A shared null: the baseline is right on easy examples, wrong on 30 hard ones and a fair coin
    on `pool` examples, the same coin in every seed; each mask has its own `flips` pool examples,
    flipped in each seed with probability `keep`, plus fresh pool flips (as many on average)."""
    masks = sweep_masks()
    gold = rng.integers(0, 2, n)
    order = rng.permutation(n)
    on_pool, hard = order[:pool], order[pool : pool + 30]
    right = np.ones(n, dtype=bool)
    right[hard] = False
    right[on_pool] = rng.random(pool) < 0.5
    own = rng.random((len(masks), pool)).argsort(axis=1) < flips  # (masks, pool)
    kept = own[None] & (rng.random((seeds, len(masks), pool)) < keep)
    fresh = ~own[None] & (rng.random((seeds, len(masks), pool)) < flips * (1 - keep) / (pool - flips))
    flip = kept | fresh
    flip[:, 0] = False  # the baseline row is the baseline
    correct = np.broadcast_to(right, (seeds, len(masks), n)).copy()
    correct[:, :, on_pool] ^= flip
    pred = np.where(correct, gold, 1 - gold)
    return sweep_frame(masks, [(pred[s], gold) for s in range(seeds)])


def fix(
    rng: np.random.Generator, row: np.ndarray, base: np.ndarray, gold: np.ndarray, count: int, among=None
) -> None:
    """Make `row` right on `count` examples the baseline gets wrong (of `among`, default all), in place."""
    wrong = np.flatnonzero(base != gold)
    if among is not None:
        wrong = np.intersect1d(wrong, among)
    rows = rng.choice(wrong, count, replace=False)
    row[rows] = gold[rows]


def rows_of(statistics: pl.DataFrame, scope: str, **equal: object) -> pl.DataFrame:
    frame = statistics.filter(pl.col("scope") == scope)
    for column, value in equal.items():
        frame = frame.filter(pl.col(column) == value)
    return frame


def estimate(selection: pl.DataFrame, name: str, metric: str | None = None) -> dict[str, object]:
    rows = selection.filter(pl.col("estimate") == name)
    if metric is not None:
        rows = rows.filter(pl.col("metric") == metric)
    assert rows.height == 1
    return rows.row(0, named=True)


# --- the tables ----------------------------------------------------------------------------------


def test_tables_have_their_schemas_and_the_plain_metrics() -> None:
    rng = np.random.default_rng(1)
    masks = sweep_masks()
    gold = rng.integers(0, 2, EXAMPLES)
    seeds = [null_seed(rng, len(masks), gold) for _ in range(2)]
    statistics, selection = sweep_statistics(sweep_frame(masks, seeds), ["accuracy", "f1"], FAST)
    assert dict(statistics.schema) == STATISTICS_SCHEMA
    assert dict(selection.schema) == SELECTION_SCHEMA
    assert statistics.height == 2 * (2 + 1) * len(masks)  # metrics x (seeds + pooled) x masks
    assert selection["estimate"].to_list() == list(ESTIMATES) * 2
    assert (selection["n_seeds"] == 2).all() and (selection["n_examples"] == EXAMPLES).all()
    assert (statistics["n_examples"] == EXAMPLES).all()
    assert (statistics["n_resamples"] == FAST.resamples).all()
    assert (statistics["n_permutations"] == FAST.permutations).all()
    names = [m[0] for m in masks]
    for metric in ("accuracy", "f1"):
        per_seed = []
        for seed, (pred, gold) in enumerate(seeds):
            rows = rows_of(statistics, "seed", metric=metric, seed=seed)
            assert rows["mask"].to_list() == names
            expected = np.array([METRICS[metric](p, gold) for p in pred])
            np.testing.assert_allclose(rows["value"].to_numpy(), expected, rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(rows["delta"].to_numpy(), expected - expected[0], rtol=RTOL, atol=ATOL)
            assert set(rows["test"]) == {SEED_TEST} and (rows["n_seeds"] == 1).all()
            assert np.isinf(rows["df"].to_numpy()).all()  # a seed's percentile interval
            per_seed.append(expected)
        pooled = rows_of(statistics, "pooled", metric=metric)
        assert pooled["seed"].is_null().all() and (pooled["n_seeds"] == 2).all()
        assert set(pooled["test"]) == {POOLED_TEST}
        mean = np.mean(per_seed, axis=0)
        np.testing.assert_allclose(pooled["value"].to_numpy(), mean, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(pooled["delta"].to_numpy(), mean - mean[0], rtol=RTOL, atol=ATOL)
        # the pooled interval is the t interval of (se, df) of the crossed variance; it may only be
        # wider (to contain 0) where the test does not reject
        tested = pooled.filter(pl.col("kind") != "baseline")
        se, df = tested["se"].to_numpy(), tested["df"].to_numpy()
        assert np.all(se > 0) and np.all(df >= 1.0)  # 2 seeds: at least S - 1 degrees of freedom
        half = stats.t.ppf(1 - ALPHA / 2, df) * se
        delta, low, high = (tested[c].to_numpy() for c in ("delta", "ci_low", "ci_high"))
        assert np.all(low <= delta - half + 1e-12) and np.all(high >= delta + half - 1e-12)
        significant = tested["p_value"].to_numpy() < ALPHA
        np.testing.assert_allclose(low[significant], (delta - half)[significant], rtol=RTOL, atol=ATOL)
    baseline = statistics.filter(pl.col("mask") == "baseline")
    assert baseline["q_value"].is_nan().all() and baseline["p_value"].is_nan().all()  # not tested
    assert not baseline["significant"].any()
    assert (baseline["delta"] == 0).all() and (baseline["se"] == 0).all()
    # best_head_naive is the head of the largest pooled delta, with that head's inference, and a
    # description only
    for metric in ("accuracy", "f1"):
        heads = rows_of(statistics, "pooled", metric=metric, kind="head")
        best = heads.row(int(np.argmax(heads["delta"].to_numpy())), named=True)
        naive = estimate(selection, "best_head_naive", metric)
        assert naive["mask"] == best["mask"]
        for column in ("delta", "se", "ci_low", "ci_high", "p_value"):
            assert naive[column] == pytest.approx(best[column], rel=RTOL, abs=ATOL)
        assert "description" in naive["note"] and "not a test" in naive["note"]


def test_regression_sweep_values_and_tests() -> None:
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
        assert set(rows["test"]) == {SEED_TEST}
        tested = rows.filter(pl.col("kind") != "baseline")
        assert tested["p_value"].is_finite().all()
        assert ((tested["p_value"] > 0) & (tested["p_value"] <= 1)).all()


# --- a truly better mask, masks identical to the baseline ----------------------------------------


def better_sweep(seeds: int = 3, n: int = 400) -> pl.DataFrame:
    """L1-H1 corrects 60 of the baseline's wrong predictions; L2-H1..L2-H4 and L2 are the baseline;
    every other mask is a null mask (the reference with 3 % flipped, as the baseline)."""
    rng = np.random.default_rng(3)
    masks = sweep_masks()
    names = [m[0] for m in masks]
    out, gold = [], rng.integers(0, 2, n)
    for _ in range(seeds):
        pred, _ = null_seed(rng, len(masks), gold)
        better = pred[0].copy()
        fix(rng, better, pred[0], gold, 60)
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
    seeds = rows_of(better_statistics, "seed", metric=metric, mask="L1-H1")
    assert seeds.height == 3
    assert (seeds["q_value"] < ALPHA).all() and seeds["significant"].all()  # BH over the 12 heads
    for rows in (seeds, rows_of(better_statistics, "pooled", metric=metric, mask="L1-H1")):
        assert (rows["delta"] > 0).all()
        assert (rows["ci_low"] > 0).all()
        assert (rows["ci_low"] <= rows["delta"]).all() and (rows["delta"] <= rows["ci_high"]).all()
        assert (rows["p_value"] < ALPHA).all()
    if metric == "accuracy":  # 60 of 400 corrected: exactly 60 / 400 in every seed
        pooled = rows_of(better_statistics, "pooled", metric=metric, mask="L1-H1")
        assert pooled["delta"][0] == pytest.approx(60 / 400, rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("metric", ["accuracy", "f1"])
def test_masks_identical_to_the_baseline(better_statistics: pl.DataFrame, metric: str) -> None:
    rows = better_statistics.filter(
        pl.col("metric") == metric, pl.col("mask").is_in(["L2-H1", "L2-H2", "L2-H3", "L2-H4", "L2"])
    )
    assert rows.height == 5 * (3 + 1)
    for column in ("delta", "ci_low", "ci_high", "se"):
        np.testing.assert_allclose(rows[column].to_numpy(), 0.0, atol=1e-12)
    np.testing.assert_array_equal(rows["p_value"].to_numpy(), 1.0)
    assert not rows["significant"].any()


@pytest.fixture(scope="module")
def bert_base_sweep() -> tuple[pl.DataFrame, pl.DataFrame]:
    """156 masks (12 x 12 heads, 12 layers), 2 seeds of 1000 examples, one head (L5-H5) correcting
    150 of the baseline's wrong predictions in each seed, the default settings."""
    rng = np.random.default_rng(21)
    masks = sweep_masks(12, 12)
    names = [m[0] for m in masks]
    seeds, gold = [], rng.integers(0, 2, 1000)
    for _ in range(2):
        pred, _ = null_seed(rng, len(masks), gold)
        fix(rng, pred[names.index("L5-H5")], pred[0], gold, 150)
        seeds.append((pred, gold))
    return sweep_statistics(
        sweep_frame(masks, seeds), ["accuracy", "f1"], StatisticsSettings.of(config_defaults("statistics"))
    )


def test_a_lone_effect_survives_bh_in_every_seed_of_a_bert_base_sweep(
    bert_base_sweep: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    """BH over the 144 heads multiplies a p-value by at most 144: the permutation floor 1 / 10001
    leaves q <= 0.0144 (a floor of 1 / 1001 would not: 0.144). Pooled over 2 seeds the t part
    has about 1 df, so only the raw p-value is checked there."""
    statistics, selection = bert_base_sweep
    rows = rows_of(statistics, "seed", mask="L5-H5")
    assert rows.height == 2 * 2
    assert rows["significant"].all(), rows.select("metric", "seed", "p_value", "q_value")
    pooled = rows_of(statistics, "pooled", mask="L5-H5")
    assert (
        (pooled["delta"] > 0.1).all() and (pooled["p_value"] < ALPHA).all() and (pooled["ci_low"] > 0).all()
    )
    for metric in ("accuracy", "f1"):
        assert estimate(selection, "best_head_naive", metric)["mask"] == "L5-H5"
        exists = estimate(selection, "some_head_improves", metric)
        assert exists["mask"] == "L5-H5" and exists["p_value"] < ALPHA  # the permutation test


# --- BH families ---------------------------------------------------------------------------------


def real_layers_sweep(seed: int) -> tuple[pl.DataFrame, list[Mask]]:
    """12 layers x 4 heads + 2 named masks, 2 seeds: every layer is the baseline with 30 of its right
    predictions broken in every seed (exactly -15 points); heads and named masks are null."""
    rng = np.random.default_rng(seed)
    masks = sweep_masks(12, 4, named=("named-a", "named-b"))
    out, gold = [], rng.integers(0, 2, EXAMPLES)
    for _ in range(2):
        pred, _ = null_seed(rng, len(masks), gold)
        for row, mask in enumerate(masks):
            if mask[1] == "layer":
                pred[row] = pred[0]
                pred[row, rng.choice(np.flatnonzero(pred[0] == gold), 30, replace=False)] ^= 1
        out.append((pred, gold))
    return sweep_frame(masks, out), masks


def test_bh_families_are_separate() -> None:
    flagged = joint = 0
    for seed in range(10):
        table, _ = real_layers_sweep(300 + seed)
        statistics, _ = sweep_statistics(table, ["accuracy"], FAST)
        joint_draw = False
        for (scope, s), group in statistics.group_by("scope", "seed", maintain_order=True):
            for kind in ("head", "layer", "named"):
                family = group.filter(pl.col("kind") == kind)
                expected = benjamini_hochberg(family["p_value"].to_numpy())
                np.testing.assert_allclose(
                    family["q_value"].to_numpy(), expected, rtol=RTOL, err_msg=f"{scope} {s} {kind}"
                )
            # what BH over heads and layers together would flag among the null heads
            both = group.filter(pl.col("kind").is_in(["head", "layer"]))
            q = benjamini_hochberg(both["p_value"].to_numpy())
            joint_draw |= bool((q[(both["kind"] == "head").to_numpy()] < ALPHA).any())
        # the layers are real: significant in every seed (the swap test: p = 1 / 1001), -15 points
        layers = statistics.filter(pl.col("kind") == "layer")
        assert layers.height == 3 * 12 and layers.filter(pl.col("scope") == "seed")["significant"].all()
        np.testing.assert_allclose(layers["delta"].to_numpy(), -30 / EXAMPLES, rtol=RTOL)
        flagged += bool(statistics.filter(pl.col("kind") == "head")["significant"].any())
        joint += joint_draw
    # the heads are a family of their own: a null head is significant (in a seed or pooled) in
    # few of the 10 draws, while one family with the 12 real layers would lower the heads' BH
    # threshold and flag one in more draws (4 of these 10)
    assert flagged <= 2, flagged
    assert joint > flagged, (joint, flagged)


# --- shared-null sweeps: significance, calibration and the selection estimates -------------------


@pytest.fixture(scope="module")
def shared_nulls() -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """(statistics, selection) of 40 shared-null sweeps (3 seeds, 12 heads, 3 layers, 200 examples)."""
    rng = np.random.default_rng(200)
    return [sweep_statistics(shared_null_sweep(rng), ["accuracy"], FAST) for _ in range(40)]


def test_null_sweeps_are_rarely_significant(shared_nulls: list[tuple[pl.DataFrame, pl.DataFrame]]) -> None:
    tested = pl.concat([s.filter(pl.col("kind") != "baseline") for s, _ in shared_nulls])
    # BH at 0.05 under the global null: a significant mask in at most about 5 % of the families
    assert tested["significant"].mean() <= 0.02
    families = tested.group_by("scope", "seed", "kind", "model").agg(pl.col("significant").any())
    assert families.height == 4 * 2  # seeds 0-2 and pooled x heads, layers (model: one per sweep)
    seed_p = tested.filter(pl.col("scope") == "seed")["p_value"].to_numpy()
    pooled_p = tested.filter(pl.col("scope") == "pooled")["p_value"].to_numpy()
    assert seed_p.size == 40 * 3 * 15 and pooled_p.size == 40 * 15
    # the raw p-values (correlated through the shared baseline and the shared flips) reject at
    # about their level or less
    assert 0.01 <= np.mean(seed_p < ALPHA) <= 0.08, np.mean(seed_p < ALPHA)
    assert np.mean(pooled_p < ALPHA) <= 0.08, np.mean(pooled_p < ALPHA)


def test_some_head_improves_is_rarely_supported_under_the_null(
    shared_nulls: list[tuple[pl.DataFrame, pl.DataFrame]],
) -> None:
    rows = [estimate(selection, "some_head_improves") for _, selection in shared_nulls]
    supported = np.mean([row["p_value"] < ALPHA for row in rows])
    assert supported <= 0.08, supported  # Bonferroni over 12 one-sided exact tests: <= 5 %
    assert np.median([row["p_value"] for row in rows]) > ALPHA
    for row in rows:
        assert row["ci_low"] <= row["delta"] <= row["ci_high"]
        assert "Bonferroni over 12 heads" in row["note"]


def test_selection_estimates_under_a_shared_null(
    shared_nulls: list[tuple[pl.DataFrame, pl.DataFrame]],
) -> None:
    def deltas(name: str) -> np.ndarray:
        return np.array([estimate(selection, name)["delta"] for _, selection in shared_nulls])

    def monte_carlo_se(values: np.ndarray) -> float:
        return float(values.std(ddof=1) / math.sqrt(values.size))

    split, cross, naive = deltas("best_head_split"), deltas("best_head_cross_seed"), deltas("best_head_naive")
    # split and cross-seed score the chosen heads on examples the choice never saw: mean 0 within
    # 2 Monte Carlo SE (an SE of at most 0.4 points: the naive bias is about 1.8 points)
    for values in (split, cross):
        se = monte_carlo_se(values)
        assert 0.0 < se < 0.004
        assert abs(values.mean()) <= 2 * se, (values.mean(), se)
    # the naive estimate is the largest of 12 head deltas on the data it was chosen on
    assert naive.mean() > 3 * monte_carlo_se(naive)
    assert naive.mean() > split.mean() + 3 * monte_carlo_se(split)


# --- some_head_improves --------------------------------------------------------------------------


def planted_sweep(settings: StatisticsSettings) -> pl.DataFrame:
    """Null masks plus head L2-H3 fixing 16 of 200 examples (8 %) in every seed, other examples in each."""
    rng = np.random.default_rng(4)
    masks = sweep_masks()
    row = [m[0] for m in masks].index("L2-H3")
    seeds, gold = [], rng.integers(0, 2, EXAMPLES)
    for _ in range(3):
        pred, _ = null_seed(rng, len(masks), gold)
        fix(rng, pred[row], pred[0], gold, 16)
        seeds.append((pred, gold))
    return sweep_statistics(sweep_frame(masks, seeds), ["accuracy"], settings)


def test_some_head_improves_supports_a_planted_head() -> None:
    statistics, selection = planted_sweep(FAST)
    row = estimate(selection, "some_head_improves")
    assert row["mask"] == "L2-H3"
    assert row["p_value"] < ALPHA
    assert row["p_value"] >= 12 / (1 + FAST.permutations)  # Bonferroni over 12 heads of p >= 1 / (1 + P)
    assert 0 < row["ci_low"] < row["delta"] <= row["ci_high"]
    pooled = rows_of(statistics, "pooled", mask="L2-H3").row(0, named=True)
    assert row["delta"] == pytest.approx(pooled["delta"], rel=RTOL)
    assert row["ci_high"] >= rows_of(statistics, "pooled", kind="head")["ci_high"].max()  # simultaneous
    assert "cannot reach alpha" not in row["note"]


def test_some_head_improves_says_when_permutations_cannot_reach_alpha() -> None:
    # 100 permutations: p >= 1 / 101 per head, 12 / 101 = 0.119 after Bonferroni
    settings = StatisticsSettings(resamples=200, permutations=100, alpha=ALPHA, seed=0)
    _, selection = planted_sweep(settings)
    row = estimate(selection, "some_head_improves")
    assert row["p_value"] >= 12 / 101 - 1e-12
    assert "cannot reach alpha" in row["note"]


# --- best_of and the selection estimates ---------------------------------------------------------


def test_best_of_never_picks_nan() -> None:
    deltas = np.array([np.nan, 0.1, 0.3, np.nan, 0.3, -0.2])
    assert best_of(deltas, np.arange(6)) == 2  # the first of the largest finite deltas
    assert best_of(deltas, np.array([0, 3, 5])) == 5  # a NaN is never best, even over a negative
    assert best_of(deltas, np.array([0, 3])) is None
    assert best_of(np.full(4, np.nan), np.arange(4)) is None


def test_best_head_split_is_cross_fitted() -> None:
    # H1 fixes 15 examples of half A only, H2 10 of half B only: H1 is chosen on A and scores B
    # (where it is the baseline), H2 is chosen on B and scores A: the split delta is exactly 0,
    # while the naive estimate (chosen and scored on all examples) is H1's 15 / n
    masks = sweep_masks(1, 3)
    half_a, half_b = halves_of(EXAMPLES, FAST.seed)
    rng = np.random.default_rng(5)
    seeds, gold = [], rng.integers(0, 2, EXAMPLES)
    for _ in range(2):
        pred, _ = null_seed(rng, len(masks), gold)
        pred[1:] = pred[0]
        fix(rng, pred[1], pred[0], gold, 15, among=half_a)
        fix(rng, pred[2], pred[0], gold, 10, among=half_b)
        seeds.append((pred, gold))
    _, selection = sweep_statistics(sweep_frame(masks, seeds), ["accuracy"], FAST)
    split = estimate(selection, "best_head_split")
    assert split["mask"] == "L1-H1/L1-H2"
    assert split["delta"] == pytest.approx(0.0, abs=ATOL) and split["p_value"] == 1.0
    assert "cross-fitted" in split["note"]
    naive = estimate(selection, "best_head_naive")
    assert naive["mask"] == "L1-H1" and naive["delta"] == pytest.approx(15 / EXAMPLES, rel=RTOL)
    # one head fixing examples in both halves is chosen on both: the split estimate is its delta
    for pred, gold in seeds:
        pred[1] = pred[0]
        fix(rng, pred[1], pred[0], gold, 40)
    _, selection = sweep_statistics(sweep_frame(masks, seeds), ["accuracy"], FAST)
    split = estimate(selection, "best_head_split")
    assert split["mask"] == "L1-H1/L1-H1"
    assert split["delta"] == pytest.approx(40 / EXAMPLES, rel=RTOL)


def test_random_head_is_the_mean_pooled_head_delta() -> None:
    statistics, selection = sweep_statistics(null_sweep(4), ["accuracy", "f1"], FAST)
    for metric in ("accuracy", "f1"):
        heads = rows_of(statistics, "pooled", metric=metric, kind="head")
        assert heads.height == LAYERS * HEADS
        row = estimate(selection, "random_head", metric)
        assert row["delta"] == pytest.approx(float(heads["delta"].mean()), rel=RTOL, abs=ATOL)
        assert row["ci_low"] <= row["delta"] <= row["ci_high"] and row["se"] > 0
        assert row["mask"] is None and "mean over 12 heads" in row["note"]


def test_cross_seed_estimate_needs_two_seeds() -> None:
    _, selection = sweep_statistics(null_sweep(5, seeds=1), ["accuracy"], FAST)
    row = estimate(selection, "best_head_cross_seed")
    assert math.isnan(row["delta"]) and math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert row["share_improving"] is None and row["n_ties"] is None
    assert "two seeds" in row["note"]
    # the other estimates are still there with one seed
    for name in ("random_head", "best_head_naive", "best_head_split", "some_head_improves"):
        assert math.isfinite(estimate(selection, name)["delta"])


def test_cross_seed_counts_ties_and_leaves_them_out_of_the_share() -> None:
    # seed 0: H1 fixes 40 examples, H2 is the baseline; seed 1: H2 fixes 40, H1 fixes 10.
    # Seed 0's heads (H1/H1) scored in seed 1 improve (+10 / n); seed 1's heads (H2/H2) scored in
    # seed 0 are the baseline: a tie. share_improving is 1 of the 1 pair that is not a tie.
    masks = sweep_masks(1, 3)
    rng = np.random.default_rng(6)
    seeds, gold = [], rng.integers(0, 2, EXAMPLES)
    for seed in range(2):
        pred, _ = null_seed(rng, len(masks), gold)
        pred[1:] = pred[0]
        fix(rng, pred[1], pred[0], gold, 40 if seed == 0 else 10)
        if seed == 1:
            fix(rng, pred[2], pred[0], gold, 40)
        seeds.append((pred, gold))
    _, selection = sweep_statistics(sweep_frame(masks, seeds), ["accuracy"], FAST)
    row = estimate(selection, "best_head_cross_seed")
    assert row["mask"] == "L1-H1/L1-H1,L1-H2/L1-H2"
    assert row["n_ties"] == 1
    assert row["share_improving"] == 1.0  # 0.5 if the tie counted as "not improving"
    assert row["delta"] == pytest.approx((0.0 + 10 / EXAMPLES) / 2, rel=RTOL)
    assert "1 of 2 pairs" in row["note"]


# --- inconsistent inputs -------------------------------------------------------------------------


def test_a_seed_without_a_mask_is_an_error_naming_it() -> None:
    predictions = null_sweep(7, seeds=3)
    predictions = predictions.filter(~((pl.col("seed") == 1) & (pl.col("mask") == "L2-H3")))
    with pytest.raises(ValueError, match=r"seed 1: masks \['L2-H3'\]"):
        sweep_statistics(predictions, ["accuracy"], FAST)


def test_a_seed_with_other_examples_is_an_error_naming_it() -> None:
    predictions = null_sweep(8, seeds=3).with_columns(
        example=pl.when(pl.col("seed") == 2).then(pl.col("example") + 1000).otherwise(pl.col("example"))
    )
    with pytest.raises(ValueError, match="seed 2: its dev examples differ"):
        sweep_statistics(predictions, ["accuracy"], FAST)


def test_a_seed_with_other_gold_labels_is_an_error_naming_it() -> None:
    predictions = null_sweep(10, seeds=2).with_columns(
        label=pl.when(pl.col("seed") == 1).then(1 - pl.col("label")).otherwise(pl.col("label"))
    )
    with pytest.raises(ValueError, match="seed 1: its gold labels differ"):
        sweep_statistics(predictions, ["accuracy"], FAST)


def test_predictions_without_a_baseline_are_an_error() -> None:
    predictions = null_sweep(9, seeds=1).filter(pl.col("mask") != "baseline")
    with pytest.raises(ValueError, match="no baseline"):
        sweep_statistics(predictions, ["accuracy"], FAST)
