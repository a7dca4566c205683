"""Figure 5 of the paper: per head, how similar fine-tuned attention stays to pretrained attention.

Reads the drift tables written by rule attention_drift (`headlab.measure.drift`), one row per
``(model, task, layer, head)`` with ``cosine_mean``, ``cosine_std`` and ``n_examples``, and draws
one layer × head heatmap per task (tasks in order of first appearance), layers as rows from the
top, heads as columns, each cell printed with its mean cosine. One colour scale for all panels
("Blues" reversed: darker = lower similarity = greater change, as in the paper), from the lowest
value shown to 1. Sizes come from the table; missing cells are light grey. Plotting never
computes results. PDF and a PNG beside it, each written atomically.
"""

from __future__ import annotations

import math
import os

import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from headlab.plots.common import save_figure

DRIFT_COLUMNS = ("model", "task", "layer", "head", "cosine_mean", "n_examples")
CMAP_NAME = "Blues_r"
MAX_COLUMNS = 4
MAX_ANNOTATED_HEADS = 16


def drift_matrix(drift_table: pl.DataFrame, task: str) -> np.ndarray:
    """Mean cosines of one task as (layers, heads): entry [layer-1, head-1]; NaN where missing."""
    missing = [c for c in DRIFT_COLUMNS if c not in drift_table.columns]
    if missing:
        raise ValueError(f"drift table lacks column(s) {missing}")
    rows = drift_table.filter(pl.col("task") == task)
    if rows.height == 0:
        raise ValueError(f"task {task!r}: no rows in the drift table")
    if rows.select(pl.struct("layer", "head").is_duplicated().any()).item():
        raise ValueError(f"task {task!r}: several rows for one (layer, head); filter to one model first")
    layers = rows["layer"].to_numpy().astype(np.int64)
    heads = rows["head"].to_numpy().astype(np.int64)
    if layers.min() < 1 or heads.min() < 1:
        raise ValueError(f"task {task!r}: layer and head must be 1-based")
    matrix = np.full((int(layers.max()), int(heads.max())), np.nan)
    matrix[layers - 1, heads - 1] = rows["cosine_mean"].cast(pl.Float64).to_numpy()
    return matrix


def cell_label(value: float, decimals: int = 2) -> str:
    """The value without its leading zero (".93"), so 12 heads fit in a row."""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("0.") else text


def plot_drift(
    drift_table: pl.DataFrame, output_pdf: str | os.PathLike[str], title: str | None = None
) -> None:
    """Figure 5: a layer × head heatmap of the mean pretrained/fine-tuned cosine per task."""
    if drift_table.height == 0:
        raise ValueError("the drift table is empty")
    if drift_table["model"].n_unique() != 1:
        raise ValueError("the drift table holds several models; filter it to one first")
    tasks = drift_table["task"].unique(maintain_order=True).to_list()
    matrices = [drift_matrix(drift_table, task) for task in tasks]
    counts = [int(drift_table.filter(pl.col("task") == t)["n_examples"].max()) for t in tasks]
    n_layers = max(m.shape[0] for m in matrices)
    n_heads = max(m.shape[1] for m in matrices)
    finite = np.concatenate([m[np.isfinite(m)] for m in matrices])
    low = float(finite.min()) if finite.size else 0.0
    norm = Normalize(vmin=min(low, 1.0 - 1e-3), vmax=1.0)
    decimals = 2 if low < 0.95 else 3  # all heads nearly unchanged: one more digit
    cmap = colormaps[CMAP_NAME].with_extremes(bad="lightgrey")

    ncols = min(len(tasks), MAX_COLUMNS)
    nrows = math.ceil(len(tasks) / ncols)
    panel = (max(2.6, 0.26 * n_heads + 0.9), max(2.4, 0.24 * n_layers + 1.0))
    if title is None:
        title = f"{drift_table['model'][0]}: cosine similarity of attention, pretrained vs fine-tuned"
    figure = Figure(figsize=(ncols * panel[0] + 0.9, nrows * panel[1] + 0.5), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for unused in axes[len(tasks) :]:
        unused.set_visible(False)
    image = None
    for ax, task, matrix, n in zip(axes, tasks, matrices, counts, strict=False):
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, norm=norm, aspect="auto")
        rows, cols = matrix.shape
        ax.set_xticks(range(cols), [str(h) for h in range(1, cols + 1)], fontsize=6)
        ax.set_yticks(range(rows), [str(layer) for layer in range(1, rows + 1)], fontsize=6)
        ax.set_xlabel("head", fontsize=7)
        ax.set_ylabel("layer", fontsize=7)
        ax.set_title(f"{task} (n = {n})", fontsize=8)
        ax.tick_params(length=0)
        if cols <= MAX_ANNOTATED_HEADS:
            for (i, j), value in np.ndenumerate(matrix):
                if np.isfinite(value):
                    colour = "white" if norm(value) < 0.45 else "black"
                    ax.text(
                        j,
                        i,
                        cell_label(value, decimals),
                        ha="center",
                        va="center",
                        fontsize=4.5,
                        color=colour,
                    )
    if image is not None:
        colorbar = figure.colorbar(image, ax=list(axes[: len(tasks)]), fraction=0.04, pad=0.02)
        colorbar.ax.tick_params(labelsize=6)
        colorbar.set_label("mean cosine (darker = larger change)", fontsize=7)
    figure.suptitle(title, fontsize=9)
    save_figure(figure, output_pdf)
