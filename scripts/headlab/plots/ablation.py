"""Figures 8 and 9 of the paper from the tidy ablation table; plotting never computes results.

The ablation table has one row per (model, task, mode, mask, kind, layer, head, metric):

    model, task, mode, mask, kind ("baseline" | "head" | "layer" | "named"),
    layer (1-based, null for baseline/named), head (1-based, null unless kind == "head"),
    metric, value, baseline, delta (= value - baseline), n_examples

The workflow draws the pooled rows of the sweep statistics (mean over seeds), which add
`ci_low`, `ci_high` (the delta's interval) and `significant` (after Benjamini-Hochberg):
Figure 8 marks the significant heads (gain ▲, loss ▼), Figure 9 draws each layer's delta with
its interval above the paper's heatmap strip. Without those columns the marks and intervals are
left out. The mean delta over heads printed in each Figure 8 panel is given to the figure
(`headlab.analysis.ablation_summary.mean_head_deltas`, an average of the table's own `delta`).

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
from headlab.plots.ablation_data import (
    baseline_value,
    head_matrix,
    layer_intervals,
    layer_series,
    panel_tasks,
    significant_heads,
)
from headlab.plots.common import save_figure

BASELINE_COLOUR = "tab:orange"
CMAP_NAME = "Blues"
MAX_COLUMNS = 3


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


def _draw_head_panel(
    figure: Figure, ax: Axes, table: pl.DataFrame, task: str, metric: str, delta: float
) -> None:
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
    marked = _mark_significant(ax, table, task, metric)
    ax.annotate(
        f"mean Δ over heads: {delta:+.3f}" + (f"\nBH-significant: {marked}" if marked is not None else ""),
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


def _mark_significant(ax: Axes, table: pl.DataFrame, task: str, metric: str) -> str | None:
    """Markers on the heads whose delta survives BH (▲ gain, ▼ loss); a count for the caption."""
    found = significant_heads(table, task, metric)
    if found is None:
        return None
    gains, losses = found
    for (layers, heads), marker, colour in ((gains, "^", "tab:green"), (losses, "v", "tab:red")):
        ax.scatter(heads, layers, marker=marker, s=22, c=colour, edgecolors="white", linewidths=0.5, zorder=3)
    return f"{gains.shape[1]} gain ▲, {losses.shape[1]} loss ▼"


def _draw_layer_intervals(
    ax: Axes, task: str, metric: str, intervals: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    delta, low, high = intervals
    layers = np.arange(1, delta.size + 1)
    shown = np.isfinite(delta)
    below, above = (
        delta - np.where(np.isfinite(low), low, delta),
        np.where(np.isfinite(high), high, delta) - delta,
    )
    colours = np.where(low > 0, "tab:green", np.where(high < 0, "tab:red", "0.3"))
    ax.axhline(0.0, color=BASELINE_COLOUR, linewidth=1.5, zorder=1)
    for i in np.flatnonzero(shown):
        ax.errorbar(
            layers[i],
            delta[i],
            yerr=[[below[i]], [above[i]]],
            fmt="o",
            color=colours[i],
            markersize=5,
            capsize=2,
            zorder=3,
        )
    ax.set_xticks(layers, [str(layer) for layer in layers], fontsize=7)
    ax.set_xlim(0.4, delta.size + 0.6)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel(f"Δ {metric_label(metric)} (95% CI)", fontsize=8)
    ax.set_title(f"{task} ({metric_label(metric)})", fontsize=9)
    ax.grid(axis="y", color="0.9", linewidth=0.5)


def _draw_layer_strip(figure: Figure, ax: Axes, table: pl.DataFrame, task: str, metric: str) -> None:
    """The paper's look: one row of cells, darker = higher score, the baseline on the colour bar."""
    series = layer_series(table, task, metric)
    baseline = baseline_value(table, task, metric)
    image = ax.imshow(
        np.ma.masked_invalid(series[None]), cmap=_cmap(), norm=_norm(series, baseline), aspect="auto"
    )
    ax.set_xticks(range(series.size), [str(layer) for layer in range(1, series.size + 1)], fontsize=7)
    ax.set_yticks([])
    ax.set_xlabel("disabled layer", fontsize=8)
    ax.tick_params(length=0)
    colorbar = figure.colorbar(image, ax=ax, fraction=0.08, pad=0.03)
    colorbar.ax.tick_params(labelsize=6)
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
    mean_deltas: Mapping[str, float],
    output_pdf: Path,
    title: str | None = None,
) -> Figure:
    """Figure 8: per task, a layer × head heatmap of the score with that single head disabled.

    `mean_deltas` (task -> the mean delta over its heads, printed under its panel) is
    `headlab.analysis.ablation_summary.mean_head_deltas` of the same table and metrics.
    Saved to `output_pdf` (and its PNG); the Figure is returned so that what it shows can be read back.
    """
    panels = panel_tasks(table, metric_by_task)
    missing = [task for task, _ in panels if task not in mean_deltas]
    if missing:
        raise ValueError(f"no mean delta over heads given for task(s) {missing}")
    shapes = [head_matrix(table, task, metric).shape for task, metric in panels]
    n_layers = max(s[0] for s in shapes)
    n_heads = max(s[1] for s in shapes)
    panel_size = (max(3.2, 0.28 * n_heads + 2.0), max(2.6, 0.24 * n_layers + 1.6))
    figure, axes = _grid(len(panels), panel_size, title)
    for ax, (task, metric) in zip(axes, panels, strict=True):
        _draw_head_panel(figure, ax, table, task, metric, mean_deltas[task])
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
    panels = panel_tasks(table, metric_by_task)
    n_layers = max(layer_series(table, task, metric).size for task, metric in panels)
    panel_size = (max(3.2, 0.25 * n_layers + 1.6), 2.6)
    intervals = [layer_intervals(table, task, metric) for task, metric in panels]
    if any(i is None for i in intervals):
        figure, axes = _grid(len(panels), panel_size, title)
        for ax, (task, metric) in zip(axes, panels, strict=True):
            _draw_layer_panel(ax, table, task, metric)
        save_figure(figure, output_pdf)
        return figure
    # with intervals: per task a column, the deltas with intervals above the heatmap strip
    figure = Figure(
        figsize=(len(panels) * panel_size[0], 3.6 + (0.4 if title else 0.0)), layout="constrained"
    )
    grid = figure.subplots(2, len(panels), squeeze=False, height_ratios=[3, 1])
    for column, ((task, metric), interval) in enumerate(zip(panels, intervals, strict=True)):
        _draw_layer_intervals(grid[0, column], task, metric, interval)  # type: ignore[arg-type]
        _draw_layer_strip(figure, grid[1, column], table, task, metric)
    if title:
        figure.suptitle(title, fontsize=11)
    save_figure(figure, output_pdf)
    return figure
