"""Figures 6 and 7 of the paper from the feature_attention tables; plotting never computes results.

Tables read (written by rule feature_attention, `headlab.analysis.feature_attention`):

* features: ``model, task, variant, feature, layer, head, value, n_examples`` (Sec. 4.4);
* cls_attention: ``model, task, variant, feature, layer, head, value, share, n_examples`` (the
  final layer's [CLS] query row);
* token_to_token: ``model, task, variant, relation, layer, head, value, n_examples, n_pairs,
  mean_distance`` (Sec. 4.5).

Figures:

* ``figure6``: the paper's Figure 6: per task (columns), layer x head heatmaps of the attention
  [SEP] (top) and [CLS] (bottom) receive, pre-trained above fine-tuned. One colour scale per
  token over every task and both variants, so SST-2's single [SEP] shows as the paper notes.
* ``figure6_features``: the companion for the linguistic features (rows) per task (columns):
  fine-tuned minus pre-trained, so heads that attend more to a feature after fine-tuning stand
  out (red), with one symmetric scale per feature; each panel names its example count and the
  largest fine-tuned value (the paper: negligible next to [CLS] and [SEP]).
* ``figure7``: top, the paper's Figure 7: per task, the final layer's [CLS] attention to each
  token category, the bar the mean over heads of the table's ``value`` (max over the category's
  pieces), pre-trained and fine-tuned side by side, a dot at the highest head; below, the
  token-to-token heatmaps (verb -> subject, pronoun -> noun), pre-trained and fine-tuned.

Panels follow `tasks`; sizes (layers, heads) come from the tables; missing cells are grey.
Colours: "Blues", darker = greater (the paper's convention); differences "RdBu_r".
PDF and a PNG beside it (`headlab.plots.common.save_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure, SubFigure
from matplotlib.image import AxesImage

from headlab.plots.common import save_figure

VARIANT_ORDER = ("pretrained", "finetuned")
VARIANT_LABELS = {"pretrained": "pre-trained", "finetuned": "fine-tuned"}
VARIANT_COLOURS = {"pretrained": "#9ecae1", "finetuned": "#08519c"}
FEATURE_LABELS = {
    "cls": "[CLS]",
    "sep": "[SEP]",
    "punctuation": "punct.",
    "noun": "nouns",
    "verb": "verbs",
    "pronoun": "pronouns",
    "subject": "subjects",
    "object": "objects",
    "negation": "negation",
}
# Order of the bars in Figure 7 and of the rows of figure6_features.
CATEGORY_ORDER = ("cls", "sep", "punctuation", "noun", "verb", "pronoun", "subject", "object", "negation")
LINGUISTIC_ORDER = ("noun", "verb", "pronoun", "subject", "object", "negation", "punctuation")
RELATION_LABELS = {"verb_subject": "verb → subject", "pronoun_noun": "pronoun → noun"}
CMAP_NAME = "Blues"
DIFF_CMAP_NAME = "RdBu_r"
PANEL = 1.9  # inches per heatmap panel

FEATURE_COLUMNS = ("task", "variant", "feature", "layer", "head", "value", "n_examples")
CLS_COLUMNS = ("task", "variant", "feature", "head", "value", "n_examples")
TOKEN_COLUMNS = ("task", "variant", "relation", "layer", "head", "value", "n_examples", "mean_distance")


# ---------------------------------------------------------------------------------------------
# Data helpers (tested directly)
# ---------------------------------------------------------------------------------------------


def _require(table: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} table lacks column(s) {missing}")


def _select(table: pl.DataFrame, task: str, variant: str, column: str, name: str) -> pl.DataFrame:
    rows = table.filter((pl.col("task") == task) & (pl.col("variant") == variant) & (pl.col(column) == name))
    if rows.height == 0:
        raise ValueError(f"task {task!r}, variant {variant!r}: no rows for {column} {name!r}")
    if rows.select("layer", "head").is_duplicated().any():
        raise ValueError(
            f"task {task!r}, variant {variant!r}, {name!r}: several rows per head; one model only"
        )
    return rows


def head_grid(table: pl.DataFrame, task: str, variant: str, name: str, column: str = "feature") -> np.ndarray:
    """(layers, heads) of `value` for one task, variant and feature (or relation); NaN where null.

    Sizes are the largest layer and head of the task's rows.
    """
    sizes = table.filter(pl.col("task") == task)
    if sizes.height == 0:
        raise ValueError(f"task {task!r}: no rows in the table")
    grid = np.full((int(sizes["layer"].max()), int(sizes["head"].max())), np.nan)  # (layers, heads)
    rows = _select(table, task, variant, column, name)
    values = rows["value"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    grid[rows["layer"].to_numpy() - 1, rows["head"].to_numpy() - 1] = values
    return grid


def example_count(table: pl.DataFrame, task: str, name: str, column: str = "feature") -> int:
    """n_examples of a task's feature (or relation) rows (the largest, should variants differ)."""
    rows = table.filter((pl.col("task") == task) & (pl.col(column) == name))
    return int(rows["n_examples"].max()) if rows.height else 0


def category_means(cls: pl.DataFrame, task: str, variant: str) -> dict[str, tuple[float, float]]:
    """Per category of the [CLS] table: (mean over heads, max over heads) of `value`; NaN if absent."""
    rows = cls.filter((pl.col("task") == task) & (pl.col("variant") == variant))
    if rows.height == 0:
        raise ValueError(f"task {task!r}, variant {variant!r}: no [CLS] attention rows")
    out = {}
    for feature in CATEGORY_ORDER:
        values = rows.filter(pl.col("feature") == feature)["value"].cast(pl.Float64).drop_nulls()
        out[feature] = (float(values.mean()), float(values.max())) if values.len() else (np.nan, np.nan)
    return out


def _check_tasks(table: pl.DataFrame, tasks: Sequence[str], what: str) -> list[str]:
    if not tasks:
        raise ValueError("no task to plot")
    present = set(table["task"].unique().to_list())
    missing = [t for t in tasks if t not in present]
    if missing:
        raise ValueError(f"{what} table has no rows for task(s) {missing}")
    return list(tasks)


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------


def _heatmap(ax: Axes, grid: np.ndarray, cmap: str, norm: Normalize) -> AxesImage:
    n_layers, n_heads = grid.shape
    image = ax.imshow(
        np.ma.masked_invalid(grid),
        cmap=colormaps[cmap].with_extremes(bad="lightgrey"),
        norm=norm,
        aspect="auto",
    )
    step = 1 if n_heads <= 12 else 2
    ax.set_xticks(range(0, n_heads, step), [str(h) for h in range(1, n_heads + 1, step)], fontsize=6)
    step = 1 if n_layers <= 12 else 2
    ax.set_yticks(range(0, n_layers, step), [str(h) for h in range(1, n_layers + 1, step)], fontsize=6)
    ax.tick_params(length=0, pad=1)
    return image


def _label_grid(axes: np.ndarray, tasks: Sequence[str], row_labels: Sequence[str]) -> None:
    """Task names over the first row, row labels left of the first column, axis names at the edges."""
    for ax, task in zip(axes[0], tasks, strict=True):
        ax.set_title(task, fontsize=9, fontweight="bold")
    for ax, label in zip(axes[:, 0], row_labels, strict=True):
        ax.set_ylabel(f"{label}\nlayer", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("head", fontsize=7)


def _finite_range(grids: Sequence[np.ndarray]) -> tuple[float, float]:
    values = np.concatenate([g[np.isfinite(g)] for g in grids]) if grids else np.array([])
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return lo, hi if hi > lo else lo + 1e-9


def _symmetric(grids: Sequence[np.ndarray]) -> TwoSlopeNorm:
    lo, hi = _finite_range(grids)
    bound = max(abs(lo), abs(hi), 1e-9)
    return TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)


def _figure(n_rows: int, n_columns: int, title: str | None, extra_height: float = 0.0) -> Figure:
    width = n_columns * PANEL + 1.6
    height = n_rows * PANEL * 0.9 + extra_height + (0.5 if title else 0.0)
    figure = Figure(figsize=(width, height), layout="constrained")
    if title:
        figure.suptitle(title, fontsize=11)
    return figure


def _title(label: str | None, what: str) -> str:
    return f"{label}: {what}" if label else what


def plot_figure6(
    features: pl.DataFrame, tasks: Sequence[str], output_pdf: str | os.PathLike[str], label: str | None = None
) -> None:
    """Figure 6: attention [SEP] and [CLS] receive, per task, pre-trained above fine-tuned.

    `label` (the model) starts the title.
    """
    _require(features, FEATURE_COLUMNS, "features")
    tasks = _check_tasks(features, tasks, "features")
    figure = _figure(4, len(tasks), _title(label, "attention received by [SEP] and [CLS]"))
    axes = figure.subplots(4, len(tasks), squeeze=False)  # (rows, tasks)
    labels = []
    for block, feature in enumerate(("sep", "cls")):
        grids = {(t, v): head_grid(features, t, v, feature) for t in tasks for v in VARIANT_ORDER}
        lo, hi = _finite_range(list(grids.values()))
        norm = Normalize(vmin=min(lo, 0.0), vmax=hi)
        image = None
        for offset, variant in enumerate(VARIANT_ORDER):
            row = 2 * block + offset
            labels.append(f"{FEATURE_LABELS[feature]} {VARIANT_LABELS[variant]}")
            for ax, task in zip(axes[row], tasks, strict=True):
                image = _heatmap(ax, grids[(task, variant)], CMAP_NAME, norm)
        assert image is not None
        colorbar = figure.colorbar(
            image, ax=list(axes[2 * block : 2 * block + 2].ravel()), shrink=0.9, pad=0.01
        )
        colorbar.ax.tick_params(labelsize=7)
        colorbar.set_label(f"attention to {FEATURE_LABELS[feature]} / length", fontsize=7)
    _label_grid(axes, tasks, labels)
    save_figure(figure, output_pdf)


def plot_figure6_features(
    features: pl.DataFrame, tasks: Sequence[str], output_pdf: str | os.PathLike[str], label: str | None = None
) -> None:
    """Companion of Figure 6: per linguistic feature and task, fine-tuned minus pre-trained per head.

    `label` (the model) starts the title.
    """
    _require(features, FEATURE_COLUMNS, "features")
    tasks = _check_tasks(features, tasks, "features")
    shown = [f for f in LINGUISTIC_ORDER if f in set(features["feature"].to_list())]
    if not shown:
        raise ValueError("the features table has no linguistic feature rows")
    what = "change of the attention received by linguistic features, fine-tuned − pre-trained"
    figure = _figure(len(shown), len(tasks), _title(label, what))
    axes = figure.subplots(len(shown), len(tasks), squeeze=False)  # (features, tasks)
    for row, feature in enumerate(shown):
        finetuned = {t: head_grid(features, t, "finetuned", feature) for t in tasks}
        deltas = {t: finetuned[t] - head_grid(features, t, "pretrained", feature) for t in tasks}
        norm = _symmetric(list(deltas.values()))
        image = None
        for ax, task in zip(axes[row], tasks, strict=True):
            image = _heatmap(ax, deltas[task], DIFF_CMAP_NAME, norm)
            peak = np.nanmax(finetuned[task]) if np.isfinite(finetuned[task]).any() else np.nan
            note = f"n={example_count(features, task, feature)} · fine-tuned max {peak:.3f}"
            ax.set_title(f"{task}\n{note}" if row == 0 else note, fontsize=8 if row == 0 else 6.5)
        assert image is not None
        colorbar = figure.colorbar(image, ax=list(axes[row]), shrink=0.9, pad=0.01, aspect=10)
        colorbar.ax.tick_params(labelsize=6)
        colorbar.set_label("Δ", fontsize=7)
    for ax, feature in zip(axes[:, 0], shown, strict=True):
        ax.set_ylabel(f"{FEATURE_LABELS[feature]}\nlayer", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("head", fontsize=7)
    save_figure(figure, output_pdf)


def _draw_bars(ax: Axes, cls: pl.DataFrame, task: str) -> None:
    x = np.arange(len(CATEGORY_ORDER))
    width = 0.4
    for i, variant in enumerate(VARIANT_ORDER):
        stats = category_means(cls, task, variant)
        means = np.array([stats[c][0] for c in CATEGORY_ORDER])
        peaks = np.array([stats[c][1] for c in CATEGORY_ORDER])
        position = x + (i - 0.5) * width
        ax.bar(
            position,
            np.nan_to_num(means),
            width,
            color=VARIANT_COLOURS[variant],
            label=VARIANT_LABELS[variant],
        )
        ax.scatter(position, peaks, s=6, color="black", zorder=3, label="highest head" if i else None)
    ax.set_xticks(x, [FEATURE_LABELS[c] for c in CATEGORY_ORDER], rotation=60, ha="right", fontsize=6.5)
    ax.tick_params(axis="y", labelsize=6.5)
    ax.set_title(task, fontsize=9, fontweight="bold")
    ax.grid(axis="y", color="0.9", linewidth=0.5)
    ax.set_axisbelow(True)


def plot_figure7(
    cls: pl.DataFrame,
    tokens: pl.DataFrame,
    tasks: Sequence[str],
    output_pdf: str | os.PathLike[str],
    label: str | None = None,
) -> None:
    """Figure 7: final-layer [CLS] attention per token category (bars) and token-to-token heatmaps.

    `label` (the model) starts the title.
    """
    _require(cls, CLS_COLUMNS, "cls_attention")
    _require(tokens, TOKEN_COLUMNS, "token_to_token")
    tasks = _check_tasks(cls, tasks, "cls_attention")
    _check_tasks(tokens, tasks, "token_to_token")
    relations = [r for r in RELATION_LABELS if r in set(tokens["relation"].to_list())]
    n_rows = 2 * len(relations)
    what = "[CLS] attention in the final layer (top), token-to-token attention (below)"
    figure = _figure(n_rows, len(tasks), _title(label, what), extra_height=2.4)
    top, bottom = figure.subfigures(2, 1, height_ratios=[2.4, max(n_rows, 1) * PANEL * 0.9])
    _bars_row(top, cls, tasks)
    if relations:
        _token_rows(bottom, tokens, tasks, relations)
    save_figure(figure, output_pdf)


def _bars_row(sub: SubFigure, cls: pl.DataFrame, tasks: Sequence[str]) -> None:
    axes = sub.subplots(1, len(tasks), squeeze=False, sharey=True)[0]  # (tasks,)
    for ax, task in zip(axes, tasks, strict=True):
        _draw_bars(ax, cls, task)
    values = cls["value"].cast(pl.Float64).drop_nulls()
    axes[0].set_ylim(0, 1.08 * max(float(values.max()) if values.len() else 0.0, 1e-6))  # shared by all
    layer = int(cls["layer"].max())
    axes[0].set_ylabel(f"[CLS] attention, layer {layer}\n(mean over heads)", fontsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    sub.legend(handles, labels, loc="outside upper right", ncols=3, fontsize=7, frameon=False)


def _token_rows(sub: SubFigure, tokens: pl.DataFrame, tasks: Sequence[str], relations: Sequence[str]) -> None:
    axes = sub.subplots(2 * len(relations), len(tasks), squeeze=False)  # (rows, tasks)
    labels = []
    for block, relation in enumerate(relations):
        grids = {(t, v): head_grid(tokens, t, v, relation, "relation") for t in tasks for v in VARIANT_ORDER}
        lo, hi = _finite_range(list(grids.values()))
        norm = Normalize(vmin=min(lo, 0.0), vmax=hi)
        image = None
        for offset, variant in enumerate(VARIANT_ORDER):
            row = 2 * block + offset
            labels.append(f"{RELATION_LABELS[relation]}\n{VARIANT_LABELS[variant]}")
            for ax, task in zip(axes[row], tasks, strict=True):
                image = _heatmap(ax, grids[(task, variant)], CMAP_NAME, norm)
                if offset == 0:
                    rows = tokens.filter((pl.col("task") == task) & (pl.col("relation") == relation))
                    distance = rows["mean_distance"].drop_nulls()
                    shown = f"{float(distance[0]):.1f}" if distance.len() else "–"
                    n = example_count(tokens, task, relation, "relation")
                    ax.set_title(f"{task} · n={n} · mean distance {shown}", fontsize=7)
        assert image is not None
        colorbar = sub.colorbar(image, ax=list(axes[2 * block : 2 * block + 2].ravel()), shrink=0.9, pad=0.01)
        colorbar.ax.tick_params(labelsize=6)
        colorbar.set_label("attention, query word → key word", fontsize=6.5)
    for ax, label in zip(axes[:, 0], labels, strict=True):
        ax.set_ylabel(f"{label}\nlayer", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("head", fontsize=7)
