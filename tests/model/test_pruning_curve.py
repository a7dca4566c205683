"""Pruning curves (`headlab.model.pruning_curve`) and their tables (`headlab.analysis.importance_tables`).

Levels by hand; each level's logits equal an independent masked pass with the cumulative heads
removed; the importance order removes, at every step, the least important remaining heads of
an importance computed independently with the removed heads masked; the tables name the
removed heads and score each level like the sweep tables.
"""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
import torch

from headlab.analysis.importance_tables import head_score_deltas, importance_tables, pruning_tables
from headlab.analysis.metrics import compute_metrics
from headlab.data.tasks import get_task
from headlab.model import pruning_curve as curves
from headlab.model.attribution import attribution_pass
from headlab.model.batching import encode, eval_batches
from headlab.model.engine import head_count, layer_count
from tiny import tiny_classifier, tiny_tokenizer

CPU = torch.device("cpu")


def _data(n: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "a", "dog", "ran", "good", "bad"]
    texts = [" ".join(rng.choice(words, size=rng.integers(2, 9))) for _ in range(n)]
    gold = rng.integers(0, 2, size=n)
    table = pl.DataFrame({"text_a": texts, "text_b": [None] * n, "label": gold})
    encoded = encode(tiny_tokenizer(), table, 32)
    return eval_batches(encoded, 4, 0), gold


def test_levels_by_hand() -> None:
    assert curves.pruning_levels(10, 0.1, "remaining", 0.5) == [0, 1, 2, 3, 4, 5]
    assert curves.pruning_levels(72, 0.1, "total", 0.9) == [0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 64]
    remaining = curves.pruning_levels(72, 0.1, "remaining", 0.9)
    assert remaining[:4] == [0, 7, 13, 19]  # 10 % of 72, of 65, of 59
    assert remaining[-1] == 64 and all(b > a for a, b in itertools.pairwise(remaining))
    with pytest.raises(ValueError, match=r"pruning\.of"):
        curves.pruning_levels(10, 0.1, "some", 0.5)


def test_each_level_is_the_masked_model_with_the_heads_removed_so_far() -> None:
    model = tiny_classifier(seed=4)
    batches, gold = _data()
    layers, heads = layer_count(model), head_count(model)
    values = np.random.default_rng(1).normal(size=(layers, heads))
    levels = curves.pruning_levels(layers * heads, 0.25, "total", 0.75)
    curve = curves.pruning_curve(model, batches, len(gold), CPU, levels, curves.static_chooser(values))
    order = np.argsort(values.reshape(-1), kind="stable")
    assert [level.n_pruned for level in curve] == levels
    for level in curve:
        expected = np.zeros(layers * heads, dtype=bool)
        expected[order[: level.n_pruned]] = True
        reference = curves.masked_logits(model, batches, len(gold), CPU, expected.reshape(layers, heads))
        np.testing.assert_allclose(level.logits, reference, rtol=1e-6, atol=1e-7)
    removed = [h for level in curve for h in level.removed]
    assert removed == [(int(i) // heads, int(i) % heads) for i in order[: levels[-1]]]
    assert np.abs(curve[-1].logits - curve[0].logits).max() > 1e-3  # pruning changed the model


def test_the_importance_order_re_estimates_with_the_removed_heads_masked() -> None:
    model = tiny_classifier(seed=5)
    batches, gold = _data(8, seed=2)
    layers, heads = layer_count(model), head_count(model)
    choose = curves.importance_chooser(model, batches, CPU, False, normalize_layers=False)
    pruned = np.zeros((layers, heads), dtype=bool)
    pruned[0, 0] = True
    chosen = choose(pruned.copy(), 2)
    zero = attribution_pass(model, batches, len(gold), CPU, ["zero"], False, pruned=torch.from_numpy(pruned))
    importance = np.abs(zero["zero"]).mean(axis=0)  # (layers, heads)
    importance[pruned] = np.inf
    expected = np.argsort(importance.reshape(-1), kind="stable")[:2]
    assert chosen == [(int(i) // heads, int(i) % heads) for i in expected]
    assert (0, 0) not in chosen


def test_the_held_out_delta_order_scores_each_half_with_the_other_halfs_order() -> None:
    """Cross-fitting: a sweep whose two halves rank the heads in opposite orders; every example of
    the first half is scored with the heads the second half's deltas chose removed, and vice versa,
    each equal to an independent masked pass; the table names both orders."""
    model = tiny_classifier(seed=6)
    batches, gold = _data(12, seed=3)
    n, layers, heads = len(gold), layer_count(model), head_count(model)
    first = curves.dev_halves(n, seed=0)  # (n,) bool
    assert first.sum() == n // 2 and np.array_equal(first, curves.dev_halves(n, seed=0))
    assert not np.array_equal(first, curves.dev_halves(n, seed=1))
    ranks = np.arange(layers * heads, dtype=float)  # head index -> delta in the first half
    masks = [("baseline", "baseline", None, None)] + [
        (f"L{la + 1}-H{h + 1}", "head", la + 1, h + 1) for la in range(layers) for h in range(heads)
    ]
    score = np.zeros((len(masks), n))  # (masks, examples): baseline 0
    score[1:, first] = ranks[:, None]  # the first half: the last head costs least
    score[1:, ~first] = -ranks[:, None]  # the second half: the first head costs least
    sweep = pl.DataFrame(
        {
            "kind": [m[1] for m in masks for _ in range(n)],
            "layer": pl.Series([m[2] for m in masks for _ in range(n)], dtype=pl.Int32),
            "head": pl.Series([m[3] for m in masks for _ in range(n)], dtype=pl.Int32),
            "example": np.tile(np.arange(n) + 50, len(masks)),
            "score": score.reshape(-1),
        }
    )
    rows = np.arange(n) + 50  # the dev table's example ids
    deltas = [head_score_deltas(sweep, layers, heads, rows[half]) for half in (first, ~first)]
    np.testing.assert_allclose(deltas[0].reshape(-1), ranks, rtol=0, atol=1e-12)
    levels = curves.pruning_levels(layers * heads, 0.25, "total", 0.5)
    halves = [curves.pruning_curve(model, batches, n, CPU, levels, curves.static_chooser(-d)) for d in deltas]
    merged = curves.cross_fitted(*halves, first)
    for level in merged[1:]:
        chosen_on_first = np.zeros(layers * heads, dtype=bool)
        chosen_on_first[layers * heads - level.n_pruned :] = True  # the largest first-half deltas
        chosen_on_second = np.zeros(layers * heads, dtype=bool)
        chosen_on_second[: level.n_pruned] = True
        by_first = curves.masked_logits(model, batches, n, CPU, chosen_on_first.reshape(layers, heads))
        by_second = curves.masked_logits(model, batches, n, CPU, chosen_on_second.reshape(layers, heads))
        np.testing.assert_allclose(level.logits[~first], by_first[~first], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(level.logits[first], by_second[first], rtol=1e-6, atol=1e-7)
    metrics, _ = pruning_tables("m", get_task("MRPC"), 1, [("delta_heldout", 0, merged)], 8, gold, rows)
    named = metrics.filter(pl.col("step") == 1)["removed"].unique().to_list()
    assert len(named) == 1 and named[0].count("|") == 1
    assert named[0].split("|")[0].split(",")[0] == f"L{layers}-H{heads}"  # the first half's cheapest
    assert named[0].split("|")[1].split(",")[0] == "L1-H1"
    with pytest.raises(ValueError, match="3 of the 4 examples"):
        head_score_deltas(sweep, layers, heads, np.array([50, 51, 52, 999]))
    with pytest.raises(ValueError, match="two halves"):
        curves.dev_halves(1, seed=0)
    with pytest.raises(ValueError, match="different levels"):
        curves.cross_fitted(halves[0], halves[1][:-1], first)


def test_random_orders_depend_only_on_seed_and_draw() -> None:
    none = np.zeros((3, 4), dtype=bool)
    first = curves.random_chooser(3, 4, 7, 1)(none, 12)
    assert first == curves.random_chooser(3, 4, 7, 1)(none, 12)
    assert first != curves.random_chooser(3, 4, 7, 2)(none, 12)
    assert sorted(first) == [(layer, head) for layer in range(3) for head in range(4)]


def test_pruning_tables_score_every_level_and_name_the_removed_heads() -> None:
    task = get_task("MRPC")
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, size=20)
    levels = [
        curves.Level(0, 0, (), rng.normal(size=(20, 2))),
        curves.Level(1, 2, ((0, 1), (1, 3)), rng.normal(size=(20, 2))),
    ]
    metrics, predictions = pruning_tables("m", task, 42, [("delta", 0, levels)], 8, gold, np.arange(20) + 100)
    step1 = metrics.filter(pl.col("step") == 1)
    assert step1["removed"].unique().to_list() == ["L1-H2,L2-H4"]
    assert step1["share_pruned"].unique().to_list() == [0.25]
    expected = compute_metrics(task.metrics, levels[1].logits.argmax(1), gold)
    for row in step1.iter_rows(named=True):
        assert row["value"] == pytest.approx(expected[row["metric"]], rel=1e-12)
    rows = predictions.filter(pl.col("step") == 1).sort("example")
    assert rows["example"].to_list() == list(range(100, 120))
    log_p = levels[1].logits - np.log(np.exp(levels[1].logits).sum(1, keepdims=True))
    np.testing.assert_allclose(rows["score"].to_numpy(), log_p[np.arange(20), gold], rtol=1e-12)


def test_head_score_deltas_and_importance_tables() -> None:
    masks = [("baseline", "baseline", None, None)] + [
        (f"L{la}-H{h}", "head", la, h) for la in (1, 2) for h in (1, 2)
    ]
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(len(masks), 6))  # (masks, examples)
    sweep = pl.DataFrame(
        {
            "mask": [m[0] for m in masks for _ in range(6)],
            "kind": [m[1] for m in masks for _ in range(6)],
            "layer": pl.Series([m[2] for m in masks for _ in range(6)], dtype=pl.Int32),
            "head": pl.Series([m[3] for m in masks for _ in range(6)], dtype=pl.Int32),
            "example": np.tile(np.arange(6), len(masks)),
            "score": scores.reshape(-1),
        }
    )
    deltas = head_score_deltas(sweep, 2, 2)
    np.testing.assert_allclose(deltas.reshape(-1), (scores[1:] - scores[0]).mean(axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="delta order needs"):
        head_score_deltas(sweep.filter(pl.col("mask") != "L2-H2"), 2, 2)
    values = np.abs(rng.normal(size=(5, 2, 2)))  # (examples, layers, heads)
    per_example, aggregated = importance_tables("m", "MRPC", 1, "train", values, np.arange(5))
    assert per_example.height == 20
    mean = values.mean(axis=0)
    np.testing.assert_allclose(aggregated["importance"].to_numpy(), mean.reshape(-1), rtol=1e-12)
    norm = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(aggregated["importance_normalized"].to_numpy(), norm.reshape(-1), rtol=1e-12)
