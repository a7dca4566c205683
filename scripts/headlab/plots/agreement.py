"""The mode-agreement figure: per task, each pair of disabling modes' per-head deltas as a scatter.

One row of panels per task, one panel per pair of modes: every single head is a point at (its
pooled delta under mode a, under mode b), the diagonal is drawn, and the pooled Spearman and
Kendall correlations, the top-k overlap and the noise-corrected correlation of the true effects
("r", what the claim reads) with their 95 % intervals (rule mode_agreement) are printed in
the panel.
Reads the pooled rows of the sweep statistics of each mode and the agreement table; computes
nothing itself.
"""

from __future__ import annotations

import math
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from headlab.analysis.metrics import metric_label
from headlab.plots.common import save_figure


def head_deltas(statistics: pl.DataFrame, task: str, mode: str, metric: str) -> pl.DataFrame:
    """layer, head, delta of the pooled single-head rows of one task x mode x metric."""
    return statistics.filter(
        (pl.col("task") == task)
        & (pl.col("mode") == mode)
        & (pl.col("metric") == metric)
        & (pl.col("scope") == "pooled")
        & (pl.col("kind") == "head")
    ).select("layer", "head", "delta")


def _label(agreement: pl.DataFrame, task: str, a: str, b: str) -> str:
    rows = agreement.filter(
        (pl.col("task") == task)
        & (pl.col("mode_a") == a)
        & (pl.col("mode_b") == b)
        & (pl.col("scope") == "pooled")
    )
    lines = []
    labels = (
        ("spearman", "ρ"),
        ("kendall", "τ"),
        ("top_k_overlap", "top-k"),
        ("pearson_corrected", "r true"),
    )
    for statistic, name in labels:
        r = rows.filter(pl.col("statistic") == statistic)
        if r.height:
            v = r.row(0, named=True)
            interval = "" if math.isnan(v["ci_low"]) else f" [{v['ci_low']:.2f}, {v['ci_high']:.2f}]"
            lines.append(f"{name} {v['value']:.2f}{interval}")
    return "\n".join(lines)


def plot_mode_agreement(
    statistics: pl.DataFrame, agreement: pl.DataFrame, metrics: dict[str, str], output_pdf: Path, title: str
) -> Figure:
    """The figure (saved as PDF and PNG); tasks in `metrics` order, modes in the statistics' order."""
    modes = statistics["mode"].unique(maintain_order=True).to_list()
    pairs = list(combinations(modes, 2))
    tasks = [t for t in metrics if t in set(statistics["task"].to_list())]
    if not pairs or not tasks:
        raise ValueError(f"mode agreement needs two modes and a task; got modes {modes}, tasks {tasks}")
    figure = Figure(figsize=(3.2 * len(pairs), 3.0 * len(tasks) + 0.4), layout="constrained")
    axes = figure.subplots(len(tasks), len(pairs), squeeze=False)
    for row, task in enumerate(tasks):
        metric = metrics[task]
        for column, (a, b) in enumerate(pairs):
            ax = axes[row, column]
            joined = head_deltas(statistics, task, a, metric).join(
                head_deltas(statistics, task, b, metric), on=["layer", "head"], suffix="_b"
            )
            x, y = joined["delta"].to_numpy(), joined["delta_b"].to_numpy()
            ax.scatter(x, y, s=10, alpha=0.7, color="tab:blue", edgecolors="none")
            finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
            ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=0.8, zorder=0)
            ax.axhline(0, color="0.85", linewidth=0.6, zorder=0)
            ax.axvline(0, color="0.85", linewidth=0.6, zorder=0)
            ax.set_xlabel(f"Δ {metric_label(metric)}, {a}", fontsize=8)
            ax.set_ylabel(f"Δ {metric_label(metric)}, {b}", fontsize=8)
            ax.set_title(f"{task}: {a} vs {b}", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.text(
                0.03,
                0.97,
                _label(agreement, task, a, b),
                transform=ax.transAxes,
                va="top",
                fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
            )
    figure.suptitle(title, fontsize=11)
    save_figure(figure, output_pdf)
    return figure
