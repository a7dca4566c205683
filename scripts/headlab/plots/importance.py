"""The head-importance figure of issue 21, laid out like the paper's Figure 8.

Per task (columns, in the table's order) a layer × head grid, layers 1..L from the top and heads
1..H from the left as in Figure 8 (`headlab.plots.ablation`), coloured by Michel et al.'s
(2019) head importance averaged over fine-tuning seeds: the column ``importance_normalized`` of
the importance table (per seed, the mean over the sample of |dL/dξ_h|, L = minus the score, each
layer's importances divided by their L2 norm over that layer's heads); darker = more important
("Blues", as Figure 8). With an attribution table, a second row of grids per task draws the
attribution-patching estimate of the change in score when each head alone is disabled in the
``uniform`` mode (the paper's disabling), the mean over examples and seeds of ``estimate``;
diverging "RdBu" centred on zero, red = disabling the head lowers the score.

Tables (issue 21 schemas): importance ``model, task, seed, split, layer, head, importance,
importance_normalized, n_examples`` (one split per task); attribution ``model, task, seed, mode,
example, layer, head, estimate``. Sizes (L, H) come from the tables; missing cells are light
grey. The model is read from the table. PDF and PNG (`headlab.plots.common.save_figure`); the
Figure is returned so that what it shows can be read back.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from headlab.plots.ablation import CMAP_NAME
from headlab.plots.common import save_figure
from headlab.plots.replication import require_columns, single_model

IMPORTANCE_COLUMNS = (
    "model",
    "task",
    "seed",
    "split",
    "layer",
    "head",
    "importance_normalized",
    "n_examples",
)
ATTRIBUTION_COLUMNS = ("model", "task", "seed", "mode", "example", "layer", "head", "estimate")
ATTRIBUTION_CMAP = "RdBu"
MAX_TASK_COLUMNS = 4


def _cells(rows: pl.DataFrame, value: str, task: str, shape: tuple[int, int]) -> np.ndarray:
    """`value` of each (layer, head) row at [layer-1, head-1] of a NaN grid of `shape`."""
    grid = np.full(shape, np.nan)  # (layers, heads)
    layers = rows["layer"].to_numpy().astype(np.int64)
    heads = rows["head"].to_numpy().astype(np.int64)
    if rows.height and (layers.min() < 1 or heads.min() < 1):
        raise ValueError(f"task {task!r}: layer and head must be 1-based")
    grid[layers - 1, heads - 1] = rows[value].cast(pl.Float64).to_numpy()
    return grid


def grid_shape(importance: pl.DataFrame, attribution: pl.DataFrame | None, task: str) -> tuple[int, int]:
    """(L, H): the largest layer and head index of the task in either table."""
    tables = [importance] + ([attribution] if attribution is not None else [])
    rows = pl.concat(
        [t.filter(pl.col("task") == task).select(pl.col("layer", "head").cast(pl.Int64)) for t in tables]
    )
    if rows.height == 0:
        raise ValueError(f"task {task!r}: no rows in the importance table")
    return int(rows["layer"].max()), int(rows["head"].max())  # type: ignore[arg-type]


def importance_grid(importance: pl.DataFrame, task: str, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """(grid (L, H) of the seed-mean of importance_normalized, number of seeds) of one task."""
    rows = importance.filter(pl.col("task") == task)
    if rows.height == 0:
        raise ValueError(f"task {task!r}: no rows in the importance table")
    if rows.select(pl.struct("seed", "layer", "head").is_duplicated().any()).item():
        splits = rows["split"].unique().to_list()
        raise ValueError(
            f"task {task!r}: several rows for one (seed, layer, head) (splits {splits}); filter to one split"
        )
    means = rows.group_by("layer", "head").agg(pl.col("importance_normalized").mean())
    return _cells(means, "importance_normalized", task, shape), rows["seed"].n_unique()


def attribution_grid(
    attribution: pl.DataFrame, task: str, mode: str, shape: tuple[int, int]
) -> tuple[np.ndarray, int, int]:
    """(grid (L, H) of the mean `estimate` over examples and seeds, seeds, examples) of a task x
    mode; an all-NaN grid when the table has no such rows."""
    rows = attribution.filter((pl.col("task") == task) & (pl.col("mode") == mode))
    means = rows.group_by("layer", "head").agg(pl.col("estimate").mean())
    return _cells(means, "estimate", task, shape), rows["seed"].n_unique(), rows["example"].n_unique()


def _draw_grid(figure: Figure, ax: Axes, grid: np.ndarray, cmap: str, norm: Normalize, title: str) -> None:
    n_layers, n_heads = grid.shape
    masked = np.ma.masked_invalid(grid)  # (layers, heads)
    image = ax.imshow(masked, cmap=colormaps[cmap].with_extremes(bad="lightgrey"), norm=norm, aspect="auto")
    ax.set_xticks(range(n_heads), [str(h) for h in range(1, n_heads + 1)], fontsize=7)
    ax.set_yticks(range(n_layers), [str(layer) for layer in range(1, n_layers + 1)], fontsize=7)
    ax.set_xlabel("head", fontsize=8)
    ax.set_ylabel("layer", fontsize=8)
    ax.set_title(title, fontsize=8)
    ax.tick_params(length=0)
    colorbar = figure.colorbar(image, ax=ax, fraction=0.08, pad=0.03)
    colorbar.ax.tick_params(labelsize=7)


def _importance_norm(grid: np.ndarray) -> Normalize:
    finite = grid[np.isfinite(grid)]
    top = float(finite.max()) if finite.size else 1.0
    return Normalize(vmin=0.0, vmax=top if top > 0 else 1.0)


def _symmetric_norm(grid: np.ndarray) -> Normalize:
    finite = np.abs(grid[np.isfinite(grid)])
    top = float(finite.max()) if finite.size else 1.0
    top = top if top > 0 else 1.0
    return Normalize(vmin=-top, vmax=top)


def plot_importance(
    importance: pl.DataFrame,
    out_pdf: Path,
    attribution: pl.DataFrame | None = None,
    attribution_mode: str = "uniform",
    title: str | None = None,
) -> Figure:
    """The importance grids (and, given `attribution`, the estimate grids below them)."""
    require_columns(importance, IMPORTANCE_COLUMNS, "importance table")
    model = single_model(importance, "importance table")
    if attribution is not None:
        require_columns(attribution, ATTRIBUTION_COLUMNS, "attribution table")
        if single_model(attribution, "attribution table") != model:
            raise ValueError(
                f"the attribution table is of model {attribution['model'][0]!r}, the importance of {model!r}"
            )
    tasks = importance["task"].unique(maintain_order=True).to_list()
    shapes = [grid_shape(importance, attribution, task) for task in tasks]
    n_layers, n_heads = max(s[0] for s in shapes), max(s[1] for s in shapes)
    per_task = 1 if attribution is None else 2  # rows of panels per task
    ncols = min(len(tasks), MAX_TASK_COLUMNS)
    nrows = math.ceil(len(tasks) / ncols) * per_task
    panel = (max(3.0, 0.26 * n_heads + 1.6), max(2.4, 0.24 * n_layers + 1.3))
    figure = Figure(figsize=(ncols * panel[0], nrows * panel[1] + 0.7), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(tasks) * per_task :]:
        ax.set_visible(False)
    for i, (task, shape) in enumerate(zip(tasks, shapes, strict=True)):
        row, column = (i // ncols) * per_task, i % ncols
        grid, n_seeds = importance_grid(importance, task, shape)
        title_of_panel = f"{task}: importance (mean of {n_seeds} seed{'s' if n_seeds != 1 else ''})"
        _draw_grid(figure, axes[row, column], grid, CMAP_NAME, _importance_norm(grid), title_of_panel)
        if attribution is not None:
            estimates, seeds, examples = attribution_grid(attribution, task, attribution_mode, shape)
            below = axes[row + 1, column]
            label = f"{task}: attribution Δ score, {attribution_mode}\n({seeds} seeds × {examples} examples)"
            _draw_grid(figure, below, estimates, ATTRIBUTION_CMAP, _symmetric_norm(estimates), label)
            if np.isnan(estimates).all():
                missing = f"no {attribution_mode} attribution"
                below.text(0.5, 0.5, missing, transform=below.transAxes, ha="center", va="center", fontsize=8)
    caption = [
        f"{model}: head importance (Michel et al. 2019), |dL/dξ_h| L2-normalised within each layer "
        "(importance_normalized), mean over seeds"
    ]
    if attribution is not None:
        caption.append(
            "below: attribution-patching estimate of the change in score when the head alone is disabled "
            f"({attribution_mode}), mean over examples and seeds"
        )
    width = int(figure.get_figwidth() * 14)  # characters of a 9-point line
    caption_text = "\n".join(textwrap.fill(line, width) for line in caption)
    figure.suptitle(title or caption_text, fontsize=9)
    save_figure(figure, out_pdf)
    return figure
