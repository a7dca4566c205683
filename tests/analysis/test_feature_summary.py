"""What Figures 6 and 7 show (`headlab.analysis.feature_summary`), against hand computations.

The tables are tiny and hand-written (2 tasks, 2 layers x 2 heads); values are multiples of 1/16,
so grids, differences and maxima are exact in binary and compared exactly; means that divide by
three are compared with assert_allclose (rtol 1e-12, atol 0).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from headlab.analysis.feature_summary import (
    CATEGORY_ORDER,
    category_bars,
    category_means,
    example_count,
    feature_changes,
    head_grid,
    relation_grids,
    special_token_grids,
)

TASKS = ["T2", "T1"]  # asked for out of table order on purpose


def feature_value(task: str, condition: str, feature: str, layer: int, head: int) -> float:
    """Exact in binary: layer/4 + head/16, +1/2 fine-tuned, +1 for T2, +2 for verb."""
    return (
        layer / 4
        + head / 16
        + (0.5 if condition == "finetuned" else 0.0)
        + (1.0 if task == "T2" else 0.0)
        + (2.0 if feature == "verb" else 0.0)
    )


def features_table() -> pl.DataFrame:
    rows = []
    for task in ("T1", "T2"):
        for condition in ("pretrained", "finetuned"):
            for feature in ("sep", "cls", "verb", "noun"):
                for layer in (1, 2):
                    for head in (1, 2):
                        value: float | None = feature_value(task, condition, feature, layer, head)
                        if feature == "noun" and task == "T1" and condition == "finetuned":
                            value = None  # T1's fine-tuned nouns: nothing measured
                        n = 7 if condition == "finetuned" else 5
                        rows.append((task, condition, feature, layer, head, value, n))
    return pl.DataFrame(
        rows,
        schema=["task", "condition", "feature", "layer", "head", "value", "n_examples"],
        orient="row",
    )


def cls_table() -> pl.DataFrame:
    """Final layer 2, heads 1-3; T1 pretrained: cls 1/4, 1/2, 1 (mean 7/12, max 1), sep 1/8 and a
    null (mean = max = 1/8), no other category; the other task x condition cells: 1/16 each."""
    rows = [
        ("T1", "pretrained", "cls", 2, 1, 0.25, 9),
        ("T1", "pretrained", "cls", 2, 2, 0.5, 9),
        ("T1", "pretrained", "cls", 2, 3, 1.0, 9),
        ("T1", "pretrained", "sep", 2, 1, 0.125, 9),
        ("T1", "pretrained", "sep", 2, 2, None, 9),
    ]
    for task, condition in (("T1", "finetuned"), ("T2", "pretrained"), ("T2", "finetuned")):
        rows += [(task, condition, "cls", 2, head, 0.0625, 9) for head in (1, 2, 3)]
    return pl.DataFrame(
        rows,
        schema=["task", "condition", "feature", "layer", "head", "value", "n_examples"],
        orient="row",
    )


def tokens_table() -> pl.DataFrame:
    """verb_subject only (pronoun_noun absent); T1's distance given only fine-tuned, T2's never."""
    rows = []
    for task in ("T1", "T2"):
        for condition in ("pretrained", "finetuned"):
            distance = 3.5 if (task, condition) == ("T1", "finetuned") else None
            n = 4 if task == "T1" else 6
            for layer in (1, 2):
                for head in (1, 2):
                    value = layer / 2 + head / 8 + (0.25 if condition == "finetuned" else 0.0)
                    rows.append((task, condition, "verb_subject", layer, head, value, n, distance))
    return pl.DataFrame(
        rows,
        schema=["task", "condition", "relation", "layer", "head", "value", "n_examples", "mean_distance"],
        orient="row",
        schema_overrides={"mean_distance": pl.Float64},
    )


def hand_grid(task: str, condition: str, feature: str) -> np.ndarray:
    return np.array(
        [[feature_value(task, condition, feature, layer, head) for head in (1, 2)] for layer in (1, 2)]
    )  # (layers, heads)


def test_head_grid_places_each_value_and_nan_for_null() -> None:
    features = features_table()
    np.testing.assert_array_equal(
        head_grid(features, "T2", "finetuned", "verb"), hand_grid("T2", "finetuned", "verb")
    )
    assert np.isnan(head_grid(features, "T1", "finetuned", "noun")).all()
    with pytest.raises(ValueError, match="'T3'"):
        head_grid(features, "T3", "finetuned", "verb")
    with pytest.raises(ValueError, match="no rows for feature 'object'"):
        head_grid(features, "T1", "finetuned", "object")
    with pytest.raises(ValueError, match="several rows per head"):
        head_grid(pl.concat([features, features]), "T1", "finetuned", "verb")


def test_example_count_is_the_largest_over_conditions() -> None:
    features = features_table()
    assert example_count(features, "T1", "verb") == 7  # pre-trained 5, fine-tuned 7
    assert example_count(features, "T1", "object") == 0
    assert example_count(tokens_table(), "T2", "verb_subject", "relation") == 6


def test_category_means_average_and_max_over_heads() -> None:
    stats = category_means(cls_table(), "T1", "pretrained")
    assert list(stats) == list(CATEGORY_ORDER)
    np.testing.assert_allclose(stats["cls"], (7 / 12, 1.0), rtol=1e-12, atol=0)
    assert stats["sep"] == (0.125, 0.125)  # the null head is left out
    assert all(np.isnan(stats[c]).all() for c in CATEGORY_ORDER if c not in ("cls", "sep"))
    with pytest.raises(ValueError, match="'T3'"):
        category_means(cls_table(), "T3", "pretrained")


def test_special_token_grids_are_the_tables_grids() -> None:
    grids = special_token_grids(features_table(), TASKS)
    assert (grids.tasks, grids.names, grids.conditions) == (
        TASKS,
        ["sep", "cls"],
        ("pretrained", "finetuned"),
    )
    assert len(grids.grids) == 2 * 2 * 2
    for (feature, task, condition), grid in grids.grids.items():
        np.testing.assert_array_equal(grid, hand_grid(task, condition, feature))
    with pytest.raises(ValueError, match=r"\['T3'\]"):
        special_token_grids(features_table(), ["T1", "T3"])
    with pytest.raises(ValueError, match="no task"):
        special_token_grids(features_table(), [])
    with pytest.raises(ValueError, match="n_examples"):
        special_token_grids(features_table().drop("n_examples"), TASKS)


def test_feature_changes_subtract_conditions_per_head() -> None:
    changes = feature_changes(features_table(), TASKS)
    assert changes.tasks == TASKS
    assert changes.names == ["noun", "verb"]  # LINGUISTIC_ORDER, only those in the table
    # fine-tuned - pre-trained = 1/2 in every cell where both are measured
    np.testing.assert_array_equal(changes.deltas[("verb", "T1")], np.full((2, 2), 0.5))
    np.testing.assert_array_equal(changes.deltas[("noun", "T2")], np.full((2, 2), 0.5))
    assert np.isnan(changes.deltas[("noun", "T1")]).all()
    # the largest fine-tuned value: layer 2, head 2
    assert changes.peaks[("verb", "T2")] == feature_value("T2", "finetuned", "verb", 2, 2) == 4.125
    assert changes.peaks[("noun", "T1")] != changes.peaks[("noun", "T1")]  # NaN: nothing measured
    assert changes.counts == {(f, t): 7 for f in ("noun", "verb") for t in TASKS}
    with pytest.raises(ValueError, match="no linguistic feature"):
        feature_changes(features_table().filter(pl.col("feature").is_in(["sep", "cls"])), TASKS)


def test_category_bars_hold_the_means_and_maxima_as_arrays() -> None:
    bars = category_bars(cls_table(), ["T1", "T2"])
    assert (
        bars.means.shape == bars.peaks.shape == (2, 2, len(CATEGORY_ORDER))
    )  # (tasks, conditions, categories)
    cls, sep = CATEGORY_ORDER.index("cls"), CATEGORY_ORDER.index("sep")
    np.testing.assert_allclose(bars.means[0, 0, cls], 7 / 12, rtol=1e-12, atol=0)
    assert (bars.peaks[0, 0, cls], bars.means[0, 0, sep], bars.peaks[0, 0, sep]) == (1.0, 0.125, 0.125)
    assert (bars.means[1, 1, cls], bars.peaks[1, 1, cls]) == (0.0625, 0.0625)
    assert np.isnan(bars.means[0, 1, sep]) and np.isnan(bars.peaks[1, 0, sep])
    assert int(np.isfinite(bars.means).sum()) == 2 + 3  # T1 pre-trained: cls, sep; the rest: cls
    assert (bars.layer, bars.highest) == (2, 1.0)
    with pytest.raises(ValueError, match="'T2', condition 'finetuned'"):
        category_bars(
            cls_table().filter((pl.col("task") == "T1") | (pl.col("condition") == "pretrained")), ["T2"]
        )


def test_relation_grids_name_counts_and_the_first_distance_given() -> None:
    relations = relation_grids(tokens_table(), TASKS)
    assert relations.names == ["verb_subject"]  # pronoun_noun is not in the table
    assert relations.counts == {("verb_subject", "T2"): 6, ("verb_subject", "T1"): 4}
    assert relations.distances == {("verb_subject", "T2"): None, ("verb_subject", "T1"): 3.5}
    expected = np.array([[0.625, 0.75], [1.125, 1.25]])  # (layers, heads): layer/2 + head/8
    np.testing.assert_array_equal(relations.grids[("verb_subject", "T1", "pretrained")], expected)
    np.testing.assert_array_equal(relations.grids[("verb_subject", "T2", "finetuned")], expected + 0.25)
    with pytest.raises(ValueError, match="mean_distance"):
        relation_grids(tokens_table().drop("mean_distance"), TASKS)
