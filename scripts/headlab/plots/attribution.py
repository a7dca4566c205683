"""The attribution-agreement figure of issue 21: is attribution patching's estimate the real effect?

Per task (rows) and disabling mode (columns, in the attribution table's order), every single head
is a point at (x) its attribution-patching estimate of the change in score when that head alone
is disabled and (y) the exact score delta the sweep measured in the same mode, each the mean over
the same (seed, example) pairs; the diagonal (estimate = exact) is drawn and the pooled Spearman
correlation with its 95 % interval (agreement table: screen "attribution", unit "head", target
"score", scope "pooled") is in the panel's title, the Pearson correlation and top-k overlap in
the panel.

Tables (issue 21 schemas):

* attribution: ``model, task, seed, mode, example, layer, head, estimate``;
* sweeps: the sweep predictions with their per-example ``score`` (exact delta = score with the
  head disabled - baseline score, `headlab.plots.replication.example_score_deltas`);
* agreement: ``model, task, screen, mode, unit, target, scope, seed, statistic, value, ci_low,
  ci_high, k, n_units, n_examples``.

An attribution row without its sweep row is a ValueError (the estimate is made on the sweep's dev
examples); a mode without a sweep is shown as text in its panel. PDF and PNG
(`headlab.plots.common.save_figure`); the Figure is returned.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from headlab.plots.common import save_figure
from headlab.plots.replication import example_score_deltas, require_columns, single_model

ATTRIBUTION_COLUMNS = ("model", "task", "seed", "mode", "example", "layer", "head", "estimate")
AGREEMENT_COLUMNS = (
    "model",
    "task",
    "screen",
    "mode",
    "unit",
    "target",
    "scope",
    "statistic",
    "value",
    "ci_low",
    "ci_high",
    "k",
)
PAIR_KEYS = ["seed", "example", "layer", "head"]


def estimate_and_exact(
    attribution: pl.DataFrame, deltas: pl.DataFrame, task: str, mode: str
) -> tuple[pl.DataFrame, int, int]:
    """(layer, head, estimate, exact) per head, each the mean over the attribution's (seed,
    example) pairs, with the numbers of seeds and examples; `deltas` is `example_score_deltas`.

    A ValueError names the task and mode when an attribution row has no sweep row."""
    estimates = attribution.filter((pl.col("task") == task) & (pl.col("mode") == mode)).select(
        *PAIR_KEYS, "estimate"
    )
    exact = deltas.filter((pl.col("task") == task) & (pl.col("mode") == mode)).select(*PAIR_KEYS, "delta")
    joined = estimates.join(exact, on=PAIR_KEYS, how="left")
    unmatched = joined["delta"].null_count()
    if unmatched:
        raise ValueError(
            f"task {task!r}, mode {mode!r}: {unmatched} attribution rows have no sweep row "
            "(seed, example, layer, head); the estimate must be made on the sweep's examples"
        )
    per_head = (
        joined.group_by("layer", "head")
        .agg(pl.col("estimate").mean(), exact=pl.col("delta").mean())
        .sort("layer", "head")
    )
    return per_head, joined["seed"].n_unique(), joined["example"].n_unique()


def _row(agreement: pl.DataFrame, task: str, mode: str, statistic: str) -> dict[str, object] | None:
    rows = agreement.filter(
        (pl.col("task") == task)
        & (pl.col("mode") == mode)
        & (pl.col("screen") == "attribution")
        & (pl.col("unit") == "head")
        & (pl.col("target") == "score")
        & (pl.col("scope") == "pooled")
        & (pl.col("statistic") == statistic)
    )
    return rows.row(0, named=True) if rows.height else None


def agreement_text(agreement: pl.DataFrame, task: str, mode: str, statistic: str, name: str) -> str:
    """'name value [low, high]' of a pooled statistic, or why it is not shown."""
    row = _row(agreement, task, mode, statistic)
    if row is None:
        return f"{name}: not in the agreement table"
    value = row["value"]
    if value is None or not math.isfinite(float(value)):  # type: ignore[arg-type]
        return f"{name}: undefined"
    if statistic == "top_k_overlap":
        name = f"top-{row['k']} overlap"
    if not math.isfinite(float(row["ci_low"])):  # type: ignore[arg-type]
        return f"{name} {value:.2f} (no interval)"
    return f"{name} {value:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def _message(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.3")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_panel(
    ax: Axes, attribution: pl.DataFrame, deltas: pl.DataFrame, agreement: pl.DataFrame, task: str, mode: str
) -> None:
    ax.set_title(
        f"{task} ({mode})\n{agreement_text(agreement, task, mode, 'spearman', 'pooled ρ')}", fontsize=8
    )
    ax.tick_params(labelsize=7)
    if attribution.filter((pl.col("task") == task) & (pl.col("mode") == mode)).height == 0:
        _message(ax, f"no {mode} attribution")
        return
    if deltas.filter((pl.col("task") == task) & (pl.col("mode") == mode)).height == 0:
        _message(ax, f"no {mode} sweep")
        return
    per_head, n_seeds, n_examples = estimate_and_exact(attribution, deltas, task, mode)
    x, y = per_head["estimate"].to_numpy(), per_head["exact"].to_numpy()  # (heads,) each
    ax.scatter(x, y, s=10, alpha=0.7, color="tab:purple", edgecolors="none", gid="heads")
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=0.8, zorder=0, gid="diagonal")
    ax.axhline(0, color="0.85", linewidth=0.6, zorder=0)
    ax.axvline(0, color="0.85", linewidth=0.6, zorder=0)
    ax.set_xlabel("attribution estimate of Δ score", fontsize=8)
    ax.set_ylabel("exact Δ score (sweep)", fontsize=8)
    details = [
        agreement_text(agreement, task, mode, statistic, name)
        for statistic, name in (("pearson", "pooled r"), ("top_k_overlap", "top-k overlap"))
        if _row(agreement, task, mode, statistic) is not None
    ]
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    details.append(f"{per_head.height} heads, {seeds} × {n_examples} examples")
    ax.set_title(f"{ax.get_title()}\n" + "\n".join(details), fontsize=7.5)


def plot_attribution(
    attribution: pl.DataFrame,
    sweeps: pl.DataFrame,
    agreement: pl.DataFrame,
    out_pdf: Path,
    title: str | None = None,
) -> Figure:
    """The figure (PDF and PNG): a row per task, a column per mode of the attribution table."""
    require_columns(attribution, ATTRIBUTION_COLUMNS, "attribution table")
    require_columns(agreement, AGREEMENT_COLUMNS, "attribution agreement table")
    model = single_model(attribution, "attribution table")
    if single_model(sweeps, "sweep predictions") != model:
        raise ValueError(
            f"the sweeps are of model {sweeps['model'][0]!r}, the attribution table of {model!r}"
        )
    tasks = attribution["task"].unique(maintain_order=True).to_list()
    modes = attribution["mode"].unique(maintain_order=True).to_list()
    deltas = example_score_deltas(sweeps)
    figure = Figure(figsize=(3.1 * len(modes), 3.0 * len(tasks) + 0.5), layout="constrained")
    axes = figure.subplots(len(tasks), len(modes), squeeze=False)
    for row, task in enumerate(tasks):
        for column, mode in enumerate(modes):
            _draw_panel(axes[row, column], attribution, deltas, agreement, task, mode)
    figure.suptitle(
        title or f"{model}: attribution patching vs the exact effect of disabling one head (mean over seeds)",
        fontsize=10,
    )
    save_figure(figure, out_pdf)
    return figure
