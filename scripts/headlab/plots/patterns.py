"""Figures 1 and 2 of the paper: typical maps of the five pattern classes, and each class's share per task.

Reads tables only:

* Figure 1: the maps tables of rule export_maps (``map_id, ..., size, values``) and the map
  classes of rule classify_maps (``map_id, pattern, classifier, confidence``). Per class, the map
  with the highest confidence is drawn (ties: the first in the maps tables' order), as the
  paper's Figure 1 shows one typical map per class; a class with no map gets an empty panel.
* Figure 2: the pattern tables of rule pattern_classes (``task, example, layer, head, pattern,
  classifier``), one per task; per task, a bar stacked by class (share of all example x layer x
  head maps, in percent), like the paper's Figure 2.

The classifier that produced the labels (rules or CNN) is written in each figure. Maps are drawn
with "Blues" (darker = more attention), each scaled to its own maximum; sizes come from the
tables. PDF and a PNG beside it, each written atomically (`headlab.plots.common.save_figure`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from headlab.analysis.patterns import PATTERNS, pattern_shares
from headlab.plots.common import save_figure

# One colour per class, in `PATTERNS` order (colour-blind-safe Okabe-Ito hues).
PATTERN_COLOURS = {
    "vertical": "#0072B2",
    "diagonal": "#E69F00",
    "vertical+diagonal": "#009E73",
    "block": "#CC79A7",
    "heterogeneous": "#999999",
}
CLASSIFIER_NAMES = {"rules": "rules on attention statistics", "cnn": "CNN trained on labelled maps"}
CMAP_NAME = "Blues"
SHARE_LABEL_MIN = 0.04  # segments below 4% carry no printed percentage


def _require(table: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")


def classifier_text(classes: pl.DataFrame) -> str:
    """'classifier: ...' from the table's classifier column (several are listed)."""
    names = classes["classifier"].unique(maintain_order=True).to_list()
    return "classifier: " + ", ".join(CLASSIFIER_NAMES.get(n, n) for n in names)


def typical_maps(maps: pl.DataFrame, classes: pl.DataFrame) -> dict[str, dict[str, object] | None]:
    """Per pattern, the row (maps columns plus pattern and confidence) of its most confident map."""
    _require(maps, ("map_id", "task", "example", "layer", "head", "size", "values"), "maps table")
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


def plot_figure1(
    maps: pl.DataFrame, classes: pl.DataFrame, output_pdf: str | os.PathLike[str], title: str | None = None
) -> tuple[Path, Path]:
    """Figure 1: one typical downsampled map per class, in `PATTERNS` order."""
    chosen = typical_maps(maps, classes)
    figure = Figure(figsize=(2.3 * len(PATTERNS), 3.2), layout="constrained")
    axes = figure.subplots(1, len(PATTERNS), squeeze=False)[0]
    for ax, pattern in zip(axes, PATTERNS, strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(pattern.capitalize(), fontsize=10, color=PATTERN_COLOURS[pattern], fontweight="bold")
        row = chosen[pattern]
        if row is None:
            ax.text(0.5, 0.5, "no map of\nthis class", ha="center", va="center", fontsize=8, color="0.4")
            continue
        size = int(row["size"])
        values = np.asarray(row["values"], dtype=np.float64).reshape(size, size)  # (query, key)
        ax.imshow(values, cmap=CMAP_NAME, vmin=0.0, vmax=max(float(values.max()), 1e-12), aspect="equal")
        ax.set_xlabel(
            f"{row['task']}, example {row['example']}\nL{row['layer']}-H{row['head']}, "
            f"{row.get('n_tokens', '?')} tokens, conf. {row['confidence']:.2f}",
            fontsize=7,
        )
    figure.supxlabel(
        f"rows: query tokens, columns: key tokens (downsampled over real tokens); {classifier_text(classes)}",
        fontsize=8,
    )
    if title:
        figure.suptitle(title, fontsize=11)
    return save_figure(figure, output_pdf)


def plot_figure2(
    patterns: pl.DataFrame, output_pdf: str | os.PathLike[str], title: str | None = None
) -> tuple[Path, Path]:
    """Figure 2: per task (table order), the share of each class among its head maps, stacked bars."""
    _require(patterns, ("task", "pattern", "classifier"), "pattern table")
    if patterns.height == 0:
        raise ValueError("the pattern table is empty")
    shares = pattern_shares(patterns)
    tasks = shares["task"].unique(maintain_order=True).to_list()
    totals = shares.group_by("task", maintain_order=True).agg(pl.col("count").sum())
    n_maps = dict(zip(totals["task"].to_list(), totals["count"].to_list(), strict=True))
    figure = Figure(figsize=(max(4.0, 1.1 * len(tasks) + 2.8), 4.2), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(tasks))
    bottom = np.zeros(len(tasks))
    for pattern in PATTERNS:
        share = np.array(
            [shares.filter((pl.col("task") == t) & (pl.col("pattern") == pattern))["share"][0] for t in tasks]
        )
        percent = 100.0 * share
        ax.bar(
            x, percent, 0.6, bottom=bottom, color=PATTERN_COLOURS[pattern], label=pattern, edgecolor="white"
        )
        for xi, b, p in zip(x, bottom, percent, strict=True):
            if p >= 100.0 * SHARE_LABEL_MIN:
                ax.text(xi, b + p / 2, f"{p:.0f}%", ha="center", va="center", fontsize=7, color="white")
        bottom += percent
    ax.set_xticks(x, [f"{t}\n({n_maps[t]} maps)" for t in tasks], fontsize=8)
    ax.set_ylabel("share of head maps (%)", fontsize=9)
    ax.set_ylim(0, 100)
    ax.tick_params(axis="y", labelsize=8)
    handles, names = ax.get_legend_handles_labels()  # listed top-down, as the bars are stacked
    ax.legend(
        handles[::-1], names[::-1], fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False
    )
    ax.set_title(classifier_text(patterns), fontsize=8, color="0.3")
    if title:
        figure.suptitle(title, fontsize=11)
    return save_figure(figure, output_pdf)
