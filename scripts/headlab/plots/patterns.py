"""Figures 1 and 2 of the paper: typical maps of the five pattern classes, and each class's share per task.

Each figure draws what `headlab.analysis.pattern_summary` chose and counted; plotting never
computes results:

* Figure 1 (`typical_maps`): per class, the exported map its classifier is most confident of, as
  the paper's Figure 1 shows one typical map per class; a class with no map gets an empty panel.
* Figure 2 (`class_shares`): per task, a bar stacked by class (share of all example x layer x
  head maps, in percent), like the paper's Figure 2.

The classifier that produced the labels (rules or CNN) is written in each figure. Maps are drawn
with "Blues" (darker = more attention), each scaled to its own maximum; sizes come from the
tables. PDF and a PNG beside it, each written atomically (`headlab.plots.common.save_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from headlab.analysis.pattern_summary import ClassShares
from headlab.analysis.patterns import PATTERNS
from headlab.heads import head_name
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


def classifier_text(classifiers: Sequence[str]) -> str:
    """'classifier: ...' naming each classifier (`headlab.analysis.pattern_summary.classifier_names`)."""
    return "classifier: " + ", ".join(CLASSIFIER_NAMES.get(n, n) for n in classifiers)


def plot_figure1(
    chosen: Mapping[str, Mapping[str, Any] | None],
    classifiers: Sequence[str],
    output_pdf: str | os.PathLike[str],
    title: str | None = None,
) -> tuple[Path, Path]:
    """Figure 1: one typical downsampled map per class, in `PATTERNS` order.

    `chosen` is `headlab.analysis.pattern_summary.typical_maps` (pattern -> its map's row, or
    None), `classifiers` the names of the classifiers that labelled them.
    """
    figure = Figure(figsize=(2.3 * len(PATTERNS), 3.2), layout="constrained")
    axes = figure.subplots(1, len(PATTERNS), squeeze=False)[0]
    for ax, pattern in zip(axes, PATTERNS, strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(pattern.capitalize(), fontsize=10, color=PATTERN_COLOURS[pattern], fontweight="bold")
        row = chosen.get(pattern)
        if row is None:
            ax.text(0.5, 0.5, "no map of\nthis class", ha="center", va="center", fontsize=8, color="0.4")
            continue
        size = int(row["size"])
        values = np.asarray(row["values"], dtype=np.float64).reshape(size, size)  # (query, key)
        ax.imshow(values, cmap=CMAP_NAME, vmin=0.0, vmax=max(float(values.max()), 1e-12), aspect="equal")
        ax.set_xlabel(
            f"{row['task']}, example {row['example']}\n{head_name(row['layer'], row['head'])}, "
            f"{row.get('n_tokens', '?')} tokens, conf. {row['confidence']:.2f}",
            fontsize=7,
        )
    where = "rows: query tokens, columns: key tokens (downsampled over real tokens)"
    figure.supxlabel(f"{where}; {classifier_text(classifiers)}", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    return save_figure(figure, output_pdf)


def plot_figure2(
    shares: ClassShares, output_pdf: str | os.PathLike[str], title: str | None = None
) -> tuple[Path, Path]:
    """Figure 2: per task, the share of each class among its head maps, stacked bars
    (`headlab.analysis.pattern_summary.class_shares`)."""
    tasks = shares.tasks
    figure = Figure(figsize=(max(4.0, 1.1 * len(tasks) + 2.8), 4.2), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(tasks))
    bottom = np.zeros(len(tasks))
    for pattern, share in zip(PATTERNS, shares.shares, strict=True):  # share: (tasks,)
        percent = 100.0 * share
        ax.bar(
            x, percent, 0.6, bottom=bottom, color=PATTERN_COLOURS[pattern], label=pattern, edgecolor="white"
        )
        for xi, b, p in zip(x, bottom, percent, strict=True):
            if p >= 100.0 * SHARE_LABEL_MIN:
                ax.text(xi, b + p / 2, f"{p:.0f}%", ha="center", va="center", fontsize=7, color="white")
        bottom += percent
    ax.set_xticks(x, [f"{t}\n({n} maps)" for t, n in zip(tasks, shares.n_maps, strict=True)], fontsize=8)
    ax.set_ylabel("share of head maps (%)", fontsize=9)
    ax.set_ylim(0, 100)
    ax.tick_params(axis="y", labelsize=8)
    handles, names = ax.get_legend_handles_labels()  # listed top-down, as the bars are stacked
    ax.legend(
        handles[::-1], names[::-1], fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False
    )
    ax.set_title(classifier_text(shares.classifiers), fontsize=8, color="0.3")
    if title:
        figure.suptitle(title, fontsize=11)
    return save_figure(figure, output_pdf)
