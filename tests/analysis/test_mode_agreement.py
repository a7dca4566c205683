"""Agreement of the per-head deltas of two disabling modes (`headlab.analysis.mode_agreement`).

Synthetic sweeps (3 layers x 4 heads + 3 layers + the baseline, 2 seeds) are built here as
predictions tables of `SWEEP_PREDICTIONS_SCHEMA`, one per mode, on the same dev examples (the
same gold labels in every seed: the library reads the labels of the first seed).

Proved here:

* two modes with identical predictions agree perfectly: Spearman = Kendall = top-k overlap = 1
  with zero-width intervals at 1, in every seed and pooled; `pearson_corrected` is 1 wherever it
  is defined, and exactly 1 with the interval [1, 1] when the heads have strong planted effects
  (it is NaN when the heads' deltas do not vary beyond their noise, e.g. null heads, or when
  every head equals the baseline);
* nested constructions (each head breaks a prefix of the same shuffled examples, the head's rank
  fixing the prefix length): deltas of one mode that are an increasing (non-linear) function of
  the other's give rank correlations and overlap 1, the reversed order gives -1 and overlap 0,
  and because every step of the prefixes is large every bootstrap replicate keeps the order, so
  the intervals are zero-width too; `pearson_corrected` is the Pearson correlation of the
  planted effects (0.991 for the convex construction, -1 for the reversed one);
* noise correction (48 heads, planted flip rates, independent flips in each mode): identical
  planted effects give `pearson_corrected` near 1 while Spearman is attenuated by the noise,
  unrelated planted effects give the planted correlation (near 0), a mode of pure noise gives a
  NaN interval, and `modes_agree_claim` on these tables is supported / contradicted / not
  supported respectively;
* on independent null modes (random flips) the pooled Spearman interval contains 0, and every
  observed value is scipy's statistic (and the stable top-k overlap) of the plain accuracy deltas;
* the table has `AGREEMENT_SCHEMA` and one row per pair of modes x statistic x scope (each seed
  and pooled); k is capped at the number of heads; fewer than two modes is a ValueError;
* `_spearman_rows` is scipy's Spearman row by row (ties included); `_overlap_rows` on a tiny
  hand-computed example; `corrected_pearson` on a hand-computed example.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from headlab.analysis.metrics import METRICS
from headlab.analysis.mode_agreement import (
    AGREEMENT_SCHEMA,
    STATISTICS,
    _overlap_rows,
    _spearman_rows,
    agreement_statistics,
    corrected_pearson,
    mode_agreement,
)
from headlab.analysis.mode_claims import STATISTIC, modes_agree_claim
from headlab.analysis.scoring import SWEEP_PREDICTIONS_SCHEMA

Mask = tuple[str, str, int | None, int | None]  # name, kind, layer, head
LAYERS, HEADS = 3, 4
N_HEADS = LAYERS * HEADS
EXAMPLES = 600
RESAMPLES = 250
ALPHA = 0.05
K = 3
RTOL, ATOL = 1e-9, 1e-12


def shown(row: dict) -> tuple[str, ...]:
    """The columns a row has numbers in: the top-k overlap has no interval (NaN by design)."""
    if row["statistic"] == "top_k_overlap":
        assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"]), row
        return ("value",)
    return ("value", "ci_low", "ci_high")


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


MASKS = sweep_masks()
HEAD_ROWS = np.arange(1, 1 + N_HEADS)  # the rows of the single heads in MASKS order


def seed_frame(masks: list[Mask], mode: str, seed: int, pred: np.ndarray, gold: np.ndarray) -> pl.DataFrame:
    """One seed's rows of one mode, every mask x example, as `SWEEP_PREDICTIONS_SCHEMA`;
    `pred` (masks, examples) in the order of `masks`."""
    n = gold.size
    rows = len(masks) * n
    columns = {
        "model": ["synthetic"] * rows,
        "task": ["SYN"] * rows,
        "seed": [seed] * rows,
        "mode": [mode] * rows,
        **{
            name: [m[column] for m in masks for _ in range(n)]
            for column, name in enumerate(("mask", "kind", "layer", "head"))
        },
        "example": np.tile(np.arange(n, dtype=np.int64), len(masks)),
        "prediction": np.asarray(pred, dtype=np.float64).reshape(-1),
        "label": np.tile(gold.astype(np.float64), len(masks)),
        "score": np.full(rows, np.nan),  # no logits behind these predictions
    }
    return pl.from_arrow(pa.Table.from_pydict(columns, schema=SWEEP_PREDICTIONS_SCHEMA))


def mode_frame(mode: str, seeds: list[tuple[np.ndarray, np.ndarray]]) -> pl.DataFrame:
    """One mode's predictions table of seeds 0, 1, ... given as (pred (masks, examples), gold)."""
    return pl.concat([seed_frame(MASKS, mode, seed, pred, gold) for seed, (pred, gold) in enumerate(seeds)])


def flipped(rng: np.random.Generator, pred: np.ndarray, rate: float, copies: int) -> np.ndarray:
    """(copies, n) binary predictions, each with an independent `rate` share of `pred` flipped."""
    return np.where(rng.random((copies, pred.size)) < rate, 1 - pred[None], pred[None])


def null_modes(seed: int, modes: list[str], seeds: int = 2) -> dict[str, pl.DataFrame]:
    """Independent null modes: one gold vector (the dev set's, every seed); per seed one
    reference (right on ~75 %) and one baseline shared by every mode (the baseline disables
    nothing); every other mask of every mode is the reference with its own random 3 % flipped."""
    rng = np.random.default_rng(seed)
    per_mode: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in modes}
    gold = rng.integers(0, 2, EXAMPLES)
    for _ in range(seeds):
        reference = np.where(rng.random(EXAMPLES) < 0.75, gold, 1 - gold)
        baseline = flipped(rng, reference, 0.03, 1)
        for mode in modes:
            pred = np.concatenate([baseline, flipped(rng, reference, 0.03, len(MASKS) - 1)])
            per_mode[mode].append((pred, gold))
    return {mode: mode_frame(mode, seeds_of) for mode, seeds_of in per_mode.items()}


def nested_seed(
    rng: np.random.Generator, rank: np.ndarray, sizes: dict[str, np.ndarray], gold: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One seed of several modes: the baseline is always right; in mode m, head h gets wrong the
    first sizes[m][rank[h]] examples of that mode's shuffled order (nested prefixes), so its
    accuracy delta is -sizes[m][rank[h]] / n. Layers are random guesses."""
    out = {}
    for mode, size in sizes.items():
        order = rng.permutation(EXAMPLES)
        pred = np.tile(gold, (len(MASKS), 1))
        for h in range(N_HEADS):
            pred[1 + h, order[: size[rank[h]]]] = 1 - gold[order[: size[rank[h]]]]
        pred[1 + N_HEADS :] = rng.integers(0, 2, (LAYERS, EXAMPLES))
        out[mode] = (pred, gold)
    return out


def nested_modes(seed: int, sizes: dict[str, np.ndarray], seeds: int = 2) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    rank = rng.permutation(N_HEADS)  # the same ranking of the heads in every seed
    gold = rng.integers(0, 2, EXAMPLES)  # the dev set's labels, the same in every seed
    drawn = [nested_seed(rng, rank, sizes, gold) for _ in range(seeds)]
    return {mode: mode_frame(mode, [d[mode] for d in drawn]) for mode in sizes}


def rows_of(table: pl.DataFrame, **equal: object) -> pl.DataFrame:
    for column, value in equal.items():
        table = table.filter(pl.col(column).is_null() if value is None else pl.col(column) == value)
    return table


def agree(predictions: dict[str, pl.DataFrame], k: int = K, seed: int = 0) -> pl.DataFrame:
    return mode_agreement(predictions, "accuracy", k, RESAMPLES, ALPHA, seed)


# The sizes of the nested prefixes by rank 0..11. Every step is 20 examples or more, so a
# bootstrap resample of 600 examples misses a whole step with probability about e^-20: every
# replicate keeps the order and the intervals are zero-width.
RANKS = np.arange(N_HEADS)
LINEAR = 20 * (RANKS + 1)  # up to 240 of 600
CONVEX = 2 * (RANKS + 1) ** 2 + 20 * (RANKS + 1)  # increasing, not linear in LINEAR; up to 528
REVERSED = 30 * (N_HEADS - RANKS)  # decreasing in the rank; up to 360
RANK_STATISTICS = ("spearman", "kendall", "top_k_overlap")


# --- known answers -------------------------------------------------------------------------------


def test_identical_modes_agree_perfectly_with_zero_width_intervals() -> None:
    uniform = null_modes(3, ["uniform"])["uniform"]
    zero = uniform.with_columns(mode=pl.lit("zero"))
    table = agree({"uniform": uniform, "zero": zero})
    assert table.height == len(STATISTICS) * 3  # one pair x statistics x (2 seeds + pooled)
    for row in table.iter_rows(named=True):
        if row["statistic"] == "pearson_corrected":
            # Identical deltas: the corrected covariance equals each corrected variance, so the
            # value is 1 where the corrected variance is positive and NaN where it is not. These
            # null heads do not vary beyond their noise, so NaN is allowed; any other value is not.
            for column in ("value", "ci_low", "ci_high"):
                assert math.isnan(row[column]) or row[column] == pytest.approx(1.0, rel=RTOL, abs=ATOL), row
            continue
        for column in shown(row):
            assert row[column] == pytest.approx(1.0, rel=RTOL, abs=ATOL), row


def test_identical_modes_with_strong_effects_have_corrected_correlation_one() -> None:
    """Strong planted effects (nested prefixes of 20 to 240 of 600 examples), the same
    predictions in both modes: every statistic, pearson_corrected included, is 1 with [1, 1]."""
    uniform = nested_modes(6, {"uniform": LINEAR})["uniform"]
    table = agree({"uniform": uniform, "zero": uniform.with_columns(mode=pl.lit("zero"))})
    assert set(table["statistic"]) == set(STATISTICS)
    for row in table.iter_rows(named=True):
        for column in shown(row):
            assert row[column] == pytest.approx(1.0, rel=RTOL, abs=ATOL), row


def test_identical_modes_whose_heads_change_nothing_have_a_nan_corrected_correlation() -> None:
    """Every head equals the baseline: every delta is 0 with no noise, the corrected variances
    are 0, and pearson_corrected is NaN (value and interval); the claim is not supported."""
    uniform = null_modes(7, ["uniform"])["uniform"]
    baseline = uniform.filter(pl.col("mask") == "baseline").select("seed", "example", "prediction")
    uniform = (
        uniform.drop("prediction").join(baseline, on=["seed", "example"], how="left").select(uniform.columns)
    )
    table = agree({"uniform": uniform, "zero": uniform.with_columns(mode=pl.lit("zero"))})
    corrected = rows_of(table, statistic="pearson_corrected")
    for column in ("value", "ci_low", "ci_high"):
        assert corrected[column].is_nan().all(), column
    row = modes_agree_claim(table, ["uniform", "zero"], 0.5)
    assert row["verdict"] == "inconclusive" and "NaN interval" in row["note"]


def test_increasing_function_of_the_deltas_gives_rank_correlation_one() -> None:
    table = agree(nested_modes(4, {"uniform": LINEAR, "zero": CONVEX}))
    assert set(table["scope"]) == {"seed", "pooled"}
    for row in table.iter_rows(named=True):
        if row["statistic"] == "pearson_corrected":
            # Pearson, not a rank statistic: the correlation of the planted (true) deltas, 0.991
            # for CONVEX against LINEAR (the noise of each delta is removed, up to its error; the
            # nested prefixes make the heads' noises covary, which the correction does not model,
            # so it overshoots a little: 1.0 (clipped) per seed, 0.996 pooled)
            planted = np.corrcoef(LINEAR, CONVEX)[0, 1]
            assert row["value"] == pytest.approx(planted, abs=0.02), row
            assert planted - 0.03 < row["ci_low"] <= row["ci_high"] <= 1.0, row
            continue
        # every rank statistic is 1: same order of the heads, so the same k lowest heads too
        for column in shown(row):
            assert row[column] == pytest.approx(1.0, rel=RTOL, abs=ATOL), row


def test_reversed_order_gives_rank_correlation_minus_one() -> None:
    table = agree(nested_modes(5, {"uniform": LINEAR, "zero": REVERSED}))
    for row in table.iter_rows(named=True):
        # the k = 3 heads that cost most in one mode cost least in the other: overlap 0 of 12;
        # REVERSED is linear in LINEAR with a negative slope: the corrected Pearson is -1 too
        # (the correction can only push |r| up, and it is clipped to [-1, 1])
        expected = 0.0 if row["statistic"] == "top_k_overlap" else -1.0
        for column in shown(row):
            assert row[column] == pytest.approx(expected, rel=RTOL, abs=ATOL), row


# --- the noise correction on planted effects -----------------------------------------------------

MANY_LAYERS, MANY_HEADS = 6, 8
MANY = MANY_LAYERS * MANY_HEADS  # 48 heads: enough for a correlation to be estimated closely
MANY_MASKS: list[Mask] = [("baseline", "baseline", None, None)] + [
    (f"L{layer}-H{head}", "head", layer, head)
    for layer in range(1, MANY_LAYERS + 1)
    for head in range(1, MANY_HEADS + 1)
]
# Flip rates of the 48 heads: the true accuracy delta of head h is -FLIP_RATES[h] (the baseline is
# always right). Their spread (sd 0.012) is about the size of a pooled delta's noise (sd ~0.007 per
# seed and mode), so observed correlations are attenuated to about 0.74 of the true one.
FLIP_RATES = np.linspace(0.04, 0.08, MANY)


def planted_modes(
    seed: int, rates: dict[str, np.ndarray], seeds: int = 2, fragile: int = 0
) -> dict[str, pl.DataFrame]:
    """Modes whose heads have planted true effects: one gold vector; the baseline is always right
    (so it adds no noise); in mode m every head h flips each example independently with
    probability rates[m][h], a fresh draw in every mode and seed (independent noise). With
    `fragile`, that many examples per seed (drawn at random) are flipped by every head of every
    mode: the same shift of every delta, which changes no head's effect relative to the others."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 2, EXAMPLES)
    frames: dict[str, list[pl.DataFrame]] = {m: [] for m in rates}
    for s in range(seeds):
        shared = rng.permutation(EXAMPLES)[:fragile] if fragile else np.array([], dtype=int)
        for mode, rate in rates.items():
            flips = rng.random((MANY, EXAMPLES)) < rate[:, None]
            flips[:, shared] = True
            pred = np.concatenate([gold[None], np.where(flips, 1 - gold[None], gold[None])])
            frames[mode].append(seed_frame(MANY_MASKS, mode, s, pred, gold))
    return {mode: pl.concat(f) for mode, f in frames.items()}


def pooled_row(table: pl.DataFrame, statistic: str) -> dict[str, object]:
    return rows_of(table, scope="pooled", statistic=statistic).row(0, named=True)


def test_identical_true_effects_with_independent_noise_correlate_near_one() -> None:
    table = agree(planted_modes(81, {"uniform": FLIP_RATES, "zero": FLIP_RATES}), k=5)
    corrected, spearman = pooled_row(table, STATISTIC), pooled_row(table, "spearman")
    # the true effects are identical: the corrected correlation is near 1, while the noise of
    # each delta attenuates the rank correlation (to about 0.74 here)
    assert corrected["value"] > 0.9, corrected
    assert spearman["value"] < 0.85 and spearman["value"] < corrected["value"] - 0.1, spearman
    assert 0.5 < corrected["ci_low"] <= corrected["value"] <= corrected["ci_high"] <= 1.0, corrected
    # the claim reads the corrected rows: every interval above 0.5 -> supported
    assert modes_agree_claim(table, ["uniform", "zero"], 0.5)["verdict"] == "supported"


def test_unrelated_true_effects_have_the_planted_correlation() -> None:
    shuffled = np.random.default_rng(101).permutation(FLIP_RATES)
    planted = np.corrcoef(FLIP_RATES, shuffled)[0, 1]  # 0.13: unrelated effects
    assert abs(planted) < 0.2
    table = agree(planted_modes(82, {"uniform": FLIP_RATES, "zero": shuffled}), k=5)
    corrected = pooled_row(table, STATISTIC)
    assert corrected["value"] == pytest.approx(planted, abs=0.2), corrected
    assert corrected["ci_low"] < planted < corrected["ci_high"] < 0.5, corrected
    assert modes_agree_claim(table, ["uniform", "zero"], 0.5)["verdict"] == "contradicted"


def test_examples_every_head_flips_do_not_hide_identical_true_effects() -> None:
    """As the identical-effects test, plus 30 fragile examples (5 %) that every head of both modes
    flips: each delta moves by the same amount, so the heads' effects relative to each other and
    their correlation (1) are unchanged: the noise the heads share is not subtracted
    (`spread_noise` centres the noise over the heads), so the interval stays above 0.5."""
    table = agree(planted_modes(91, {"uniform": FLIP_RATES, "zero": FLIP_RATES}, fragile=30), k=5)
    corrected = pooled_row(table, STATISTIC)
    assert corrected["ci_low"] > 0.5, corrected


def test_a_mode_of_pure_noise_has_a_nan_interval_and_is_not_supported() -> None:
    """Mode "zero": every head has the same true effect (flip rate 0.06), so its deltas differ
    only by noise. Their spread estimates the noise, so the corrected variance is about 0 and
    negative in about half the replicates: fewer than 95 % finite replicates, a NaN interval.
    (The value itself is NaN or not by chance: the observed spread is one noisy estimate.)"""
    for seed in (83, 84, 85):
        rates = {"uniform": FLIP_RATES, "zero": np.full(MANY, 0.06)}
        table = agree(planted_modes(seed, rates), k=5)
        corrected = pooled_row(table, STATISTIC)
        assert math.isnan(corrected["ci_low"]) and math.isnan(corrected["ci_high"]), corrected
        row = modes_agree_claim(table, ["uniform", "zero"], 0.5)
        assert row["verdict"] == "inconclusive" and "NaN interval" in row["note"], row


def test_independent_null_modes_have_a_pooled_spearman_interval_around_zero() -> None:
    for seed in (11, 12, 13):
        table = agree(null_modes(seed, ["uniform", "zero"]))
        pooled = rows_of(table, scope="pooled", statistic="spearman").row(0, named=True)
        assert pooled["ci_low"] < 0 < pooled["ci_high"], pooled
        assert pooled["ci_low"] <= pooled["value"] <= pooled["ci_high"]


def plain_deltas(frame: pl.DataFrame, seed: int) -> np.ndarray:
    """(heads,) accuracy of every single head minus the baseline's, with the plain metric."""
    rows = frame.filter(pl.col("seed") == seed)

    def score(mask: str) -> float:
        part = rows.filter(pl.col("mask") == mask).sort("example")
        return METRICS["accuracy"](part["prediction"].to_numpy(), part["label"].to_numpy())

    base = score("baseline")
    return np.array([score(m[0]) - base for m in MASKS if m[1] == "head"])


def overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of the k lowest of a (stable order) that are among the k lowest of b."""
    low_a = set(np.argsort(a, kind="stable")[:k].tolist())
    low_b = set(np.argsort(b, kind="stable")[:k].tolist())
    return len(low_a & low_b) / k


def test_observed_values_are_the_statistics_of_the_plain_deltas() -> None:
    predictions = null_modes(21, ["uniform", "zero"])
    table = agree(predictions)
    deltas = {mode: np.stack([plain_deltas(frame, s) for s in (0, 1)]) for mode, frame in predictions.items()}
    scopes: list[tuple[int | None, np.ndarray, np.ndarray]] = [
        (s, deltas["uniform"][s], deltas["zero"][s]) for s in (0, 1)
    ]
    scopes.append((None, deltas["uniform"].mean(0), deltas["zero"].mean(0)))
    for seed, a, b in scopes:
        scope = "pooled" if seed is None else "seed"
        expected = {
            "spearman": stats.spearmanr(a, b).statistic,
            "kendall": stats.kendalltau(a, b).statistic,
            "top_k_overlap": overlap(a, b, K),
        }
        for statistic, value in expected.items():
            row = rows_of(table, scope=scope, seed=seed, statistic=statistic).row(0, named=True)
            assert row["value"] == pytest.approx(value, rel=RTOL, abs=ATOL), (scope, seed, statistic)
            if statistic == "top_k_overlap":
                assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
            else:
                assert row["ci_low"] <= row["ci_high"]


# --- the table -----------------------------------------------------------------------------------


def test_one_row_per_pair_statistic_and_scope() -> None:
    modes = ["uniform", "zero", "mean"]
    table = agree(null_modes(31, modes))
    assert dict(table.schema) == AGREEMENT_SCHEMA
    pairs = list(combinations(modes, 2))
    assert table.height == len(pairs) * len(STATISTICS) * (2 + 1)
    keys = table.select("mode_a", "mode_b", "statistic", "scope", "seed").unique()
    assert keys.height == table.height  # no duplicate row
    assert set(table.select("mode_a", "mode_b").unique().rows()) == set(pairs)
    assert set(table["statistic"]) == set(STATISTICS)
    assert sorted(rows_of(table, scope="seed")["seed"].unique().to_list()) == [0, 1]
    assert rows_of(table, scope="pooled")["seed"].is_null().all()
    assert rows_of(table, scope="pooled").height == len(pairs) * len(STATISTICS)
    assert set(table["model"]) == {"synthetic"} and set(table["task"]) == {"SYN"}
    assert set(table["metric"]) == {"accuracy"}
    assert set(table["k"]) == {K} and set(table["n_heads"]) == {N_HEADS}
    assert set(table["n_examples"]) == {EXAMPLES}


def test_k_is_capped_at_the_number_of_heads() -> None:
    table = agree(null_modes(41, ["uniform", "zero"]), k=100)
    assert set(table["k"]) == {N_HEADS}
    overlaps = rows_of(table, statistic="top_k_overlap")
    # the "top" 12 of 12 heads are all heads in both modes; the overlap has no interval
    np.testing.assert_allclose(overlaps["value"].to_numpy(), 1.0, rtol=RTOL, atol=ATOL)
    assert overlaps["ci_low"].is_nan().all() and overlaps["ci_high"].is_nan().all()


def test_same_seed_same_table() -> None:
    predictions = null_modes(51, ["uniform", "zero"])
    first, second = agree(predictions, seed=7), agree(predictions, seed=7)
    assert first.equals(second)


@pytest.mark.parametrize("modes", [[], ["uniform"]])
def test_fewer_than_two_modes_is_an_error(modes: list[str]) -> None:
    predictions = {m: f for m, f in null_modes(61, ["uniform"]).items() if m in modes}
    with pytest.raises(ValueError, match=r"two modes or more"):
        agree(predictions)


# --- helpers -------------------------------------------------------------------------------------


def test_spearman_rows_equals_scipy_row_by_row_with_ties() -> None:
    rng = np.random.default_rng(71)
    a = rng.integers(0, 5, (40, 12)).astype(np.float64)  # many ties
    b = a + rng.integers(-2, 3, (40, 12))  # correlated, with ties
    c = rng.normal(size=(40, 12))  # no ties
    for x, y in ((a, b), (a, c), (c, -c)):
        # skip rows scipy cannot score (a constant row): neither side is defined there
        ok = (x.std(1) > 0) & (y.std(1) > 0)
        expected = np.array([stats.spearmanr(u, v).statistic for u, v in zip(x[ok], y[ok], strict=True)])
        np.testing.assert_allclose(_spearman_rows(x[ok], y[ok]), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_spearman_rows(c, -c), -1.0, rtol=1e-10, atol=1e-12)


def test_spearman_rows_of_a_constant_row_is_nan() -> None:
    a = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0]])
    b = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    result = _spearman_rows(a, b)
    assert np.isnan(result[0])
    assert result[1] == pytest.approx(-1.0, rel=1e-12, abs=1e-12)


def test_overlap_rows_by_hand() -> None:
    a = np.array(
        [
            [0.3, -0.2, 0.1, -0.5, 0.0],  # 2 lowest: heads 3 (-0.5), 1 (-0.2)
            [0.0, 0.0, 0.0, 1.0, 2.0],  # a tie: the stable order keeps heads 0, 1
            [1.0, 2.0, 3.0, 4.0, 5.0],  # heads 0, 1
        ]
    )
    b = np.array(
        [
            [-0.4, 0.2, -0.1, -0.3, 0.5],  # heads 0 (-0.4), 3 (-0.3): shared {3} -> 1 / 2
            [0.0, 1.0, 0.0, 0.0, 2.0],  # heads 0, 2 (stable): shared {0} -> 1 / 2
            [5.0, 4.0, 3.0, 2.0, 1.0],  # heads 4, 3: shared {} -> 0
        ]
    )
    np.testing.assert_array_equal(_overlap_rows(a, b, 2), [0.5, 0.5, 0.0])
    # k = 3: a's lowest {3, 1, 4}, {0, 1, 2}, {0, 1, 2}; b's {0, 3, 2}, {0, 2, 3}, {4, 3, 2}
    np.testing.assert_allclose(_overlap_rows(a, b, 3), [1 / 3, 2 / 3, 1 / 3], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(_overlap_rows(a, a, 2), [1.0, 1.0, 1.0])


def test_agreement_statistics_keys_and_kendall() -> None:
    rng = np.random.default_rng(81)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    result = agreement_statistics(a, b, 2, (0.0, 0.0, 0.0), times=1.0)
    assert tuple(result) == STATISTICS
    assert all(v.shape == (5,) for v in result.values())
    expected = [stats.kendalltau(x, y).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(result["kendall"], expected, rtol=1e-12, atol=1e-12)
    # without noise the corrected correlation is the plain Pearson correlation
    plain = [stats.pearsonr(x, y).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(result["pearson_corrected"], plain, rtol=1e-10, atol=1e-12)


def test_corrected_pearson_by_hand() -> None:
    # a = 1, 2, 3, 4 and b = 4, 1, 3, 2: variances 5/3 each (ddof 1), covariance -2/3, r = -0.4
    a, b = np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[4.0, 1.0, 3.0, 2.0]])
    np.testing.assert_allclose(corrected_pearson(a, b, 0.0, 0.0, 0.0), [-0.4], rtol=1e-12)
    # noise variances 2/3: corrected variances 1 each, so r = -2/3
    np.testing.assert_allclose(corrected_pearson(a, b, 2 / 3, 2 / 3, 0.0), [-2 / 3], rtol=1e-12)
    # a noise covariance of -1/6 too: covariance -2/3 + 1/6 = -1/2, r = -1/2
    np.testing.assert_allclose(corrected_pearson(a, b, 2 / 3, 2 / 3, -1 / 6), [-0.5], rtol=1e-12)
    # twice the noise: variances 1/3, covariance -2/3: r = -2, clipped to -1
    np.testing.assert_allclose(corrected_pearson(a, b, 2 / 3, 2 / 3, 0.0, times=2.0), [-1.0], rtol=1e-12)
    # a corrected variance that is not positive: NaN
    assert np.isnan(corrected_pearson(a, b, 5 / 3, 2 / 3, 0.0)[0])
    assert np.isnan(corrected_pearson(a, b, 2.0, 2 / 3, 0.0)[0])
