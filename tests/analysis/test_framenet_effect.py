"""The Sec. 5 FrameNet experiment's table (`headlab.analysis.framenet_effect`) on synthetic predictions.

Synthetic predictions of `SWEEP_PREDICTIONS_SCHEMA` (3 seeds, 400 dev examples, the same gold
labels in every seed: one dev set) have the masks "baseline" (kind baseline), "framenet" (kind
named) and "random-1", ... (kind random). The random sets are null masks: the baseline with a
random 2 % of its predictions flipped (classification) or a little noise added (regression), so
their deltas are close to 0.

Proved here:

* a framenet mask identical to the baseline has delta 0, se 0, the interval [0, 0] and p = 1
  (Pearson: 0 up to float noise of 1e-16, still p = 1);
* one that corrects many of the baseline's wrong predictions has an interval above 0 and
  share_null_below 1.0 (every random set does worse); one that breaks many right predictions an
  interval below 0 and share_null_below 0.0; both have p = max(the t p-value of (delta, se, df),
  the permutation p-value), the latter at its floor 1 / (1 + permutations);
* seeds with identical predictions: no seed part, so df is infinite, se is the bootstrap
  standard error of one seed's accuracy delta (close to sd(per-example difference) / sqrt(n))
  and the interval is delta +- z(0.975) se;
* the interval is the t interval of (delta, se, df), also where the permutation test does not
  reject (4 corrected examples: the interval excludes 0, p does not; verdicts read p);
* delta, null_mean, null_low, null_high and share_null_below are the plain accuracy (Pearson)
  deltas averaged over seeds, their mean, 2.5 / 97.5 % quantiles and share below; and
  null_low <= null_mean <= null_high;
* the task's primary metric is used (SST-2: accuracy, STS-B: pearson); heads, n_heads, n_sets,
  n_seeds and n_examples are passed through or counted; no random set gives NaN null columns;
* one row per task x mode, sorted, with `EFFECT_SCHEMA`; the same seed gives the same table.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from headlab.analysis.framenet_effect import EFFECT_SCHEMA, effect_row, framenet_effect
from headlab.analysis.metrics import METRICS
from headlab.analysis.scoring import SWEEP_PREDICTIONS_SCHEMA
from headlab.analysis.significance import StatisticsSettings

Mask = tuple[str, str, int | None, int | None]  # name, kind, layer, head
EXAMPLES, SEEDS, SETS = 400, 3, 20
RESAMPLES = 250
PERMUTATIONS = 2000  # p >= 1 / 2001
ALPHA = 0.05
HEADS = [(2, 12), (4, 1)]
RTOL, ATOL = 1e-9, 1e-12


def framenet_masks(sets: int = SETS) -> list[Mask]:
    """The baseline, "framenet" and `sets` random sets, as the experiment's jobs write them."""
    masks: list[Mask] = [("baseline", "baseline", None, None), ("framenet", "named", None, None)]
    return masks + [(f"random-{i + 1}", "random", None, None) for i in range(sets)]


def seed_frame(
    masks: list[Mask], task: str, mode: str, seed: int, pred: np.ndarray, gold: np.ndarray
) -> pl.DataFrame:
    """One seed's rows, every mask x example, as `SWEEP_PREDICTIONS_SCHEMA`; `pred` (masks,
    examples) in the order of `masks`."""
    n = gold.size
    rows = len(masks) * n
    columns = {
        "model": ["synthetic"] * rows,
        "task": [task] * rows,
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


def flipped(rng: np.random.Generator, pred: np.ndarray, rate: float, copies: int) -> np.ndarray:
    """(copies, n) binary predictions, each with an independent `rate` share of `pred` flipped."""
    return np.where(rng.random((copies, pred.size)) < rate, 1 - pred[None], pred[None])


def classification_seed(
    rng: np.random.Generator, effect: str, sets: int, gold: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(pred (masks, n), gold): the baseline is right on ~75 %; "framenet" is the baseline
    ("same"), or with 60 % of its wrong predictions corrected ("better") or 60 % of its right
    ones broken ("worse"); every random set is the baseline with a random 2 % flipped."""
    gold = gold.astype(np.int64)
    baseline = np.where(rng.random(EXAMPLES) < 0.75, gold, 1 - gold)
    chosen = rng.random(EXAMPLES) < 0.6
    if effect == "same":
        target = baseline.copy()
    elif effect == "better":
        target = np.where(chosen & (baseline != gold), gold, baseline)
    else:
        target = np.where(chosen & (baseline == gold), 1 - gold, baseline)
    return np.concatenate([baseline[None], target[None], flipped(rng, baseline, 0.02, sets)]), gold


def regression_seed(
    rng: np.random.Generator, effect: str, sets: int, gold: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(pred (masks, n), gold) of a similarity score in [0, 5]: the baseline is gold plus noise,
    "framenet" the baseline ("same") and the random sets the baseline plus a little noise."""
    assert effect == "same"
    baseline = gold + rng.normal(0, 1.0, EXAMPLES)
    noise = rng.normal(0, 0.1, (sets, EXAMPLES))
    return np.concatenate([baseline[None], baseline[None], baseline[None] + noise]), gold


def task_frame(
    seed: int,
    task: str,
    mode: str,
    effect: str = "same",
    sets: int = SETS,
    seeds: int = SEEDS,
    same_seeds: bool = False,
) -> pl.DataFrame:
    """Every seed's predictions of one task x mode on one dev set (gold drawn once); with
    `same_seeds` every seed has the first seed's predictions."""
    rng = np.random.default_rng(seed)
    regression = task == "STS-B"
    gold = rng.uniform(0, 5, EXAMPLES) if regression else rng.integers(0, 2, EXAMPLES)
    draw = regression_seed if regression else classification_seed
    masks = framenet_masks(sets)
    drawn = [draw(rng, effect, sets, gold) for _ in range(1 if same_seeds else seeds)]
    return pl.concat([seed_frame(masks, task, mode, s, *drawn[0 if same_seeds else s]) for s in range(seeds)])


def settings(seed: int = 0) -> StatisticsSettings:
    return StatisticsSettings(resamples=RESAMPLES, permutations=PERMUTATIONS, alpha=ALPHA, seed=seed)


def effect(predictions: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    return framenet_effect(predictions, HEADS, settings(seed))


def plain_deltas(predictions: pl.DataFrame, metric: str) -> dict[str, float]:
    """mask -> the plain metric delta from the baseline, averaged over seeds."""
    per_seed = []
    for seed in sorted(predictions["seed"].unique().to_list()):
        rows = predictions.filter(pl.col("seed") == seed)

        def score(mask: str, rows: pl.DataFrame = rows) -> float:
            part = rows.filter(pl.col("mask") == mask).sort("example")
            return METRICS[metric](part["prediction"].to_numpy(), part["label"].to_numpy())

        names = rows["mask"].unique(maintain_order=True).to_list()
        base = score("baseline")
        per_seed.append({name: score(name) - base for name in names})
    return {name: float(np.mean([d[name] for d in per_seed])) for name in per_seed[0]}


def only_row(table: pl.DataFrame) -> dict[str, object]:
    assert table.height == 1
    return table.row(0, named=True)


# --- known answers -------------------------------------------------------------------------------


FLOAT_NOISE = 1e-12  # Pearson from sums of a matrix product: identical inputs differ by ~1e-16


@pytest.mark.parametrize("task", ["SST-2", "STS-B"])
def test_framenet_identical_to_the_baseline_has_delta_zero(task: str) -> None:
    row = only_row(effect(task_frame(1, task, "uniform", "same")))
    # accuracy: exactly 0; Pearson (STS-B): 0 up to float noise (-1.5e-16 with se 1.5e-16), which
    # the library treats as no spread (below its ZERO_SPREAD), so p is still exactly 1
    for column in ("delta", "se", "ci_low", "ci_high"):
        assert row[column] == pytest.approx(0.0, abs=FLOAT_NOISE), column
    if task == "SST-2":
        assert row["delta"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0
    assert row["p_value"] == 1.0  # nothing changed: no test can reject


def t_p_value(row: dict[str, object]) -> float:
    """The two-sided t p-value of the row's (delta, se, df)."""
    return float(2 * stats.t.sf(abs(row["delta"] / row["se"]), row["df"]))


def test_framenet_that_corrects_many_predictions_beats_every_random_set() -> None:
    row = only_row(effect(task_frame(2, "SST-2", "uniform", "better")))
    # ~60 % of the ~25 % wrong predictions corrected: about +0.15
    assert row["delta"] > 0.1
    assert 0 < row["ci_low"] <= row["delta"] <= row["ci_high"]
    # every swap of the ~45 corrected examples per seed moves the delta towards 0: no permutation
    # is as extreme, so the permutation p is at its floor; p is the larger of it and the t p-value
    # (three seeds: the seed part has 2 df, so the t p-value can be the larger, 0.003 here)
    assert row["p_value"] == pytest.approx(max(t_p_value(row), 1 / (1 + PERMUTATIONS)), rel=1e-9)
    assert row["p_value"] < ALPHA
    assert row["share_null_below"] == 1.0
    assert row["null_high"] < row["ci_low"]


def test_framenet_that_breaks_many_predictions_is_below_every_random_set() -> None:
    row = only_row(effect(task_frame(3, "SST-2", "zero", "worse")))
    assert row["delta"] < -0.3  # ~60 % of the ~75 % right predictions broken: about -0.45
    assert row["ci_low"] <= row["delta"] <= row["ci_high"] < 0
    assert row["p_value"] == pytest.approx(max(t_p_value(row), 1 / (1 + PERMUTATIONS)), rel=1e-9)
    assert row["p_value"] < ALPHA
    assert row["share_null_below"] == 0.0
    assert row["ci_high"] < row["null_low"]


@pytest.mark.parametrize(
    ("task", "metric", "kind"), [("SST-2", "accuracy", "better"), ("STS-B", "pearson", "same")]
)
def test_columns_are_the_plain_deltas_and_their_null(task: str, metric: str, kind: str) -> None:
    predictions = task_frame(4, task, "mean", kind)
    row = only_row(effect(predictions))
    assert row["metric"] == metric
    deltas = plain_deltas(predictions, metric)
    null = np.array([deltas[f"random-{i + 1}"] for i in range(SETS)])
    assert row["delta"] == pytest.approx(deltas["framenet"], rel=RTOL, abs=ATOL)
    assert row["null_mean"] == pytest.approx(null.mean(), rel=RTOL, abs=ATOL)
    # np.quantile's default (linear) interpolation is the null interval's definition
    low, high = np.quantile(null, [ALPHA / 2, 1 - ALPHA / 2])
    assert row["null_low"] == pytest.approx(low, rel=RTOL, abs=ATOL)
    assert row["null_high"] == pytest.approx(high, rel=RTOL, abs=ATOL)
    assert row["share_null_below"] == pytest.approx(float((null < deltas["framenet"]).mean()), abs=1e-12)
    assert row["null_low"] <= row["null_mean"] <= row["null_high"]
    assert null.min() <= row["null_low"] and row["null_high"] <= null.max()


def test_identical_seeds_give_the_bootstrap_interval_of_one_seed() -> None:
    """Three seeds with the same predictions: the seeds' deltas do not spread, so the variance is
    the example part alone, df is infinite and the interval is delta +- 1.96 se, with se the
    bootstrap standard error of the accuracy delta: about sd(d) / sqrt(n), d the per-example
    difference of correctness (framenet minus baseline)."""
    predictions = task_frame(7, "SST-2", "uniform", "better", same_seeds=True)
    row = only_row(effect(predictions))
    seed0 = predictions.filter(pl.col("seed") == 0)

    def correct(mask: str) -> np.ndarray:
        part = seed0.filter(pl.col("mask") == mask).sort("example")
        return (part["prediction"].to_numpy() == part["label"].to_numpy()).astype(float)

    d = correct("framenet") - correct("baseline")
    assert row["delta"] == pytest.approx(d.mean(), rel=RTOL, abs=ATOL)
    assert math.isinf(row["df"])
    # 250 resamples estimate an sd within ~5 %: 15 % is a wide margin
    assert row["se"] == pytest.approx(d.std() / math.sqrt(EXAMPLES), rel=0.15)
    z = stats.norm.ppf(1 - ALPHA / 2)
    assert row["ci_low"] == pytest.approx(row["delta"] - z * row["se"], rel=RTOL, abs=ATOL)
    assert row["ci_high"] == pytest.approx(row["delta"] + z * row["se"], rel=RTOL, abs=ATOL)


@pytest.mark.parametrize(("seed", "kind"), [(8, "better"), (9, "worse"), (10, "same")])
def test_interval_is_the_t_interval_of_se_and_df(seed: int, kind: str) -> None:
    """Distinct seeds: the interval is delta +- t(0.975, df) se of the reported columns (the
    library widens it to 0 only where p >= alpha, which these effects are not)."""
    row = only_row(effect(task_frame(seed, "SST-2", "mean", kind)))
    if kind == "same":
        assert row["p_value"] == 1.0 and row["ci_low"] == 0.0 == row["ci_high"]
        return
    assert row["p_value"] < ALPHA
    assert row["se"] > 0 and math.isfinite(row["df"]) and row["df"] > 0
    half = stats.t.ppf(1 - ALPHA / 2, row["df"]) * row["se"]
    assert row["ci_low"] == pytest.approx(row["delta"] - half, rel=1e-9, abs=ATOL)
    assert row["ci_high"] == pytest.approx(row["delta"] + half, rel=1e-9, abs=ATOL)
    assert row["p_value"] >= t_p_value(row) * (1 - 1e-9)


def few_corrections(corrected: int) -> pl.DataFrame:
    """Three identical seeds: the baseline is wrong on the first 100 of 400 examples, "framenet"
    corrects the first `corrected` of them, two random sets flip one other example each."""
    gold = np.tile([0.0, 1.0], EXAMPLES // 2)
    base = np.where(np.arange(EXAMPLES) < 100, 1 - gold, gold)
    target = base.copy()
    target[:corrected] = gold[:corrected]
    nulls = np.stack([base, base])
    nulls[0, 200], nulls[1, 201] = 1 - nulls[0, 200], 1 - nulls[1, 201]
    pred = np.concatenate([base[None], target[None], nulls])
    return pl.concat([seed_frame(framenet_masks(2), "SST-2", "uniform", s, pred, gold) for s in range(SEEDS)])


def test_few_corrections_keep_the_t_interval_and_the_verdict_reads_p() -> None:
    """4 corrected examples, the same in every seed: delta +1 point, se about 0.5 points (df
    infinite): the t interval (lower bound about +0.05 points) excludes 0, while the permutation
    test (2 of the 16 orientations of the 4 examples are as extreme: p ~ 0.125) does not reject.
    The interval stays the calibrated t interval; p (the larger of the two tests) is what a
    verdict reads, so a harm claim on such a row is not contradicted."""
    row = only_row(effect(few_corrections(4)))
    assert row["delta"] == pytest.approx(4 / EXAMPLES, rel=RTOL)
    assert row["p_value"] > ALPHA
    half = stats.t.ppf(1 - ALPHA / 2, row["df"]) * row["se"]
    assert row["ci_low"] == pytest.approx(row["delta"] - half, rel=1e-9)
    assert row["ci_low"] > 0


# --- the table -----------------------------------------------------------------------------------


def test_counts_and_heads_are_passed_through() -> None:
    predictions = task_frame(5, "SST-2", "uniform", "better", sets=7, seeds=2)
    row = only_row(effect(predictions))
    assert row["heads"] == "L2-H12,L4-H1" and row["n_heads"] == len(HEADS)
    assert row["n_heads"] == 2
    assert row["n_sets"] == 7
    assert row["n_seeds"] == 2
    assert row["n_examples"] == EXAMPLES
    assert row["model"] == "synthetic" and row["task"] == "SST-2" and row["mode"] == "uniform"
    assert row["null_low"] <= row["null_mean"] <= row["null_high"]
    single = only_row(framenet_effect(predictions, [(1, 1)], settings()))
    assert single["heads"] == "L1-H1" and single["n_heads"] == 1
    # the table's row is effect_row of the group
    assert effect_row(predictions, [(1, 1)], settings()) == single


def test_no_random_set_gives_nan_null_columns() -> None:
    row = only_row(effect(task_frame(6, "SST-2", "uniform", "better", sets=0)))
    assert row["n_sets"] == 0
    for column in ("null_mean", "null_low", "null_high", "share_null_below"):
        assert math.isnan(row[column]), column
    assert row["ci_low"] > 0  # the framenet interval does not need the null


def test_one_row_per_task_and_mode_sorted() -> None:
    groups = [("STS-B", "zero"), ("STS-B", "uniform"), ("SST-2", "zero"), ("SST-2", "uniform")]
    predictions = pl.concat([task_frame(10 + i, task, mode, "same") for i, (task, mode) in enumerate(groups)])
    table = effect(predictions)
    assert dict(table.schema) == EFFECT_SCHEMA
    assert table.select("task", "mode").rows() == sorted(groups)
    metrics = dict(zip(table["task"], table["metric"], strict=True))
    assert metrics == {"SST-2": "accuracy", "STS-B": "pearson"}
    np.testing.assert_allclose(table["delta"].to_numpy(), 0.0, atol=FLOAT_NOISE)  # STS-B: ~1e-16
    assert (table["p_value"] == 1.0).all()
    assert (table["n_sets"] == SETS).all() and (table["n_seeds"] == SEEDS).all()
    # each group's row is the row of that group alone
    for task, mode in groups:
        alone = only_row(effect(predictions.filter(pl.col("task") == task, pl.col("mode") == mode)))
        together = table.filter(pl.col("task") == task, pl.col("mode") == mode).row(0, named=True)
        assert alone == together


def test_same_seed_same_table() -> None:
    predictions = task_frame(20, "SST-2", "uniform", "better")
    assert effect(predictions, seed=3).equals(effect(predictions, seed=3))
