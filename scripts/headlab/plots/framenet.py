"""Figure 3 of the paper: heads whose attention follows FrameNet's target-core element links.

Reads two tables written by rule framenet_heads (`headlab.measure.relation_heads`):

* the head table: ``model, layer, head`` (1-based), ``score`` (max attention on a link,
  averaged), ``n_links``, ``n_sentences``, ``top`` (above the 99th percentile);
* the example table: the full attention maps of the shown heads for one sentence, one row per
  ``(layer, head, query, key)`` with ``query_token``/``key_token`` and roles ``target``,
  ``fe`` or ``other``.

Layout, as the paper's Figure 3: the layer x head heatmap of averaged scores in the middle
(top heads boxed in red, the two shown heads lettered a and b), the full attention maps of the
two shown heads left and right (target rows boxed in orange, link cells in green, target and FE
tokens coloured), under each map a zoom on the target rows with the weights printed, and the
example sentence with its annotation under the heatmap. Colours: "Blues", darker = higher.
Sizes come from the tables. PDF and a PNG beside it, each written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from headlab.heads import head_name
from headlab.plots.common import save_figure

HEAD_COLUMNS = ("model", "layer", "head", "score", "n_sentences", "top")
EXAMPLE_COLUMNS = ("layer", "head", "query", "key", "query_token", "query_role", "weight")
CMAP_NAME = "Blues"
TARGET_COLOUR = "tab:orange"
FE_COLOUR = "tab:green"
TOP_COLOUR = "tab:red"
LETTERS = "abcdefgh"


@dataclass(frozen=True)
class ExampleSentence:
    """The example table in array form."""

    tokens: list[str]
    roles: list[str]  # per word piece: "target", "fe" or "other"
    elements: list[str | None]  # per word piece: its core element's name (role "fe"), else None
    heads: list[tuple[int, int]]  # 1-based, in the table's order
    maps: np.ndarray  # (heads, query, key)
    text: str
    frame: str
    lu: str
    fe: str


def _require(table: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}")


def score_matrix(head_table: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Scores and top flags as (layers, heads) arrays: entry [layer-1, head-1]; NaN where missing."""
    _require(head_table, HEAD_COLUMNS, "head table")
    if head_table["model"].n_unique() != 1:
        raise ValueError("head table holds several models; filter it to one first")
    if head_table.select(pl.struct("layer", "head").is_duplicated().any()).item():
        raise ValueError("head table has several rows for one (layer, head)")
    n_layers, n_heads = int(head_table["layer"].max()), int(head_table["head"].max())
    scores = np.full((n_layers, n_heads), np.nan)
    top = np.zeros((n_layers, n_heads), dtype=bool)
    layers = head_table["layer"].to_numpy() - 1
    heads = head_table["head"].to_numpy() - 1
    scores[layers, heads] = head_table["score"].cast(pl.Float64).to_numpy()
    top[layers, heads] = head_table["top"].to_numpy()
    return scores, top


def example_sentence(example_maps: pl.DataFrame) -> ExampleSentence:
    """Tokens, roles and the (heads, query, key) maps of the example table."""
    _require(example_maps, EXAMPLE_COLUMNS, "example table")
    heads = list(example_maps.select("layer", "head").unique(maintain_order=True).iter_rows())
    first = example_maps.filter((pl.col("layer") == heads[0][0]) & (pl.col("head") == heads[0][1]))
    columns = ["query_token", "query_role", *(["query_fe"] if "query_fe" in first.columns else [])]
    per_query = first.group_by("query").agg(pl.col(columns).first()).sort("query")
    n = per_query.height
    maps = np.zeros((len(heads), n, n))  # (heads, query, key)
    for i, (layer, head) in enumerate(heads):
        rows = example_maps.filter((pl.col("layer") == layer) & (pl.col("head") == head))
        if rows.height != n * n:
            raise ValueError(
                f"example map {head_name(layer, head)} has {rows.height} cells, expected {n * n}"
            )
        maps[i, rows["query"].to_numpy(), rows["key"].to_numpy()] = rows["weight"].to_numpy()
    meta = {c: str(first[c][0]) if c in first.columns else "" for c in ("text", "frame", "lu", "fe")}
    return ExampleSentence(
        tokens=per_query["query_token"].to_list(),
        roles=per_query["query_role"].to_list(),
        elements=per_query["query_fe"].to_list() if "query_fe" in columns else [None] * n,
        heads=[(int(layer), int(head)) for layer, head in heads],
        maps=maps,
        **meta,
    )


def _box(ax: Axes, x0: float, y0: float, width: float, height: float, colour: str, lw: float = 1.6) -> None:
    ax.add_patch(
        Rectangle((x0, y0), width, height, fill=False, edgecolor=colour, linewidth=lw, clip_on=False)
    )


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    runs, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _colour_ticks(labels: list, roles: list[str]) -> None:
    for label, role in zip(labels, roles, strict=True):
        if role == "target":
            label.set_color(TARGET_COLOUR)
            label.set_fontweight("bold")
        elif role == "fe":
            label.set_color(FE_COLOUR)
            label.set_fontweight("bold")


def _draw_heatmap(
    figure: Figure, ax: Axes, scores: np.ndarray, top: np.ndarray, shown: list[tuple[int, int]]
) -> None:
    n_layers, n_heads = scores.shape
    image = ax.imshow(
        np.ma.masked_invalid(scores), cmap=colormaps[CMAP_NAME].with_extremes(bad="lightgrey"), aspect="equal"
    )
    ax.set_xticks(range(n_heads), [str(h) for h in range(1, n_heads + 1)], fontsize=7)
    ax.set_yticks(range(n_layers), [str(layer) for layer in range(1, n_layers + 1)], fontsize=7)
    ax.set_xlabel("head", fontsize=8)
    ax.set_ylabel("layer", fontsize=8)
    ax.tick_params(length=0)
    for layer, head in zip(*np.nonzero(top), strict=True):
        _box(ax, head - 0.5, layer - 0.5, 1.0, 1.0, TOP_COLOUR, lw=2.0)
    norm = image.norm
    for letter, (layer, head) in zip(LETTERS, shown, strict=False):
        dark = norm(scores[layer - 1, head - 1]) > 0.6
        ax.text(
            head - 1,
            layer - 1,
            letter,
            ha="center",
            va="center",
            fontsize=8,
            fontweight="bold",
            color="white" if dark else "black",
        )
    colorbar = figure.colorbar(image, ax=ax, fraction=0.05, pad=0.03)
    colorbar.ax.tick_params(labelsize=7)
    colorbar.set_label("mean max attention on a link", fontsize=7)


def _draw_map(ax: Axes, example: ExampleSentence, index: int, title: str) -> None:
    weights = example.maps[index]  # (query, key)
    n = len(example.tokens)
    ax.imshow(weights, cmap=CMAP_NAME, vmin=0.0, vmax=max(float(weights.max()), 1e-9), aspect="equal")
    ax.set_xticks(range(n), example.tokens, rotation=90, fontsize=6)
    ax.set_yticks(range(n), example.tokens, fontsize=6)
    ax.tick_params(length=0)
    ax.set_xlabel("attended token (key)", fontsize=7)
    ax.set_ylabel("processed token (query)", fontsize=7)
    _colour_ticks(ax.get_xticklabels(), example.roles)
    _colour_ticks(ax.get_yticklabels(), example.roles)
    ax.set_title(title, fontsize=8)
    target = _runs([r == "target" for r in example.roles])
    fe = _runs([r == "fe" for r in example.roles])
    for t0, t1 in target:
        _box(ax, -0.5, t0 - 0.5, n, t1 - t0, TARGET_COLOUR)
        for f0, f1 in fe:  # the link's cells, both directions
            _box(ax, f0 - 0.5, t0 - 0.5, f1 - f0, t1 - t0, FE_COLOUR, lw=1.2)
            _box(ax, t0 - 0.5, f0 - 0.5, t1 - t0, f1 - f0, FE_COLOUR, lw=1.2)


def _draw_zoom(ax: Axes, example: ExampleSentence, index: int) -> None:
    """The target rows of one map, weights printed in the cells."""
    rows = [i for i, role in enumerate(example.roles) if role == "target"]
    n = len(example.tokens)
    if not rows:
        ax.set_axis_off()
        return
    weights = example.maps[index][rows]  # (target pieces, key)
    vmax = max(float(example.maps[index].max()), 1e-9)
    ax.imshow(weights, cmap=CMAP_NAME, vmin=0.0, vmax=vmax, aspect="auto")
    for r in range(len(rows)):
        for k in range(n):
            value = weights[r, k]
            ax.text(
                k,
                r,
                f"{value:.2f}".lstrip("0") if value < 1 else "1",
                ha="center",
                va="center",
                fontsize=5.5,
                color="white" if value > 0.6 * vmax else "black",
            )
    ax.set_xticks(range(n), example.tokens, rotation=90, fontsize=6)
    ax.set_yticks(range(len(rows)), [example.tokens[r] for r in rows], fontsize=6)
    ax.tick_params(length=0)
    _colour_ticks(ax.get_xticklabels(), example.roles)
    _colour_ticks(ax.get_yticklabels(), ["target"] * len(rows))
    for f0, f1 in _runs([r == "fe" for r in example.roles]):
        _box(ax, f0 - 0.5, -0.5, f1 - f0, len(rows), FE_COLOUR, lw=1.2)
    ax.set_title("zoom: target row(s)", fontsize=7)


def _pieces_text(example: ExampleSentence, wanted: list[bool]) -> str:
    """The selected word pieces as words ("##" continuations glued back)."""
    words: list[str] = []
    for token, keep in zip(example.tokens, wanted, strict=True):
        if not keep:
            continue
        if token.startswith("##") and words:
            words[-1] += token[2:]
        else:
            words.append(token)
    return " ".join(words)


def _elements_text(example: ExampleSentence) -> str:
    """'Element = its words; ...' per core element, or the table's `fe` names when pieces are unnamed."""
    names = list(dict.fromkeys(e for e in example.elements if e is not None))
    if not names:
        return f"{example.fe}: {_pieces_text(example, [r == 'fe' for r in example.roles])}"
    parts = [f"{name} = {_pieces_text(example, [e == name for e in example.elements])}" for name in names]
    return "; ".join(parts)


def _draw_sentence(ax: Axes, example: ExampleSentence, n_sentences: int, percentile: float) -> None:
    ax.set_axis_off()
    target = _pieces_text(example, [r == "target" for r in example.roles])
    lines = [
        (f"“{example.text.strip()}”", "black", 9),
        (f"frame {example.frame}, lexical unit {example.lu}", "0.3", 7.5),
        (f"target: {target}", TARGET_COLOUR, 8),
        (f"core element(s): {_elements_text(example)}", FE_COLOUR, 8),
        (f"red boxes: heads above the {percentile:g}th percentile; {n_sentences} sentences", "0.3", 7),
    ]
    for i, (line, colour, size) in enumerate(lines):
        ax.text(0.5, 0.95 - 0.2 * i, line, ha="center", va="top", fontsize=size, color=colour, wrap=True)


def plot_figure3(
    head_table: pl.DataFrame,
    example_maps: pl.DataFrame,
    output_pdf: str | os.PathLike[str],
    title: str | None = None,
    percentile: float = 99.0,
) -> tuple[Path, Path]:
    """Figure 3: averaged link scores per head, and the example sentence's maps of the shown heads."""
    scores, top = score_matrix(head_table)
    example = example_sentence(example_maps)
    n_layers, n_heads = scores.shape
    n_maps = len(example.heads)
    if not 1 <= n_maps <= 2:
        raise ValueError(f"the example table holds {n_maps} heads; Figure 3 shows one or two")
    n_tokens = len(example.tokens)
    side = max(3.2, 0.2 * n_tokens + 1.2)
    middle = max(3.4, 0.27 * n_heads + 1.4)
    figure = Figure(figsize=(2 * side + middle, side + 1.9 + (0.4 if title else 0.0)), layout="constrained")
    grid = figure.add_gridspec(2, 3, width_ratios=[side, middle, side], height_ratios=[side, 1.5])
    heatmap_ax = figure.add_subplot(grid[0, 1])
    _draw_heatmap(figure, heatmap_ax, scores, top, example.heads)
    heatmap_ax.set_title(f"max attention on FrameNet links ({n_layers} x {n_heads} heads)", fontsize=8)
    for i, (layer, head) in enumerate(example.heads):
        column = 0 if i == 0 else 2
        flag = " (top)" if top[layer - 1, head - 1] else ""
        label = f"{LETTERS[i]}: layer {layer}, head {head}{flag}, mean {scores[layer - 1, head - 1]:.3f}"
        _draw_map(figure.add_subplot(grid[0, column]), example, i, label)
        _draw_zoom(figure.add_subplot(grid[1, column]), example, i)
    n_sentences = int(head_table["n_sentences"].max())
    _draw_sentence(figure.add_subplot(grid[1, 1]), example, n_sentences, percentile)
    if title:
        figure.suptitle(title, fontsize=10)
    return save_figure(figure, output_pdf)
