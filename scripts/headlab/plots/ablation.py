"""Figures 8 and 9 of the paper from the tidy ablation table; plotting never computes results.

The ablation table has one row per (model, task, mode, mask, kind, layer, head, metric):

    model, task, mode, mask, kind ("baseline" | "head" | "layer" | "named"),
    layer (1-based, null for baseline/named), head (1-based, null unless kind == "head"),
    metric, value, baseline, delta (= value - baseline), n_examples

Figures only read these columns; the one number derived here, the mean delta over heads
printed in each Figure 8 panel, is an average of the table's own `delta` column.

Conventions:

* Panels follow the order in which tasks first appear in the table; `metric_by_task` chooses
  the metric of each task (keys for tasks not in the table are ignored).
* The table must hold a single (model, mode, mask) per task: filter it first. Two rows for the
  same layer/head raise a ValueError rather than being silently averaged.
* Sizes (layers L, heads H) come from the data. Missing cells are NaN (drawn light grey).
* Colour: sequential "Blues", darker = higher score; the baseline is an orange line.
* Both figures are written as PDF and as a PNG beside it (same stem), each atomically.

Matplotlib is used through `matplotlib.figure.Figure` (rendered by the Agg/PDF backends), never
through pyplot, so no global figure state is kept and no display is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from headlab.analysis.metrics import metric_label
from headlab.plots.common import save_figure

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
BASELINE_COLOUR = "tab:orange"
CMAP_NAME = "Blues"
MAX_COLUMNS = 3


# ---------------------------------------------------------------------------------------------
# Pure data helpers (tested directly)
# ---------------------------------------------------------------------------------------------


def _check_columns(table: pl.DataFrame) -> None:
    missing = [c for c in ABLATION_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"ablation table lacks column(s) {missing}")


def task_order(table: pl.DataFrame) -> list[str]:
    """Tasks in the order of their first appearance in the table."""
    return table["task"].unique(maintain_order=True).to_list()


def _rows(table: pl.DataFrame, task: str, kind: str, metric: str) -> pl.DataFrame:
    """Rows of one task and kind for `metric`, with clear errors when there are none."""
    of_kind = table.filter((pl.col("task") == task) & (pl.col("kind") == kind))
    if of_kind.height == 0:
        raise ValueError(f"task {task!r}: no {kind}-ablation rows (kind == {kind!r}) in the table")
    rows = of_kind.filter(pl.col("metric") == metric)
    if rows.height == 0:
        available = sorted(of_kind["metric"].unique().to_list())
        raise ValueError(f"task {task!r}: metric {metric!r} not in its {kind} rows (has {available})")
    return rows


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
    rows = _rows(table, task, "head", metric)
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
    rows = _rows(table, task, "layer", metric)
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


def mean_head_delta(table: pl.DataFrame, task: str, metric: str) -> float:
    """Mean of the table's `delta` over the task's single-head rows for `metric`."""
    deltas = _rows(table, task, "head", metric)["delta"].cast(pl.Float64).drop_nans().drop_nulls()
    return float(deltas.mean()) if deltas.len() else float("nan")


def _metric_of(task: str, metric_by_task: Mapping[str, str]) -> str:
    if task not in metric_by_task:
        raise ValueError(f"task {task!r}: no metric given in metric_by_task")
    return metric_by_task[task]


def _panel_tasks(table: pl.DataFrame, metric_by_task: Mapping[str, str]) -> list[tuple[str, str]]:
    _check_columns(table)
    tasks = task_order(table)
    if not tasks:
        raise ValueError("the ablation table is empty")
    return [(task, _metric_of(task, metric_by_task)) for task in tasks]


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


def _norm(values: np.ndarray, baseline: float) -> Normalize:
    """A colour range covering every finite value and the baseline (3% margin, never zero-width).

    The margin keeps an extreme baseline's orange line inside the colour bar instead of on its edge.
    """
    finite = values[np.isfinite(values)]
    lo = min(float(finite.min()), baseline) if finite.size else baseline
    hi = max(float(finite.max()), baseline) if finite.size else baseline
    pad = 0.03 * (hi - lo) if hi - lo > 1e-9 else max(abs(hi) * 1e-3, 1e-3)
    return Normalize(vmin=lo - pad, vmax=hi + pad)


def _cmap() -> Colormap:
    return colormaps[CMAP_NAME].with_extremes(bad="lightgrey")


def _grid(n_panels: int, panel_size: tuple[float, float], title: str | None) -> tuple[Figure, list[Axes]]:
    ncols = min(n_panels, MAX_COLUMNS)
    nrows = math.ceil(n_panels / ncols)
    height = nrows * panel_size[1] + (0.4 if title else 0.0)
    figure = Figure(figsize=(ncols * panel_size[0], height), layout="constrained")
    axes = list(figure.subplots(nrows, ncols, squeeze=False).ravel())
    for unused in axes[n_panels:]:
        unused.set_visible(False)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure, axes[:n_panels]


def _baseline_on_colorbar(colorbar_axes: Axes, baseline: float) -> None:
    """An orange line across the colour bar at the baseline, with its value on the left."""
    colorbar_axes.axhline(
        baseline, xmin=-0.25, xmax=1.25, color=BASELINE_COLOUR, linewidth=2.0, clip_on=False
    )
    transform = blended_transform_factory(colorbar_axes.transAxes, colorbar_axes.transData)
    colorbar_axes.text(
        -0.3,
        baseline,
        f"{baseline:.3f}",
        transform=transform,
        ha="right",
        va="center",
        fontsize=7,
        color=BASELINE_COLOUR,
    )


def _draw_head_panel(figure: Figure, ax: Axes, table: pl.DataFrame, task: str, metric: str) -> None:
    matrix = head_matrix(table, task, metric)
    baseline = baseline_value(table, task, metric)
    n_layers, n_heads = matrix.shape
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=_cmap(), norm=_norm(matrix, baseline), aspect="auto")
    ax.set_xticks(range(n_heads), [str(h) for h in range(1, n_heads + 1)], fontsize=7)
    ax.set_yticks(range(n_layers), [str(layer) for layer in range(1, n_layers + 1)], fontsize=7)
    ax.set_xlabel("head", fontsize=8)
    ax.set_ylabel("layer", fontsize=8)
    ax.set_title(f"{task} ({metric_label(metric)})", fontsize=9)
    ax.tick_params(length=0)
    delta = mean_head_delta(table, task, metric)
    ax.annotate(
        f"mean Δ over heads: {delta:+.3f}",
        xy=(0.5, 0.0),
        xycoords="axes fraction",
        xytext=(0, -30),
        textcoords="offset points",
        ha="center",
        va="top",
        fontsize=7,
    )
    colorbar = figure.colorbar(image, ax=ax, fraction=0.08, pad=0.03)
    colorbar.ax.tick_params(labelsize=7)
    _baseline_on_colorbar(colorbar.ax, baseline)


def _draw_layer_panel(ax: Axes, table: pl.DataFrame, task: str, metric: str) -> None:
    series = layer_series(table, task, metric)
    baseline = baseline_value(table, task, metric)
    layers = np.arange(1, series.size + 1)
    norm = _norm(series, baseline)
    colours = colormaps[CMAP_NAME](0.25 + 0.75 * np.clip(norm(np.nan_to_num(series, nan=baseline)), 0, 1))
    shown = np.isfinite(series)
    ax.vlines(layers[shown], baseline, series[shown], color="0.6", linewidth=1.0, zorder=1)
    ax.scatter(
        layers[shown], series[shown], c=colours[shown], s=45, edgecolors="black", linewidths=0.5, zorder=3
    )
    ax.axhline(baseline, color=BASELINE_COLOUR, linewidth=1.5, zorder=2)
    ax.text(
        1.0,
        baseline,
        f" {baseline:.3f}",
        transform=blended_transform_factory(ax.transAxes, ax.transData),
        ha="left",
        va="center",
        fontsize=7,
        color=BASELINE_COLOUR,
    )
    ax.set_xticks(layers, [str(layer) for layer in layers], fontsize=7)
    ax.set_xlim(0.4, series.size + 0.6)
    ax.margins(y=0.15)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("disabled layer", fontsize=8)
    ax.set_ylabel(metric_label(metric), fontsize=8)
    ax.set_title(f"{task} ({metric_label(metric)})", fontsize=9)
    ax.grid(axis="y", color="0.9", linewidth=0.5)
    ax.set_axisbelow(True)


def plot_head_ablation(
    table: pl.DataFrame,
    metric_by_task: Mapping[str, str],
    output_pdf: Path,
    title: str | None = None,
) -> Figure:
    """Figure 8: per task, a layer × head heatmap of the score with that single head disabled.

    Saved to `output_pdf` (and its PNG); the Figure is returned so that what it shows can be read back.
    """
    panels = _panel_tasks(table, metric_by_task)
    shapes = [head_matrix(table, task, metric).shape for task, metric in panels]
    n_layers = max(s[0] for s in shapes)
    n_heads = max(s[1] for s in shapes)
    panel_size = (max(3.2, 0.28 * n_heads + 2.0), max(2.6, 0.24 * n_layers + 1.6))
    figure, axes = _grid(len(panels), panel_size, title)
    for ax, (task, metric) in zip(axes, panels, strict=True):
        _draw_head_panel(figure, ax, table, task, metric)
    save_figure(figure, output_pdf)
    return figure


def plot_layer_ablation(
    table: pl.DataFrame,
    metric_by_task: Mapping[str, str],
    output_pdf: Path,
    title: str | None = None,
) -> Figure:
    """Figure 9: per task, the score with each whole layer disabled against the baseline (saved
    like Figure 8; the Figure is returned)."""
    panels = _panel_tasks(table, metric_by_task)
    n_layers = max(layer_series(table, task, metric).size for task, metric in panels)
    panel_size = (max(3.2, 0.25 * n_layers + 1.6), 2.6)
    figure, axes = _grid(len(panels), panel_size, title)
    for ax, (task, metric) in zip(axes, panels, strict=True):
        _draw_layer_panel(ax, table, task, metric)
    save_figure(figure, output_pdf)
    return figure
