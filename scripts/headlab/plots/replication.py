"""The replication figure of issue 21: do two fine-tuning seeds agree on which heads matter?

Per disabling mode (rows) and task (columns), a scatter of every single head's mean score delta
under seed a (x) against seed b (y), a and b the task's two smallest seeds in the sweeps, with
the diagonal and the pooled Spearman correlation over every seed pair (and its 95 % interval)
from the replication table in the title; a last panel per mode draws each task's pooled
`helps_replicated` with its interval against the share `expected` by chance (a black bar).

Definitions (the schemas of issue 21):

* score: the per-example score of the sweep predictions (log-probability of the gold label, or
  minus the squared error); higher is better.
* score delta of a head on an example: its score with that head alone disabled minus its
  baseline score (same seed, mode and example); a head's mean score delta (per seed) is the mean
  of that over the dev examples (`head_score_deltas`).
* replication table: ``model, task, mode, statistic (spearman_delta | pearson_corrected |
  helps_replicated | spearman_importance), scope (pair | pooled), seed_a, seed_b, value, ci_low,
  ci_high, expected, n_selected, n_heads, n_examples, note``.

A statistic that is NaN because the sweep has a single seed is shown as the text "needs two
seeds" instead of failing; another NaN is shown with the row's note. The helpers here (column
checks, the per-example and per-head score deltas) are shared with `headlab.plots.attribution`.
Saved as PDF and PNG (`headlab.plots.common.save_figure`); the Figure is returned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from headlab.plots.common import save_figure

SWEEP_COLUMNS = ("model", "task", "seed", "mode", "mask", "kind", "layer", "head", "example", "score")
REPLICATION_COLUMNS = (
    "model",
    "task",
    "mode",
    "statistic",
    "scope",
    "seed_a",
    "seed_b",
    "value",
    "ci_low",
    "ci_high",
    "expected",
    "n_heads",
    "n_examples",
    "note",
)
NEEDS_TWO_SEEDS = "needs two seeds"
# The statistics drawn per mode (a mode that has only importance rows gets no row of panels).
SWEEP_STATISTICS = ("spearman_delta", "helps_replicated", "pearson_corrected")
DELTA_KEYS = ["task", "mode", "seed", "example"]


# ---------------------------------------------------------------------------------------------
# Data shared with the attribution figure
# ---------------------------------------------------------------------------------------------


def require_columns(table: pl.DataFrame, columns: Iterable[str], name: str) -> None:
    """A ValueError naming the columns of `columns` that `table` (called `name`) lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the {name} lacks column(s) {missing}")


def single_model(table: pl.DataFrame, name: str) -> str:
    """The one model of a table; a ValueError for none or several (filter to one first)."""
    models = table["model"].unique(maintain_order=True).to_list()
    if len(models) != 1:
        raise ValueError(f"the {name} must hold exactly one model, found {models}; filter it first")
    return str(models[0])


def example_score_deltas(sweeps: pl.DataFrame) -> pl.DataFrame:
    """task, mode, seed, example, layer, head, delta: per single-head mask and example, its score
    minus the baseline score of the same seed, mode and example."""
    require_columns(sweeps, SWEEP_COLUMNS, "sweep predictions")
    if sweeps["score"].null_count():
        raise ValueError("the sweep predictions have null scores (written before the score column?)")
    base = sweeps.filter(pl.col("kind") == "baseline").select(*DELTA_KEYS, baseline_score="score")
    doubled = base.filter(pl.struct(DELTA_KEYS).is_duplicated())
    if doubled.height:
        first = doubled.row(0, named=True)
        raise ValueError(f"several baseline rows for {first}; filter the sweeps to one model first")
    heads = sweeps.filter(pl.col("kind") == "head").select(*DELTA_KEYS, "layer", "head", "score")
    joined = heads.join(base, on=DELTA_KEYS, how="left")
    orphans = joined.filter(pl.col("baseline_score").is_null())
    if orphans.height:
        first = orphans.row(0, named=True)
        raise ValueError(
            f"task {first['task']!r}, mode {first['mode']!r}, seed {first['seed']}: {orphans.height} "
            "head rows have no baseline row for their example"
        )
    return joined.select(*DELTA_KEYS, "layer", "head", delta=pl.col("score") - pl.col("baseline_score"))


def head_score_deltas(sweeps: pl.DataFrame) -> pl.DataFrame:
    """task, mode, seed, layer, head, delta, n_examples: each head's mean score delta per seed."""
    return (
        example_score_deltas(sweeps)
        .group_by("task", "mode", "seed", "layer", "head")
        .agg(pl.col("delta").mean(), n_examples=pl.len())
        .sort("task", "mode", "seed", "layer", "head")
    )


def seed_pair(deltas: pl.DataFrame, task: str, mode: str) -> tuple[int, int] | None:
    """The two smallest seeds of a task x mode in `head_score_deltas`; None with fewer."""
    seeds = sorted(deltas.filter((pl.col("task") == task) & (pl.col("mode") == mode))["seed"].unique())
    return (int(seeds[0]), int(seeds[1])) if len(seeds) >= 2 else None


def pair_deltas(deltas: pl.DataFrame, task: str, mode: str, a: int, b: int) -> pl.DataFrame:
    """layer, head, delta_a, delta_b: the heads' mean score deltas under seeds a and b."""
    rows = deltas.filter((pl.col("task") == task) & (pl.col("mode") == mode))

    def of(seed: int, name: str) -> pl.DataFrame:
        return rows.filter(pl.col("seed") == seed).select("layer", "head", pl.col("delta").alias(name))

    return of(a, "delta_a").join(of(b, "delta_b"), on=["layer", "head"]).sort("layer", "head")


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


def _statistic(
    replication: pl.DataFrame, task: str, mode: str, statistic: str, pair: tuple[int, int] | None = None
) -> dict[str, object] | None:
    """The pooled row of a statistic (or the row of one seed pair); None when absent."""
    rows = replication.filter(
        (pl.col("task") == task) & (pl.col("mode") == mode) & (pl.col("statistic") == statistic)
    )
    if pair is None:
        rows = rows.filter(pl.col("scope") == "pooled")
    else:
        rows = rows.filter(
            (pl.col("scope") == "pair") & (pl.col("seed_a") == pair[0]) & (pl.col("seed_b") == pair[1])
        )
    return rows.row(0, named=True) if rows.height else None


def _finite(value: object) -> bool:
    return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]


def _why_missing(row: dict[str, object] | None, n_seeds: int) -> str:
    """Why a statistic cannot be shown: no sweep, a single seed, its note, or its absence."""
    if n_seeds == 0:
        return "no sweep"
    if n_seeds == 1:
        return NEEDS_TWO_SEEDS
    if row is None:
        return "not in the replication table"
    return str(row["note"] or "undefined")


def statistic_text(name: str, row: dict[str, object] | None, n_seeds: int) -> str:
    """'name value [low, high]', or 'name: <why not>' for a NaN or absent row."""
    if row is not None and _finite(row["value"]):
        return f"{name} {row['value']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    return f"{name}: {_why_missing(row, n_seeds)}"


def _draw_scatter(ax: Axes, deltas: pl.DataFrame, replication: pl.DataFrame, task: str, mode: str) -> None:
    n_seeds = deltas.filter((pl.col("task") == task) & (pl.col("mode") == mode))["seed"].n_unique()
    pooled = _statistic(replication, task, mode, "spearman_delta")
    ax.set_title(f"{task} ({mode})\n{statistic_text('pooled ρ', pooled, n_seeds)}", fontsize=7.5)
    ax.tick_params(labelsize=7)
    pair = seed_pair(deltas, task, mode)
    if pair is None:
        reason = _why_missing(None, n_seeds)
        ax.text(0.5, 0.5, reason, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.3")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    a, b = pair
    joined = pair_deltas(deltas, task, mode, a, b)
    x, y = joined["delta_a"].to_numpy(), joined["delta_b"].to_numpy()  # (heads,) each
    ax.scatter(x, y, s=10, alpha=0.7, color="tab:blue", edgecolors="none", gid="heads")
    finite = np.concatenate([x[np.isfinite(x)], y[np.isfinite(y)]])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    ax.plot([lo, hi], [lo, hi], color="0.6", linewidth=0.8, zorder=0)
    ax.axhline(0, color="0.85", linewidth=0.6, zorder=0)
    ax.axvline(0, color="0.85", linewidth=0.6, zorder=0)
    ax.set_xlabel(f"mean Δ score, seed {a}", fontsize=8)
    ax.set_ylabel(f"mean Δ score, seed {b}", fontsize=8)
    details = []  # the optional statistics, then the counts
    for name, row, seeds in (
        (f"ρ seeds {a}/{b}", _statistic(replication, task, mode, "spearman_delta", pair), 2),
        ("r true", _statistic(replication, task, mode, "pearson_corrected"), n_seeds),
    ):
        if row is not None:
            details.append(statistic_text(name, row, seeds))
    details.append(f"{joined.height} heads, {n_seeds} seeds")
    ax.set_title(f"{ax.get_title()}\n" + "\n".join(details), fontsize=7.5)


def _draw_helps(
    ax: Axes, deltas: pl.DataFrame, replication: pl.DataFrame, tasks: list[str], mode: str
) -> None:
    """Per task, the pooled helps_replicated with its interval (dot) and the expected share (bar)."""
    shown, expected = [], []
    on_axes = blended_transform_factory(ax.transData, ax.transAxes)
    for x, task in enumerate(tasks):
        row = _statistic(replication, task, mode, "helps_replicated")
        n_seeds = deltas.filter((pl.col("task") == task) & (pl.col("mode") == mode))["seed"].n_unique()
        if row is not None and _finite(row["expected"]):
            expected.append((x, float(row["expected"])))  # type: ignore[arg-type]
        if row is None or not _finite(row["value"]):
            reason = _why_missing(row, n_seeds)
            ax.text(x, 0.5, reason, transform=on_axes, rotation=90, ha="center", va="center", fontsize=7)
            continue
        value = float(row["value"])  # type: ignore[arg-type]
        low = float(row["ci_low"]) if _finite(row["ci_low"]) else value  # type: ignore[arg-type]
        high = float(row["ci_high"]) if _finite(row["ci_high"]) else value  # type: ignore[arg-type]
        shown.append((x, value, value - low, high - value))
    if shown:
        xs, values, below, above = (np.array(c, dtype=float) for c in zip(*shown, strict=True))
        bars = ax.errorbar(
            xs, values, yerr=[below, above], fmt="o", color="tab:blue", capsize=3, markersize=5
        )
        bars.lines[0].set_gid("helps_replicated")
    if expected:
        ex, ey = zip(*expected, strict=True)
        ax.plot(ex, ey, linestyle="none", marker="_", markersize=18, color="black", gid="expected")
    ax.set_xticks(range(len(tasks)), tasks, fontsize=7, rotation=45, ha="right")
    ax.set_xlim(-0.6, len(tasks) - 0.4)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("helps replicated (pooled, 95% CI)", fontsize=8)
    ax.set_title(f"helping heads replicated ({mode})\n● observed   — expected", fontsize=8)
    ax.grid(axis="y", color="0.9", linewidth=0.5)


def plot_replication(
    sweeps: pl.DataFrame, replication: pl.DataFrame, out_pdf: Path, title: str | None = None
) -> Figure:
    """The figure (PDF and PNG); tasks and modes in the replication table's order."""
    require_columns(replication, REPLICATION_COLUMNS, "replication table")
    model = single_model(replication, "replication table")
    if single_model(sweeps, "sweep predictions") != model:
        raise ValueError(
            f"the sweeps are of model {sweeps['model'][0]!r}, the replication table of {model!r}"
        )
    drawn = replication.filter(pl.col("statistic").is_in(SWEEP_STATISTICS) & pl.col("mode").is_not_null())
    tasks = drawn["task"].unique(maintain_order=True).to_list()
    modes = drawn["mode"].unique(maintain_order=True).to_list()
    if not tasks:
        raise ValueError(f"the replication table has no rows of {list(SWEEP_STATISTICS)}")
    deltas = head_score_deltas(sweeps)
    figure = Figure(figsize=(2.9 * (len(tasks) + 1), 3.0 * len(modes) + 0.5), layout="constrained")
    axes = figure.subplots(len(modes), len(tasks) + 1, squeeze=False)
    for row, mode in enumerate(modes):
        for column, task in enumerate(tasks):
            _draw_scatter(axes[row, column], deltas, replication, task, mode)
        _draw_helps(axes[row, -1], deltas, replication, tasks, mode)
    figure.suptitle(
        title or f"{model}: per-head mean score deltas of two fine-tuning seeds (Spearman pooled over pairs)",
        fontsize=10,
    )
    save_figure(figure, out_pdf)
    return figure
