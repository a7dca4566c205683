"""The simulated sweeps of the calibration benchmark (benchmarks/calibration.py), not the statistics.

Proved here, on seeded draws:

* every design's table has the sweep predictions schema (`SWEEP_PREDICTIONS_SCHEMA`), the
  baseline, 144 heads and 12 layers, and the same examples and gold labels in every seed and mask;
* the nulls are exchangeable: over 20 draws the mean accuracy delta of the null masks is 0
  within 4 Monte Carlo SE, an SE under 0.06 points (dense, sparse, shared, four_discordant), and
  so is the regression null's mean Pearson delta (SE under 0.001); the baseline's pool coin is
  fair and a pool example flips as often where it is right as where it is wrong (within 4 SE);
* shared_null: the baseline is the same in every seed and each mask's own examples flip in
  about `keep` of the seeds (within 0.03);
* seed_spread: the planted head's per-seed truths average to MU (within 4 SE); outside the pool
  it changes a binomial number of examples with expectation truth x n;
  without spread its mean delta over draws is MU (within 4 SE, an SE under 0.15 points);
* planted and real_layers change exactly the stated examples, wrong -> right or right -> wrong;
* four_discordant: exactly 4 differing predictions per mask per seed;
* mode_agreement: two modes with one baseline; truth correlation 1 when the deltas are identical.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest

from headlab.analysis.scoring import SWEEP_PREDICTIONS_SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def _load_benchmark(name: str = "calibration") -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


calibration = _load_benchmark()  # the design registry and seeding
designs = _load_benchmark("calibration_designs")  # the generators and their constants
MASKS = len(designs.MASKS)
N = designs.EXAMPLES
PLANTED_ROW = designs.NAMES.index(designs.PLANTED_HEAD)
NULL_ROWS = np.concatenate([designs.HEAD_ROWS, designs.LAYER_ROWS])
OTHER_ROWS = NULL_ROWS[NULL_ROWS != PLANTED_ROW]  # the masks other than the planted head
DRAWS = 20
CASES = [(name, task) for name, design in calibration.DESIGNS.items() for task in design.tasks]


def arrays(table: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(pred (seeds, masks, n), label (seeds, masks, n)) in MASKS order."""
    order = pl.DataFrame({"mask": designs.NAMES, "position": np.arange(MASKS)})
    rows = table.join(order, on="mask").sort("seed", "position", "example")
    seeds = rows["seed"].n_unique()
    shape = (seeds, MASKS, rows.height // (seeds * MASKS))
    return rows["prediction"].to_numpy().reshape(shape), rows["label"].to_numpy().reshape(shape)


def accuracy_deltas(table: pl.DataFrame) -> np.ndarray:
    """(seeds, masks) accuracy of every mask minus the baseline's."""
    pred, label = arrays(table)
    accuracy = (pred == label).mean(axis=2)  # (seeds, masks)
    return accuracy - accuracy[:, :1]


def draw(name: str, draws: int = DRAWS) -> list[tuple[pl.DataFrame, Any]]:
    """(table, truth) of `draws` seeded draws of a design (its first task)."""
    design = calibration.DESIGNS[name]
    return [design.make(np.random.default_rng([7, i]), task=design.tasks[0]) for i in range(draws)]


@pytest.mark.parametrize(("name", "task"), CASES)
def test_tables_have_the_sweep_schema_and_crossed_examples(name: str, task: str) -> None:
    design = calibration.DESIGNS[name]
    table, truth = design.make(np.random.default_rng(0), task=task)
    assert table.schema == pl.from_arrow(SWEEP_PREDICTIONS_SCHEMA.empty_table()).schema
    assert truth.task == task and set(table["task"].unique()) == {task}
    masks = table.select("mask", "kind", "layer", "head").unique(maintain_order=True)
    assert masks["mask"].to_list() == designs.NAMES
    assert masks.filter(pl.col("kind") == "head").height == 144
    assert masks.filter(pl.col("kind") == "layer")["head"].null_count() == 12
    assert masks.filter(pl.col("kind") == "baseline")["layer"].null_count() == 1
    per_mode = table.group_by("mode", "seed", "mask").agg(
        pl.col("example").sort().alias("examples"), pl.col("label").sort_by("example").alias("labels")
    )
    assert per_mode.height == table["mode"].n_unique() * table["seed"].n_unique() * MASKS
    assert per_mode["examples"].list.eval(pl.element() == pl.int_range(N)).list.all().all()
    assert per_mode["labels"].n_unique() == 1  # one gold vector in every seed, mask and mode


def outside_pool(right: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(n,) the examples on which no mask of `rows` differs from the baseline in any seed (the
    null flips are on the ambiguous pool only; with ~12 flips of 156 masks every pool example flips)."""
    return ~(right[:, rows] != right[:, :1]).any(axis=(0, 1))


def assert_centred(values: np.ndarray, truth: float, largest_se: float) -> None:
    """The mean of per-draw values (draws,) is within 4 Monte Carlo SE of truth, and that SE is
    below largest_se (so the check can see a bias of a few times largest_se)."""
    se = values.std(ddof=1) / np.sqrt(values.size)
    assert se < largest_se
    assert abs(values.mean() - truth) < 4 * se


@pytest.mark.parametrize("name", ["dense_null", "sparse_null_4", "shared_null_0.7", "four_discordant"])
def test_null_masks_have_mean_accuracy_delta_zero(name: str) -> None:
    deltas = [accuracy_deltas(table)[:, NULL_ROWS] for table, _ in draw(name)]  # each (seeds, masks)
    assert_centred(np.array([d.mean() for d in deltas]), 0.0, largest_se=0.0006)  # 0.06 points
    assert max(np.abs(d).max() for d in deltas) > 0  # the masks do change predictions


def test_flips_do_not_depend_on_the_baselines_coin() -> None:
    fair, difference = [], []
    for table, _ in draw("dense_null"):
        pred, label = arrays(table)
        right = pred == label  # (seeds, masks, n)
        pool = ~outside_pool(right, NULL_ROWS)
        flipped = (right[:, 1:] != right[:, :1])[:, :, pool]  # (seeds, masks - 1, pool)
        coin = right[:, 0, pool]  # (seeds, pool) the baseline right on a pool example
        fair.append(coin.mean())
        difference.append(
            np.mean([f[:, c].mean() - f[:, ~c].mean() for f, c in zip(flipped, coin, strict=True)])
        )
    assert_centred(np.array(fair), 0.5, largest_se=0.01)
    assert_centred(np.array(difference), 0.0, largest_se=0.002)


def test_regression_null_has_mean_correlation_delta_zero() -> None:
    deltas = []
    for table, _ in draw("regression_null"):
        pred, label = arrays(table)
        centred = pred - pred.mean(2, keepdims=True)
        gold = label - label.mean(2, keepdims=True)
        r = (centred * gold).sum(2) / np.sqrt((centred**2).sum(2) * (gold**2).sum(2))  # (seeds, masks)
        deltas.append(r[:, NULL_ROWS] - r[:, :1])
    assert_centred(np.array([d.mean() for d in deltas]), 0.0, largest_se=0.001)
    assert max(np.abs(d).max() for d in deltas) > 0


@pytest.mark.parametrize("keep", [0.9, 0.7])
def test_shared_null_flips_the_same_examples_in_about_keep_of_the_seeds(keep: float) -> None:
    seeds = 30
    table, _ = designs.shared_null(np.random.default_rng(1), keep=keep, seeds=seeds)
    pred, _ = arrays(table)
    assert (pred[:, 0] == pred[:1, 0]).all()  # one baseline in every seed
    flipped = pred != pred[:, :1]  # (seeds, masks, n)
    share = flipped[:, 1:].mean(axis=0)  # (masks, n) share of seeds in which an example flips
    own = share > 0.5  # each mask's own examples
    assert own.sum(axis=1).mean() == pytest.approx(designs.FLIPS, abs=0.5)
    assert share[own].mean() == pytest.approx(keep, abs=0.03)
    assert flipped[:, 1:].sum(axis=2).mean() == pytest.approx(designs.FLIPS, abs=0.5)


def test_seed_spread_plants_mu_plus_the_seed_spread() -> None:
    results = draw("seed_spread_2", draws=30)
    assert all(truth.pooled[designs.PLANTED_HEAD] == designs.MU for _, truth in results)
    truths = np.stack([truth.per_seed[designs.PLANTED_HEAD] for _, truth in results])  # (draws, seeds)
    assert_centred(truths.mean(axis=1), designs.MU, largest_se=0.003)
    assert truths.std() == pytest.approx(0.02, rel=0.3)  # tau = 2 points
    changes = []
    for table, _ in results:
        pred, label = arrays(table)
        right = pred == label  # (seeds, masks, n)
        outside = outside_pool(right, OTHER_ROWS)
        planted = right[:, PLANTED_ROW] & outside
        changes.append(planted.sum(axis=1) - (right[:, 0] & outside).sum(axis=1))  # (seeds,)
    expected = truths * N  # (draws, seeds) the expected number of changed examples
    # binomial counts around the truth: unbiased, with a binomial spread (a new sample of examples
    # would hold another count)
    assert_centred((np.stack(changes) - expected).mean(axis=1), 0.0, largest_se=2.0)
    assert np.std(np.stack(changes) - expected) == pytest.approx(np.sqrt(expected.mean()), rel=0.4)


def test_planted_head_has_mean_delta_mu() -> None:
    realized = np.stack(
        [accuracy_deltas(t)[:, PLANTED_ROW] for t, _ in draw("seed_spread_0")]
    )  # (draws, seeds)
    assert_centred(realized.mean(axis=1), designs.MU, largest_se=0.0015)


@pytest.mark.parametrize("same", [True, False])
def test_planted_head_fixes_eight_examples_outside_the_pool(same: bool) -> None:
    table, truth = designs.planted(np.random.default_rng(3), same_examples=same)
    pred, label = arrays(table)
    right = pred == label  # (seeds, masks, n)
    outside = outside_pool(right, OTHER_ROWS)
    assert outside.sum() == N - designs.POOL
    changed = (right[:, PLANTED_ROW] != right[:, 0]) & outside  # (seeds, n)
    assert changed.sum(axis=1).tolist() == [designs.PLANTED_CHANGES] * 3
    assert right[:, PLANTED_ROW][changed].all()  # wrong -> right only
    assert (changed == changed[:1]).all() == same
    assert truth.pooled[designs.PLANTED_HEAD] == pytest.approx(0.02)
    assert truth.per_seed[designs.PLANTED_HEAD] == pytest.approx([0.02] * 3)


def test_real_layers_break_twenty_examples_in_every_seed() -> None:
    table, truth = designs.real_layers(np.random.default_rng(4))
    pred, label = arrays(table)
    right = pred == label  # (seeds, masks, n)
    outside = outside_pool(right, designs.HEAD_ROWS)
    assert outside.sum() == N - designs.POOL
    layers = right[:, designs.LAYER_ROWS]  # (seeds, layers, n)
    changed = (layers != right[:, :1]) & outside  # (seeds, layers, n)
    assert (changed.sum(axis=2) == designs.LAYER_CHANGES).all()
    assert not layers[changed].any()  # right -> wrong only
    assert (changed == changed[:1]).all()  # the same examples in every seed
    assert set(truth.planted) == {designs.NAMES[r] for r in designs.LAYER_ROWS}
    assert all(v == pytest.approx(-0.05) for v in truth.pooled.values())


@pytest.mark.parametrize("task", ["SST-2", "MRPC", "STS-B"])
def test_four_discordant_differs_on_exactly_four_examples(task: str) -> None:
    table, _ = designs.four_discordant(np.random.default_rng(5), task=task)
    pred, _ = arrays(table)
    differing = (pred != pred[:, :1]).sum(axis=2)  # (seeds, masks)
    assert (differing[:, 1:] == designs.DISCORDANT).all()
    assert (differing[:, 0] == 0).all()


@pytest.mark.parametrize("identical", [True, False])
def test_mode_agreement_has_two_modes_with_one_baseline(identical: bool) -> None:
    table, truth = designs.mode_agreement(np.random.default_rng(6), identical=identical)
    modes = {mode: arrays(group)[0] for (mode,), group in table.group_by("mode", maintain_order=True)}
    assert list(modes) == list(designs.MODES)
    first, second = modes.values()
    assert (first[:, 0] == second[:, 0]).all()
    assert not (first[:, 1:] == second[:, 1:]).all()
    if identical:
        assert truth.correlation["pearson"] == pytest.approx(1.0)
    else:
        assert abs(truth.correlation["pearson"]) < 0.35


def test_replicates_are_seeded_by_design_and_replicate() -> None:
    design = calibration.DESIGNS["dense_null"]
    first, _ = design.make(calibration.design_rng("dense_null", 3), task="SST-2")
    again, _ = design.make(calibration.design_rng("dense_null", 3), task="SST-2")
    other, _ = design.make(calibration.design_rng("dense_null", 4), task="SST-2")
    assert first.equals(again)
    assert not first.equals(other)
