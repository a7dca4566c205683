"""Figures 6 and 7 of the paper, drawn from what `headlab.analysis.feature_summary` computed.

Tables behind them (written by rule feature_attention, `headlab.measure.feature_attention`):

* features: ``model, task, condition, feature, layer, head, value, n_examples`` (Sec. 4.4);
* cls_attention: ``model, task, condition, feature, layer, head, value, share, n_examples`` (the
  final layer's [CLS] query row);
* token_to_token: ``model, task, condition, relation, layer, head, value, n_examples, n_pairs,
  mean_distance`` (Sec. 4.5).

Figures (each takes the analysis result it draws; plotting never computes results):

* ``figure6`` (`special_token_grids`): the paper's Figure 6: per task (columns), layer x head
  heatmaps of the attention [SEP] (top) and [CLS] (bottom) receive, pre-trained above
  fine-tuned. One colour scale per token over every task and both conditions, so SST-2's single
  [SEP] shows as the paper notes.
* ``figure6_features`` (`feature_changes`): the companion for the linguistic features (rows) per
  task (columns): fine-tuned minus pre-trained, so heads that attend more to a feature after
  fine-tuning stand out (red), with one symmetric scale per feature; each panel names its
  example count and the largest fine-tuned value (the paper: negligible next to [CLS] and [SEP]).
* ``figure7`` (`category_bars`, `relation_grids`): top, the paper's Figure 7: per task, the
  final layer's [CLS] attention to each token category, the bar the mean over heads of the
  table's ``value`` (max over the category's pieces), pre-trained and fine-tuned side by side, a
  dot at the highest head; below, the token-to-token heatmaps (verb -> subject, pronoun ->
  noun), pre-trained and fine-tuned.

Panels follow the tasks of the analysis result; sizes (layers, heads) come from the grids;
missing cells are grey. Colours: "Blues", darker = greater (the paper's convention); differences
"RdBu_r". PDF and a PNG beside it (`headlab.plots.common.save_figure`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure, SubFigure
from matplotlib.image import AxesImage

from headlab.analysis.feature_summary import CategoryBars, FeatureChanges, HeadGrids, RelationGrids
from headlab.conditions import FINETUNED, PRETRAINED
from headlab.plots.common import save_figure

CONDITION_LABELS = {PRETRAINED: "pre-trained", FINETUNED: "fine-tuned"}
CONDITION_COLOURS = {PRETRAINED: "#9ecae1", FINETUNED: "#08519c"}
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
RELATION_LABELS = {"verb_subject": "verb → subject", "pronoun_noun": "pronoun → noun"}
CMAP_NAME = "Blues"
DIFF_CMAP_NAME = "RdBu_r"
PANEL = 1.9  # inches per heatmap panel


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


def plot_figure6(grids: HeadGrids, output_pdf: str | os.PathLike[str], label: str | None = None) -> None:
    """Figure 6: attention [SEP] and [CLS] receive, per task, pre-trained above fine-tuned
    (`headlab.analysis.feature_summary.special_token_grids`).

    `label` (the model) starts the title.
    """
    tasks, per = grids.tasks, len(grids.conditions)  # per feature: a row per condition
    n_rows = len(grids.names) * per
    figure = _figure(n_rows, len(tasks), _title(label, "attention received by [SEP] and [CLS]"))
    axes = figure.subplots(n_rows, len(tasks), squeeze=False)  # (rows, tasks)
    labels = []
    for block, feature in enumerate(grids.names):
        shown = [grids.grids[(feature, t, c)] for t in tasks for c in grids.conditions]
        lo, hi = _finite_range(shown)
        norm = Normalize(vmin=min(lo, 0.0), vmax=hi)
        image = None
        for offset, condition in enumerate(grids.conditions):
            row = per * block + offset
            labels.append(f"{FEATURE_LABELS[feature]} {CONDITION_LABELS[condition]}")
            for ax, task in zip(axes[row], tasks, strict=True):
                image = _heatmap(ax, grids.grids[(feature, task, condition)], CMAP_NAME, norm)
        assert image is not None
        colorbar = figure.colorbar(
            image, ax=list(axes[per * block : per * (block + 1)].ravel()), shrink=0.9, pad=0.01
        )
        colorbar.ax.tick_params(labelsize=7)
        colorbar.set_label(f"attention to {FEATURE_LABELS[feature]} / length", fontsize=7)
    _label_grid(axes, tasks, labels)
    save_figure(figure, output_pdf)


def plot_figure6_features(
    changes: FeatureChanges, output_pdf: str | os.PathLike[str], label: str | None = None
) -> None:
    """Companion of Figure 6: per linguistic feature and task, fine-tuned minus pre-trained per head
    (`headlab.analysis.feature_summary.feature_changes`).

    `label` (the model) starts the title.
    """
    tasks, shown = changes.tasks, changes.names
    what = "change of the attention received by linguistic features, fine-tuned − pre-trained"
    figure = _figure(len(shown), len(tasks), _title(label, what))
    axes = figure.subplots(len(shown), len(tasks), squeeze=False)  # (features, tasks)
    for row, feature in enumerate(shown):
        norm = _symmetric([changes.deltas[(feature, t)] for t in tasks])
        image = None
        for ax, task in zip(axes[row], tasks, strict=True):
            image = _heatmap(ax, changes.deltas[(feature, task)], DIFF_CMAP_NAME, norm)
            peak = changes.peaks[(feature, task)]
            note = f"n={changes.counts[(feature, task)]} · fine-tuned max {peak:.3f}"
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


def _draw_bars(ax: Axes, bars: CategoryBars, index: int) -> None:
    x = np.arange(len(bars.categories))
    width = 0.4
    for i, condition in enumerate(bars.conditions):
        position = x + (i - 0.5) * width
        ax.bar(
            position,
            np.nan_to_num(bars.means[index, i]),
            width,
            color=CONDITION_COLOURS[condition],
            label=CONDITION_LABELS[condition],
        )
        ax.scatter(
            position, bars.peaks[index, i], s=6, color="black", zorder=3, label="highest head" if i else None
        )
    ax.set_xticks(x, [FEATURE_LABELS[c] for c in bars.categories], rotation=60, ha="right", fontsize=6.5)
    ax.tick_params(axis="y", labelsize=6.5)
    ax.set_title(bars.tasks[index], fontsize=9, fontweight="bold")
    ax.grid(axis="y", color="0.9", linewidth=0.5)
    ax.set_axisbelow(True)


def plot_figure7(
    bars: CategoryBars,
    relations: RelationGrids,
    output_pdf: str | os.PathLike[str],
    label: str | None = None,
) -> None:
    """Figure 7: final-layer [CLS] attention per token category (bars) and token-to-token heatmaps
    (`headlab.analysis.feature_summary.category_bars` and `relation_grids` of the same tasks).

    `label` (the model) starts the title.
    """
    if bars.tasks != relations.tasks:
        raise ValueError(f"the bars are of tasks {bars.tasks}, the token maps of {relations.tasks}")
    n_rows = len(relations.conditions) * len(relations.names)  # per relation: a row per condition
    what = "[CLS] attention in the final layer (top), token-to-token attention (below)"
    figure = _figure(n_rows, len(bars.tasks), _title(label, what), extra_height=2.4)
    top, bottom = figure.subfigures(2, 1, height_ratios=[2.4, max(n_rows, 1) * PANEL * 0.9])
    _bars_row(top, bars)
    if relations.names:
        _token_rows(bottom, relations)
    save_figure(figure, output_pdf)


def _bars_row(sub: SubFigure, bars: CategoryBars) -> None:
    axes = sub.subplots(1, len(bars.tasks), squeeze=False, sharey=True)[0]  # (tasks,)
    for index, ax in enumerate(axes):
        _draw_bars(ax, bars, index)
    axes[0].set_ylim(0, 1.08 * max(bars.highest, 1e-6))  # shared by all
    axes[0].set_ylabel(f"[CLS] attention, layer {bars.layer}\n(mean over heads)", fontsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    sub.legend(handles, labels, loc="outside upper right", ncols=3, fontsize=7, frameon=False)


def _token_rows(sub: SubFigure, relations: RelationGrids) -> None:
    tasks, per = relations.tasks, len(relations.conditions)
    axes = sub.subplots(per * len(relations.names), len(tasks), squeeze=False)  # (rows, tasks)
    labels = []
    for block, relation in enumerate(relations.names):
        lo, hi = _finite_range(
            [relations.grids[(relation, t, c)] for t in tasks for c in relations.conditions]
        )
        norm = Normalize(vmin=min(lo, 0.0), vmax=hi)
        image = None
        for offset, condition in enumerate(relations.conditions):
            row = per * block + offset
            labels.append(f"{RELATION_LABELS[relation]}\n{CONDITION_LABELS[condition]}")
            for ax, task in zip(axes[row], tasks, strict=True):
                image = _heatmap(ax, relations.grids[(relation, task, condition)], CMAP_NAME, norm)
                if offset == 0:
                    distance = relations.distances[(relation, task)]
                    shown = f"{distance:.1f}" if distance is not None else "–"
                    n = relations.counts[(relation, task)]
                    ax.set_title(f"{task} · n={n} · mean distance {shown}", fontsize=7)
        assert image is not None
        colorbar = sub.colorbar(
            image, ax=list(axes[per * block : per * (block + 1)].ravel()), shrink=0.9, pad=0.01
        )
        colorbar.ax.tick_params(labelsize=6)
        colorbar.set_label("attention, query word → key word", fontsize=6.5)
    for ax, label in zip(axes[:, 0], labels, strict=True):
        ax.set_ylabel(f"{label}\nlayer", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("head", fontsize=7)
