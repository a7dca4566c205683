"""Rank agreement of the per-head deltas of two disabling modes (`headlab.analysis.mode_agreement`).

Synthetic sweeps (3 layers x 4 heads + 3 layers + the baseline, 2 seeds) are built here as
predictions tables of `SWEEP_PREDICTIONS_SCHEMA`, one per mode, on the same dev examples.

Proved here:

* two modes with identical predictions agree perfectly: Spearman = Kendall = top-k overlap = 1
  with zero-width intervals at 1, in every seed and pooled;
* nested constructions (each head breaks a prefix of the same shuffled examples, the head's rank
  fixing the prefix length): deltas of one mode that are an increasing (non-linear) function of
  the other's give rank correlations and overlap 1, the reversed order gives -1 and overlap 0,
  and because every step of the prefixes is large every bootstrap replicate keeps the order, so
  the intervals are zero-width too;
* on independent null modes (random flips) the pooled Spearman interval contains 0, and every
  observed value is scipy's statistic (and the stable top-k overlap) of the plain accuracy deltas;
* the table has `AGREEMENT_SCHEMA` and one row per pair of modes x statistic x scope (each seed
  and pooled); k is capped at the number of heads; fewer than two modes is a ValueError;
* `_spearman_rows` is scipy's Spearman row by row (ties included); `_overlap_rows` on a tiny
  hand-computed example.
"""

from __future__ import annotations

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
    mode_agreement,
)
from headlab.analysis.scoring import SWEEP_PREDICTIONS_SCHEMA

Mask = tuple[str, str, int | None, int | None]  # name, kind, layer, head
LAYERS, HEADS = 3, 4
N_HEADS = LAYERS * HEADS
EXAMPLES = 600
RESAMPLES = 250
ALPHA = 0.05
K = 3
RTOL, ATOL = 1e-9, 1e-12


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
        "example": np.tile(np.arange(n, dtype=np.int32), len(masks)),
        "prediction": np.asarray(pred, dtype=np.float64).reshape(-1),
        "label": np.tile(gold.astype(np.float64), len(masks)),
    }
    return pl.from_arrow(pa.Table.from_pydict(columns, schema=SWEEP_PREDICTIONS_SCHEMA))


def mode_frame(mode: str, seeds: list[tuple[np.ndarray, np.ndarray]]) -> pl.DataFrame:
    """One mode's predictions table of seeds 0, 1, ... given as (pred (masks, examples), gold)."""
    return pl.concat([seed_frame(MASKS, mode, seed, pred, gold) for seed, (pred, gold) in enumerate(seeds)])


def flipped(rng: np.random.Generator, pred: np.ndarray, rate: float, copies: int) -> np.ndarray:
    """(copies, n) binary predictions, each with an independent `rate` share of `pred` flipped."""
    return np.where(rng.random((copies, pred.size)) < rate, 1 - pred[None], pred[None])


def null_modes(seed: int, modes: list[str], seeds: int = 2) -> dict[str, pl.DataFrame]:
    """Independent null modes: per seed one gold vector, one reference (right on ~75 %) and one
    baseline shared by every mode (the baseline disables nothing); every other mask of every mode
    is the reference with its own random 3 % flipped."""
    rng = np.random.default_rng(seed)
    per_mode: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {m: [] for m in modes}
    for _ in range(seeds):
        gold = rng.integers(0, 2, EXAMPLES)
        reference = np.where(rng.random(EXAMPLES) < 0.75, gold, 1 - gold)
        baseline = flipped(rng, reference, 0.03, 1)
        for mode in modes:
            pred = np.concatenate([baseline, flipped(rng, reference, 0.03, len(MASKS) - 1)])
            per_mode[mode].append((pred, gold))
    return {mode: mode_frame(mode, seeds_of) for mode, seeds_of in per_mode.items()}


def nested_seed(
    rng: np.random.Generator, rank: np.ndarray, sizes: dict[str, np.ndarray]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """One seed of several modes: the baseline is always right; in mode m, head h gets wrong the
    first sizes[m][rank[h]] examples of that mode's shuffled order (nested prefixes), so its
    accuracy delta is -sizes[m][rank[h]] / n. Layers are random guesses."""
    gold = rng.integers(0, 2, EXAMPLES)
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
    drawn = [nested_seed(rng, rank, sizes) for _ in range(seeds)]
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


# --- known answers -------------------------------------------------------------------------------


def test_identical_modes_agree_perfectly_with_zero_width_intervals() -> None:
    uniform = null_modes(3, ["uniform"])["uniform"]
    zero = uniform.with_columns(mode=pl.lit("zero"))
    table = agree({"uniform": uniform, "zero": zero})
    assert table.height == len(STATISTICS) * 3  # one pair x statistics x (2 seeds + pooled)
    for row in table.iter_rows(named=True):
        assert row["value"] == pytest.approx(1.0, rel=RTOL, abs=ATOL), row
        assert row["ci_low"] == pytest.approx(1.0, rel=RTOL, abs=ATOL), row
        assert row["ci_high"] == pytest.approx(1.0, rel=RTOL, abs=ATOL), row


def test_increasing_function_of_the_deltas_gives_rank_correlation_one() -> None:
    table = agree(nested_modes(4, {"uniform": LINEAR, "zero": CONVEX}))
    assert set(table["scope"]) == {"seed", "pooled"}
    for row in table.iter_rows(named=True):
        # every statistic is 1: same order of the heads, so the same k lowest heads too
        for column in ("value", "ci_low", "ci_high"):
            assert row[column] == pytest.approx(1.0, rel=RTOL, abs=ATOL), row


def test_reversed_order_gives_rank_correlation_minus_one() -> None:
    table = agree(nested_modes(5, {"uniform": LINEAR, "zero": REVERSED}))
    for row in table.iter_rows(named=True):
        # the k = 3 heads that cost most in one mode cost least in the other: overlap 0 of 12
        expected = 0.0 if row["statistic"] == "top_k_overlap" else -1.0
        for column in ("value", "ci_low", "ci_high"):
            assert row[column] == pytest.approx(expected, rel=RTOL, abs=ATOL), row


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
    # the "top" 12 of 12 heads are all heads in both modes
    for column in ("value", "ci_low", "ci_high"):
        np.testing.assert_allclose(overlaps[column].to_numpy(), 1.0, rtol=RTOL, atol=ATOL)


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
    result = agreement_statistics(a, b, 2)
    assert tuple(result) == STATISTICS
    assert all(v.shape == (5,) for v in result.values())
    expected = [stats.kendalltau(x, y).statistic for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(result["kendall"], expected, rtol=1e-12, atol=1e-12)
