"""The pruning figure of issue 21: the score as more and more heads are pruned (Michel's zero mode).

One panel per task (and metric, in the summary's order; `metrics` picks one per task), the x
axis the share of the model's heads pruned, a line per order in which heads are removed:

* importance: least important first by Michel et al.'s head importance;
* delta: least harmful first by Kovaleva et al.'s disabling delta (the sweep's score change),
  chosen on the examples it is scored on;
* delta_heldout: the same, each half of the dev set scored by the order the other half chose;
* random: seeded random orders (the line their mean, the legend says how many draws).

Each line is the summary's ``value`` at each step, its band ``ci_low``..``ci_high``; the
unpruned model's score (``baseline``) is a thin orange line and a dashed orange line marks
baseline - 0.01, one point of the metric (metrics are fractions), the tolerance of "pruning
without loss". The summary (computed elsewhere; plotting computes nothing) has one row per
``model, task, order, step, metric`` with ``n_pruned, share_pruned, value, ci_low, ci_high,
seed_low, seed_high, baseline, n_seeds, n_draws, n_examples``. PDF and PNG
(`headlab.plots.common.save_figure`); the Figure is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from headlab.analysis.metrics import metric_label
from headlab.plots.ablation import BASELINE_COLOUR, _grid
from headlab.plots.common import save_figure
from headlab.plots.replication import require_columns, single_model

SUMMARY_COLUMNS = (
    "model",
    "task",
    "order",
    "step",
    "n_pruned",
    "share_pruned",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "baseline",
    "n_seeds",
    "n_draws",
    "n_examples",
)
ORDERS = ("importance", "delta", "delta_heldout", "random")
ORDER_COLOURS = {
    "importance": "tab:blue",
    "delta": "tab:green",
    "delta_heldout": "tab:olive",
    "random": "0.45",
}
ORDER_LABELS = {
    "importance": "importance (Michel)",
    "delta": "delta (Kovaleva Δ, in-sample)",
    "delta_heldout": "delta (Kovaleva Δ, held out)",
}
TOLERANCE = 0.01  # one point of a metric in [0, 1]


def pruning_panels(summary: pl.DataFrame, metrics: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(task, metric) per panel: every metric of each task in table order, or `metrics[task]`."""
    panels = summary.select("task", "metric").unique(maintain_order=True).rows()
    if metrics is None:
        return [(str(t), str(m)) for t, m in panels]
    chosen = []
    for task in summary["task"].unique(maintain_order=True).to_list():
        if task not in metrics or (task, metrics[task]) not in panels:
            found = [m for t, m in panels if t == task]
            raise ValueError(f"task {task!r}: metric {metrics.get(task)!r} not in the summary (has {found})")
        chosen.append((task, metrics[task]))
    return chosen


def pruning_curve(summary: pl.DataFrame, task: str, metric: str, order: str) -> pl.DataFrame:
    """The rows of one line, by step; a ValueError naming the task when a step appears twice."""
    rows = summary.filter(
        (pl.col("task") == task) & (pl.col("metric") == metric) & (pl.col("order") == order)
    ).sort("step")
    if rows["step"].is_duplicated().any():
        raise ValueError(f"task {task!r}, order {order!r}: several rows per step; filter to one model first")
    return rows


def baseline_of(summary: pl.DataFrame, task: str, metric: str) -> float:
    """The unpruned score of a task x metric (one value for every order and step)."""
    values = summary.filter((pl.col("task") == task) & (pl.col("metric") == metric))["baseline"]
    found = values.drop_nulls().unique().to_list()
    if len(found) != 1:
        raise ValueError(f"task {task!r}, metric {metric!r}: expected one baseline value, got {found}")
    return float(found[0])


def _label(order: str, rows: pl.DataFrame) -> str:
    if order == "random":
        draws = int(rows["n_draws"].max())  # type: ignore[arg-type]
        return f"random (mean of {draws} draw{'s' if draws != 1 else ''})"
    return ORDER_LABELS.get(order, order)


def _draw_panel(ax: Axes, summary: pl.DataFrame, task: str, metric: str) -> None:
    present = summary.filter((pl.col("task") == task) & (pl.col("metric") == metric))
    found = present["order"].unique(maintain_order=True).to_list()
    orders = [o for o in ORDERS if o in found] + [o for o in found if o not in ORDERS]
    for order in orders:
        rows = pruning_curve(summary, task, metric, order)
        share = rows["share_pruned"].to_numpy()  # (steps,)
        colour = ORDER_COLOURS.get(order, "tab:purple")
        ax.fill_between(
            share,
            rows["ci_low"].cast(pl.Float64).to_numpy(),
            rows["ci_high"].cast(pl.Float64).to_numpy(),
            color=colour,
            alpha=0.18,
            linewidth=0,
            gid=f"band-{order}",
        )
        ax.plot(
            share,
            rows["value"].to_numpy(),
            marker="o",
            markersize=3,
            color=colour,
            label=_label(order, rows),
            gid=f"line-{order}",
        )
    baseline = baseline_of(summary, task, metric)
    ax.axhline(baseline, color=BASELINE_COLOUR, linewidth=1.0, gid="baseline")
    ax.axhline(
        baseline - TOLERANCE,
        color=BASELINE_COLOUR,
        linewidth=1.0,
        linestyle="--",
        label="baseline − 1 point",
        gid="tolerance",
    )
    n_seeds = int(present["n_seeds"].max())  # type: ignore[arg-type]
    n_examples = int(present["n_examples"].max())  # type: ignore[arg-type]
    label = metric_label(metric)
    ax.set_title(f"{task} ({label}), {n_seeds} seeds × {n_examples} examples", fontsize=8)
    ax.set_xlabel("share of heads pruned", fontsize=8)
    ax.set_ylabel(f"{label} (band: 95% CI)", fontsize=8)
    ax.set_xlim(left=0.0)
    ax.tick_params(labelsize=7)
    ax.grid(color="0.92", linewidth=0.5)
    ax.legend(fontsize=6.5, loc="lower left")


def plot_pruning(
    summary: pl.DataFrame, out_pdf: Path, metrics: Mapping[str, str] | None = None, title: str | None = None
) -> Figure:
    """The pruning curves (PDF and PNG)."""
    require_columns(summary, SUMMARY_COLUMNS, "pruning summary")
    model = single_model(summary, "pruning summary")
    panels = pruning_panels(summary, metrics)
    figure, axes = _grid(
        len(panels),
        (3.6, 3.0),
        title or f"{model}: pruning heads (zero mode) in the order of each screen",
    )
    for ax, (task, metric) in zip(axes, panels, strict=True):
        _draw_panel(ax, summary, task, metric)
    save_figure(figure, out_pdf)
    return figure
