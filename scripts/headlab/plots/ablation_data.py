"""The data side of Figures 8 and 9: the tidy ablation table arranged as matrices and series.

See `headlab.plots.ablation` for the table's columns and conventions. Nothing here draws and
nothing aggregates: each cell is one row's value (the mean over heads that Figure 8 prints is
`headlab.analysis.ablation_summary.mean_head_deltas`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from headlab.analysis.ablation_summary import ablation_rows

ABLATION_COLUMNS = (
    "model",
    "task",
    "mode",
    "mask",
    "kind",
    "layer",
    "head",
    "metric",
    "value",
    "baseline",
    "delta",
)


# ---------------------------------------------------------------------------------------------


def _check_columns(table: pl.DataFrame) -> None:
    missing = [c for c in ABLATION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"ablation table lacks column(s) {missing}")


def task_order(table: pl.DataFrame) -> list[str]:
    """Tasks in the order of their first appearance in the table."""
    return table["task"].unique(maintain_order=True).to_list()


def _check_unique(rows: pl.DataFrame, keys: list[str], task: str) -> None:
    duplicated = rows.filter(pl.struct(keys).is_duplicated())
    if duplicated.height:
        where = ", ".join(f"{k}={duplicated[k][0]}" for k in keys)
        raise ValueError(
            f"task {task!r}: several rows for {where}; filter the table to one model/mode/mask first"
        )


def _positions(rows: pl.DataFrame, column: str, task: str) -> np.ndarray:
    values = rows[column]
    if values.null_count() or (values < 1).any():
        raise ValueError(f"task {task!r}: {column} must be a 1-based index in every {column} row")
    return values.to_numpy().astype(np.int64)


def layer_count(table: pl.DataFrame, task: str) -> int:
    """L: the largest layer index among the task's head and layer rows (any metric).

    Both figures use it, so a layer missing from one kind of ablation still gets its row.
    """
    rows = table.filter((pl.col("task") == task) & pl.col("kind").is_in(["head", "layer"]))
    if rows.height == 0:
        raise ValueError(f"task {task!r}: no head or layer rows in the table")
    return int(_positions(rows, "layer", task).max())


def head_matrix(table: pl.DataFrame, task: str, metric: str) -> np.ndarray:
    """Scores with one head disabled, shape (L, H): entry [layer-1, head-1]; NaN where missing.

    L is `layer_count` of the task; H the largest head index among its head rows (any metric).
    """
    _check_columns(table)
    rows = ablation_rows(table, task, "head", metric)
    _check_unique(rows, ["layer", "head"], task)
    all_heads = table.filter((pl.col("task") == task) & (pl.col("kind") == "head"))
    n_heads = int(_positions(all_heads, "head", task).max())
    matrix = np.full((layer_count(table, task), n_heads), np.nan)
    layers = _positions(rows, "layer", task)
    heads = _positions(rows, "head", task)
    matrix[layers - 1, heads - 1] = rows["value"].cast(pl.Float64).to_numpy()
    return matrix


def layer_series(table: pl.DataFrame, task: str, metric: str) -> np.ndarray:
    """Scores with one whole layer disabled, shape (L,): entry [layer-1]; NaN where missing.

    L is `layer_count` of the task.
    """
    _check_columns(table)
    rows = ablation_rows(table, task, "layer", metric)
    _check_unique(rows, ["layer"], task)
    series = np.full(layer_count(table, task), np.nan)
    series[_positions(rows, "layer", task) - 1] = rows["value"].cast(pl.Float64).to_numpy()
    return series


def baseline_value(table: pl.DataFrame, task: str, metric: str) -> float:
    """The unablated score of a task: the `baseline` column of its rows for `metric`."""
    rows = table.filter((pl.col("task") == task) & (pl.col("metric") == metric))
    values = rows["baseline"].drop_nulls().unique().to_list()
    if len(values) != 1:
        raise ValueError(f"task {task!r}, metric {metric!r}: expected one baseline value, got {values}")
    return float(values[0])


def _metric_of(task: str, metric_by_task: Mapping[str, str]) -> str:
    if task not in metric_by_task:
        raise ValueError(f"task {task!r}: no metric given in metric_by_task")
    return metric_by_task[task]


def panel_tasks(table: pl.DataFrame, metric_by_task: Mapping[str, str]) -> list[tuple[str, str]]:
    """(task, metric) per panel, tasks in table order; a ValueError for an empty table or a task
    without a metric."""
    _check_columns(table)
    tasks = task_order(table)
    if not tasks:
        raise ValueError("the ablation table is empty")
    return [(task, _metric_of(task, metric_by_task)) for task in tasks]


def significant_heads(table: pl.DataFrame, task: str, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(gains, losses): 0-based (layer, head) index arrays (2, n) of the heads whose delta is
    significant after BH, by sign; None when the table has no `significant` column."""
    if "significant" not in table.columns:
        return None
    rows = ablation_rows(table, task, "head", metric).filter(pl.col("significant").fill_null(False))
    index = (
        np.stack([_positions(rows, "layer", task) - 1, _positions(rows, "head", task) - 1])
        if rows.height
        else np.zeros((2, 0), int)
    )
    gain = rows["delta"].to_numpy() > 0 if rows.height else np.zeros(0, bool)
    return index[:, gain], index[:, ~gain]


def layer_intervals(
    table: pl.DataFrame, task: str, metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(delta, low, high), each (L,), of the layer rows; None without interval columns."""
    if "ci_low" not in table.columns:
        return None
    rows = ablation_rows(table, task, "layer", metric)
    out = np.full((3, layer_count(table, task)), np.nan)
    where = _positions(rows, "layer", task) - 1
    for i, column in enumerate(("delta", "ci_low", "ci_high")):
        out[i, where] = rows[column].cast(pl.Float64).to_numpy()
    return out[0], out[1], out[2]
