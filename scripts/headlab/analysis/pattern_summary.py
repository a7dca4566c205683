"""What Figures 1 and 2 show, chosen and counted from the pattern tables (polars and numpy only).

* `typical_maps` (Figure 1): per pattern class, the exported map its classifier is most
  confident of (ties: the first in the maps tables' order), as the paper's Figure 1 shows one
  typical map per class;
* `class_shares` (Figure 2): per task (first-appearance order), the count and share of each
  class among its example x layer x head maps (`headlab.analysis.patterns.pattern_shares`);
* `classifier_names`: the classifiers that produced the labels, as each figure names them.

Tables: the maps of rule export_maps (``map_id, ..., size, values``), the map classes of rule
classify_maps (``map_id, pattern, classifier, confidence``) and the pattern tables of rule
pattern_classes (``task, example, layer, head, pattern, classifier``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from headlab.analysis.patterns import PATTERNS, pattern_shares

MAP_COLUMNS = ("map_id", "task", "example", "layer", "head", "size", "values")


@dataclass(frozen=True)
class ClassShares:
    """Figure 2's bars: per class and task the count and share of the task's head maps."""

    tasks: list[str]  # first-appearance order
    counts: np.ndarray  # (patterns, tasks) int64, `PATTERNS` order
    shares: np.ndarray  # (patterns, tasks) float64: counts / n_maps of the task
    n_maps: list[int]  # per task
    classifiers: list[str]  # `classifier_names` of the table


def _require(table: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")


def classifier_names(classes: pl.DataFrame) -> list[str]:
    """The table's classifier column, each name once, in order of first appearance."""
    return classes["classifier"].unique(maintain_order=True).to_list()


def typical_maps(maps: pl.DataFrame, classes: pl.DataFrame) -> dict[str, dict[str, object] | None]:
    """Per pattern (`PATTERNS` order), the row (maps columns plus pattern and confidence) of its most
    confident map; None for a class with no map."""
    _require(maps, MAP_COLUMNS, "maps table")
    _require(classes, ("map_id", "pattern", "confidence"), "map classes table")
    joined = maps.with_row_index("_order").join(
        classes.select("map_id", "pattern", "confidence"), on="map_id", how="inner"
    )
    chosen: dict[str, dict[str, object] | None] = {}
    for pattern in PATTERNS:
        rows = joined.filter(pl.col("pattern") == pattern).sort(
            ["confidence", "_order"], descending=[True, False]
        )
        chosen[pattern] = rows.row(0, named=True) if rows.height else None
    return chosen


def class_shares(patterns: pl.DataFrame) -> ClassShares:
    """Figure 2: per task and class, the count and the share of the task's head maps."""
    _require(patterns, ("task", "pattern", "classifier"), "pattern table")
    if patterns.height == 0:
        raise ValueError("the pattern table is empty")
    shares = pattern_shares(patterns)
    tasks = shares["task"].unique(maintain_order=True).to_list()
    totals = shares.group_by("task", maintain_order=True).agg(pl.col("count").sum())
    n_maps = dict(zip(totals["task"].to_list(), totals["count"].to_list(), strict=True))

    def cell(task: str, pattern: str, column: str) -> object:
        return shares.filter((pl.col("task") == task) & (pl.col("pattern") == pattern))[column][0]

    return ClassShares(
        tasks=tasks,
        counts=np.array([[cell(t, p, "count") for t in tasks] for p in PATTERNS], dtype=np.int64),
        shares=np.array([[cell(t, p, "share") for t in tasks] for p in PATTERNS]),  # (patterns, tasks)
        n_maps=[int(n_maps[t]) for t in tasks],
        classifiers=classifier_names(patterns),
    )
