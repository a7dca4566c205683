"""What Figures 6 and 7 show, computed from the feature_attention tables (polars and numpy only).

Tables (rule feature_attention, `headlab.measure.feature_attention`; columns in
`headlab.plots.features`): features, cls_attention (the final layer's [CLS] query row) and
token_to_token. Each function returns what one part of a figure draws, so that the plots only
draw:

* `special_token_grids` (Figure 6): the layer x head grids of [SEP] and [CLS] per task and
  condition (`head_grid`: one task, condition and feature as a grid, NaN where null);
* `feature_changes` (Figure 6's companion): per linguistic feature and task, fine-tuned minus
  pre-trained per head, the largest fine-tuned value and the example count;
* `category_bars` (Figure 7, top): per task, condition and token category, the mean and the
  maximum over heads of the [CLS] table's ``value`` (`category_means`);
* `relation_grids` (Figure 7, below): the token-to-token grids per task and condition, with each
  panel's example count and mean distance.

Tasks keep the order asked for; conditions are `headlab.conditions.ATTENTION_CONDITIONS`
(pre-trained, fine-tuned). A task without rows raises a ValueError naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from headlab.conditions import ATTENTION_CONDITIONS, FINETUNED, PRETRAINED

FEATURE_COLUMNS = ("task", "condition", "feature", "layer", "head", "value", "n_examples")
CLS_COLUMNS = ("task", "condition", "feature", "head", "value", "n_examples")
TOKEN_COLUMNS = ("task", "condition", "relation", "layer", "head", "value", "n_examples", "mean_distance")
# Figure 6's special tokens, top to bottom.
SPECIAL_TOKENS = ("sep", "cls")
# Order of the bars in Figure 7 and of the rows of Figure 6's companion.
CATEGORY_ORDER = ("cls", "sep", "punctuation", "noun", "verb", "pronoun", "subject", "object", "negation")
LINGUISTIC_ORDER = ("noun", "verb", "pronoun", "subject", "object", "negation", "punctuation")
# Figure 7's token-to-token relations, top to bottom (those in the table are shown).
RELATION_ORDER = ("verb_subject", "pronoun_noun")

GridKey = tuple[str, str, str]  # (feature or relation, task, condition)


@dataclass(frozen=True)
class HeadGrids:
    """Layer x head grids per feature (or relation), task and condition (Figure 6)."""

    tasks: list[str]
    names: list[str]  # features (or relations), top to bottom
    conditions: tuple[str, ...]
    grids: dict[GridKey, np.ndarray]  # (name, task, condition) -> (layers, heads), NaN where null


@dataclass(frozen=True)
class RelationGrids(HeadGrids):
    """`HeadGrids` of the token-to-token relations with what each panel names (Figure 7, below)."""

    counts: dict[tuple[str, str], int]  # (relation, task) -> n_examples
    distances: dict[tuple[str, str], float | None]  # (relation, task) -> mean distance; None if absent


@dataclass(frozen=True)
class FeatureChanges:
    """Per linguistic feature and task: fine-tuned minus pre-trained per head (Figure 6's companion)."""

    tasks: list[str]
    names: list[str]  # the linguistic features in the table, `LINGUISTIC_ORDER`
    deltas: dict[tuple[str, str], np.ndarray]  # (feature, task) -> (layers, heads), NaN where null
    peaks: dict[tuple[str, str], float]  # (feature, task) -> largest fine-tuned value; NaN if none
    counts: dict[tuple[str, str], int]  # (feature, task) -> n_examples


@dataclass(frozen=True)
class CategoryBars:
    """Final-layer [CLS] attention per task, condition and token category (Figure 7, top)."""

    tasks: list[str]
    conditions: tuple[str, ...]
    categories: tuple[str, ...]  # `CATEGORY_ORDER`
    means: np.ndarray  # (tasks, conditions, categories): mean over heads; NaN where absent
    peaks: np.ndarray  # (tasks, conditions, categories): max over heads; NaN where absent
    layer: int  # the layer of the table (the final one)
    highest: float  # the largest value of the table (0 when it has none)


def check_columns(table: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    """A ValueError naming the columns of `columns` that `table` lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} table lacks column(s) {missing}")


def check_tasks(table: pl.DataFrame, tasks: Sequence[str], what: str) -> list[str]:
    """`tasks` as a list, or a ValueError when it is empty or names a task without rows."""
    if not tasks:
        raise ValueError("no task to plot")
    present = set(table["task"].unique().to_list())
    missing = [t for t in tasks if t not in present]
    if missing:
        raise ValueError(f"{what} table has no rows for task(s) {missing}")
    return list(tasks)


def _select(table: pl.DataFrame, task: str, condition: str, column: str, name: str) -> pl.DataFrame:
    rows = table.filter(
        (pl.col("task") == task) & (pl.col("condition") == condition) & (pl.col(column) == name)
    )
    if rows.height == 0:
        raise ValueError(f"task {task!r}, condition {condition!r}: no rows for {column} {name!r}")
    if rows.select("layer", "head").is_duplicated().any():
        raise ValueError(
            f"task {task!r}, condition {condition!r}, {name!r}: several rows per head; one model only"
        )
    return rows


def head_grid(
    table: pl.DataFrame, task: str, condition: str, name: str, column: str = "feature"
) -> np.ndarray:
    """(layers, heads) of `value` for one task, condition and feature (or relation); NaN where null.

    Sizes are the largest layer and head of the task's rows.
    """
    sizes = table.filter(pl.col("task") == task)
    if sizes.height == 0:
        raise ValueError(f"task {task!r}: no rows in the table")
    grid = np.full((int(sizes["layer"].max()), int(sizes["head"].max())), np.nan)  # (layers, heads)
    rows = _select(table, task, condition, column, name)
    values = rows["value"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    grid[rows["layer"].to_numpy() - 1, rows["head"].to_numpy() - 1] = values
    return grid


def example_count(table: pl.DataFrame, task: str, name: str, column: str = "feature") -> int:
    """n_examples of a task's feature (or relation) rows (the largest, should conditions differ)."""
    rows = table.filter((pl.col("task") == task) & (pl.col(column) == name))
    return int(rows["n_examples"].max()) if rows.height else 0


def category_means(cls: pl.DataFrame, task: str, condition: str) -> dict[str, tuple[float, float]]:
    """Per category of the [CLS] table: (mean over heads, max over heads) of `value`; NaN if absent."""
    rows = cls.filter((pl.col("task") == task) & (pl.col("condition") == condition))
    if rows.height == 0:
        raise ValueError(f"task {task!r}, condition {condition!r}: no [CLS] attention rows")
    out = {}
    for feature in CATEGORY_ORDER:
        values = rows.filter(pl.col("feature") == feature)["value"].cast(pl.Float64).drop_nulls()
        out[feature] = (float(values.mean()), float(values.max())) if values.len() else (np.nan, np.nan)
    return out


def _grids(
    table: pl.DataFrame, tasks: Sequence[str], names: Sequence[str], column: str
) -> dict[GridKey, np.ndarray]:
    """`head_grid` of every name, task and condition."""
    return {
        (name, task, condition): head_grid(table, task, condition, name, column)
        for name in names
        for task in tasks
        for condition in ATTENTION_CONDITIONS
    }


def special_token_grids(features: pl.DataFrame, tasks: Sequence[str]) -> HeadGrids:
    """Figure 6: the grids of the attention [SEP] and [CLS] receive, per task and condition."""
    check_columns(features, FEATURE_COLUMNS, "features")
    tasks = check_tasks(features, tasks, "features")
    grids = _grids(features, tasks, SPECIAL_TOKENS, "feature")
    return HeadGrids(tasks, list(SPECIAL_TOKENS), ATTENTION_CONDITIONS, grids)


def feature_changes(features: pl.DataFrame, tasks: Sequence[str]) -> FeatureChanges:
    """Figure 6's companion: per linguistic feature of the table and task, fine-tuned minus
    pre-trained per head, the largest fine-tuned value (NaN when it has none) and the example count."""
    check_columns(features, FEATURE_COLUMNS, "features")
    tasks = check_tasks(features, tasks, "features")
    present = set(features["feature"].to_list())
    shown = [f for f in LINGUISTIC_ORDER if f in present]
    if not shown:
        raise ValueError("the features table has no linguistic feature rows")
    deltas, peaks, counts = {}, {}, {}
    for feature in shown:
        for task in tasks:
            finetuned = head_grid(features, task, FINETUNED, feature)  # (layers, heads)
            deltas[(feature, task)] = finetuned - head_grid(features, task, PRETRAINED, feature)
            peaks[(feature, task)] = np.nanmax(finetuned) if np.isfinite(finetuned).any() else np.nan
            counts[(feature, task)] = example_count(features, task, feature)
    return FeatureChanges(tasks, shown, deltas, peaks, counts)


def category_bars(cls: pl.DataFrame, tasks: Sequence[str]) -> CategoryBars:
    """Figure 7, top: per task and condition, `category_means` of every category, as arrays."""
    check_columns(cls, CLS_COLUMNS, "cls_attention")
    tasks = check_tasks(cls, tasks, "cls_attention")
    shape = (len(tasks), len(ATTENTION_CONDITIONS), len(CATEGORY_ORDER))
    means, peaks = np.full(shape, np.nan), np.full(shape, np.nan)  # (tasks, conditions, categories)
    for i, task in enumerate(tasks):
        for j, condition in enumerate(ATTENTION_CONDITIONS):
            stats = category_means(cls, task, condition)
            means[i, j] = [stats[c][0] for c in CATEGORY_ORDER]
            peaks[i, j] = [stats[c][1] for c in CATEGORY_ORDER]
    values = cls["value"].cast(pl.Float64).drop_nulls()
    highest = float(values.max()) if values.len() else 0.0
    return CategoryBars(
        tasks, ATTENTION_CONDITIONS, CATEGORY_ORDER, means, peaks, int(cls["layer"].max()), highest
    )


def relation_grids(tokens: pl.DataFrame, tasks: Sequence[str]) -> RelationGrids:
    """Figure 7, below: the token-to-token grids of the relations in the table (`RELATION_ORDER`)
    per task and condition; per relation and task its example count and mean distance (the first
    one given, over both conditions)."""
    check_columns(tokens, TOKEN_COLUMNS, "token_to_token")
    tasks = check_tasks(tokens, tasks, "token_to_token")
    present = set(tokens["relation"].to_list())
    relations = [r for r in RELATION_ORDER if r in present]
    counts, distances = {}, {}
    for relation in relations:
        for task in tasks:
            rows = tokens.filter((pl.col("task") == task) & (pl.col("relation") == relation))
            distance = rows["mean_distance"].drop_nulls()
            distances[(relation, task)] = float(distance[0]) if distance.len() else None
            counts[(relation, task)] = example_count(tokens, task, relation, "relation")
    grids = _grids(tokens, tasks, relations, "relation")
    return RelationGrids(tasks, relations, ATTENTION_CONDITIONS, grids, counts, distances)
