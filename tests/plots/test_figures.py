"""Figures 8 and 9: the data helpers put each score in its place; files are valid and atomic.

The mean delta over heads that Figure 8 prints is computed in `headlab.analysis.ablation_summary`
(tested against hand sums in tests/analysis/test_mean_head_deltas.py) and handed to the figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from headlab.analysis.ablation_summary import mean_head_deltas
from headlab.plots.ablation import BASELINE_COLOUR, plot_head_ablation, plot_layer_ablation
from headlab.plots.ablation_data import (
    baseline_value,
    head_matrix,
    layer_count,
    layer_series,
    task_order,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# task -> (layers, heads, baseline per metric); "B" comes first in the table on purpose.
TASKS = {"B": (2, 5, {"f1": 0.80, "accuracy": 0.75}), "A": (3, 4, {"accuracy": 0.60})}
MISSING_HEAD = ("A", 2, 3)  # (task, layer, head) with no row
MISSING_LAYER = ("B", 2)
METRIC_BY_TASK = {"A": "accuracy", "B": "f1"}


def head_score(baseline: float, layer: int, head: int) -> float:
    """A value that encodes its position, so misplaced cells are caught."""
    return baseline + 0.01 * layer - 0.001 * head


def layer_score(baseline: float, layer: int) -> float:
    return baseline - 0.02 * layer


def row(task: str, metric: str, base: float, kind: str, layer: int | None, head: int | None, value: float):
    return {
        "model": "tiny-bert",
        "task": task,
        "mode": "uniform",
        "mask": f"{kind}-{layer}-{head}",
        "kind": kind,
        "layer": layer,
        "head": head,
        "metric": metric,
        "value": value,
        "baseline": base,
        "delta": value - base,
        "n_examples": 100,
    }


def task_rows(task: str) -> list[dict[str, object]]:
    n_layers, n_heads, baselines = TASKS[task]
    rows = []
    for metric, base in baselines.items():
        rows.append(row(task, metric, base, "baseline", None, None, base))
        rows.append(row(task, metric, base, "named", None, None, base - 0.05))
        for layer in range(1, n_layers + 1):
            if (task, layer) != MISSING_LAYER:
                rows.append(row(task, metric, base, "layer", layer, None, layer_score(base, layer)))
            for head in range(1, n_heads + 1):
                if (task, layer, head) != MISSING_HEAD:
                    rows.append(row(task, metric, base, "head", layer, head, head_score(base, layer, head)))
    return rows


@pytest.fixture
def table() -> pl.DataFrame:
    rows = [r for task in TASKS for r in task_rows(task)]
    return pl.DataFrame(rows, schema_overrides={"layer": pl.Int32, "head": pl.Int32, "n_examples": pl.Int64})


def test_head_matrix_places_every_score(table: pl.DataFrame) -> None:
    for task, (n_layers, n_heads, baselines) in TASKS.items():
        for metric, base in baselines.items():
            matrix = head_matrix(table, task, metric)
            assert matrix.shape == (n_layers, n_heads)
            for layer in range(1, n_layers + 1):
                for head in range(1, n_heads + 1):
                    got = matrix[layer - 1, head - 1]
                    if (task, layer, head) == MISSING_HEAD:
                        assert np.isnan(got)
                    else:
                        assert got == pytest.approx(head_score(base, layer, head))
    assert np.isnan(head_matrix(table, "A", "accuracy")).sum() == 1


def test_head_matrix_sizes_come_from_the_task(table: pl.DataFrame) -> None:
    # The last row of a 3x4 task is missing for this metric only: the shape stays (3, 4).
    trimmed = table.filter(~((pl.col("task") == "B") & (pl.col("metric") == "f1") & (pl.col("layer") == 2)))
    matrix = head_matrix(trimmed, "B", "f1")
    assert matrix.shape == (2, 5)
    assert np.isnan(matrix[1]).all()


def test_layer_series(table: pl.DataFrame) -> None:
    series = layer_series(table, "A", "accuracy")
    np.testing.assert_allclose(series, [layer_score(0.60, layer) for layer in (1, 2, 3)])
    series_b = layer_series(table, "B", "accuracy")
    assert series_b.shape == (2,)
    assert series_b[0] == pytest.approx(layer_score(0.75, 1))
    assert np.isnan(series_b[1])


def test_layer_count_spans_both_kinds(table: pl.DataFrame) -> None:
    no_layer_3 = table.filter(~((pl.col("kind") == "layer") & (pl.col("layer") == 3)))
    series = layer_series(no_layer_3, "A", "accuracy")
    assert series.shape == (3,)  # layer 3 is known from the head rows
    assert np.isnan(series[2])
    heads_of_layer_1 = table.filter((pl.col("kind") != "head") | (pl.col("layer") == 1))
    matrix = head_matrix(heads_of_layer_1, "A", "accuracy")
    assert matrix.shape == (3, 4)  # layers 2 and 3 are known from the layer rows
    assert np.isnan(matrix[1:]).all()


def test_baseline_and_order(table: pl.DataFrame) -> None:
    assert task_order(table) == ["B", "A"]
    assert (layer_count(table, "A"), layer_count(table, "B")) == (3, 2)
    assert baseline_value(table, "B", "f1") == pytest.approx(0.80)
    assert baseline_value(table, "B", "accuracy") == pytest.approx(0.75)


def test_helpers_reject_bad_input(table: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"'A'.*metric 'f1'"):
        head_matrix(table, "A", "f1")
    with pytest.raises(ValueError, match=r"'A'.*no head"):
        head_matrix(table.filter(pl.col("kind") != "head"), "A", "accuracy")
    with pytest.raises(ValueError, match=r"'B'.*no layer"):
        layer_series(table.filter(pl.col("kind") != "layer"), "B", "f1")
    other_mode = table.with_columns(pl.lit("zero").alias("mode"))
    with pytest.raises(ValueError, match="several rows"):
        head_matrix(pl.concat([table, other_mode]), "A", "accuracy")
    with pytest.raises(ValueError, match="one baseline"):
        baseline_value(table.with_columns(baseline=pl.col("value")), "A", "accuracy")


def assert_figure_files(pdf: Path) -> None:
    png = pdf.with_suffix(".png")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in pdf.parent.iterdir()) == sorted([pdf.name, png.name])  # no temp files


def plot_heads(table: pl.DataFrame, pdf: Path, title: str | None = None) -> Figure:
    """Figure 8 as the job draws it: the mean deltas from the analysis, then the plot."""
    return plot_head_ablation(table, METRIC_BY_TASK, mean_head_deltas(table, METRIC_BY_TASK), pdf, title)


def test_plot_head_ablation_writes_pdf_and_png(table: pl.DataFrame, tmp_path: Path) -> None:
    pdf = tmp_path / "figs" / "figure8.pdf"
    plot_heads(table, pdf, title="tiny-bert")
    assert_figure_files(pdf)


def test_plot_layer_ablation_writes_pdf_and_png(table: pl.DataFrame, tmp_path: Path) -> None:
    pdf = tmp_path / "figure9.pdf"
    plot_layer_ablation(table, METRIC_BY_TASK, pdf)
    assert_figure_files(pdf)


def test_plots_name_the_task_on_errors(table: pl.DataFrame, tmp_path: Path) -> None:
    pdf = tmp_path / "figure.pdf"
    deltas = {"A": 0.0, "B": 0.0}  # what the panels print; the errors come from the table
    with pytest.raises(ValueError, match=r"'A'.*spearman"):
        plot_head_ablation(table, {"A": "spearman", "B": "f1"}, deltas, pdf)
    with pytest.raises(ValueError, match=r"'B'.*no metric"):
        plot_layer_ablation(table, {"A": "accuracy"}, pdf)
    with pytest.raises(ValueError, match=r"'B'.*no head"):
        plot_head_ablation(table.filter(pl.col("kind") != "head"), METRIC_BY_TASK, deltas, pdf)
    with pytest.raises(ValueError, match=r"mean delta.*\['A'\]"):
        plot_head_ablation(table, METRIC_BY_TASK, {"B": 0.0}, pdf)
    with pytest.raises(ValueError, match=r"'B'.*no layer"):
        plot_layer_ablation(table.filter(pl.col("kind") != "layer"), METRIC_BY_TASK, pdf)
    with pytest.raises(ValueError, match="empty"):
        plot_layer_ablation(table.head(0), METRIC_BY_TASK, pdf)
    assert list(tmp_path.iterdir()) == []


def test_failed_save_leaves_nothing_behind(
    table: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Figure.savefig

    def failing_png(self: Figure, fname: object, *args: object, **kwargs: object) -> None:
        if kwargs.get("format") == "png":
            raise OSError("disk full")
        original(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", failing_png)
    with pytest.raises(OSError, match="disk full"):
        plot_heads(table, tmp_path / "figure8.pdf")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# What the figures show, read back from the matplotlib objects the plotting functions return


def is_baseline_colour(colour: object) -> bool:
    return to_rgba(colour) == to_rgba(BASELINE_COLOUR)


def rows_of(table: pl.DataFrame, task: str, kind: str, metric: str) -> list[dict[str, object]]:
    return table.filter(
        (pl.col("task") == task) & (pl.col("kind") == kind) & (pl.col("metric") == metric)
    ).to_dicts()


def test_figure8_cells_hold_the_table_values_and_the_baseline_is_marked_at_it(
    table: pl.DataFrame, tmp_path: Path
) -> None:
    figure = plot_heads(table, tmp_path / "figure8.pdf", title="tiny-bert")
    assert isinstance(figure, Figure)
    assert figure.get_suptitle() == "tiny-bert"
    panels = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in panels] == ["B (F1)", "A (Acc)"]  # the table's task order
    for ax, task in zip(panels, ["B", "A"], strict=True):
        metric = METRIC_BY_TASK[task]
        n_layers, n_heads, baselines = TASKS[task]
        baseline = baselines[metric]
        (image,) = ax.images
        cells = image.get_array()
        assert cells.shape == (n_layers, n_heads), task
        # Every head row of the table is drawn in its cell (row = layer, column = head) ...
        head_rows = rows_of(table, task, "head", metric)
        for row in head_rows:
            assert not cells.mask[row["layer"] - 1, row["head"] - 1], (task, row)
            assert cells[row["layer"] - 1, row["head"] - 1] == row["value"], (task, row)
        # ... and the cell of a head without a row is left out (drawn grey), nothing else is.
        assert int(cells.mask.sum()) == n_layers * n_heads - len(head_rows)
        if task == MISSING_HEAD[0]:
            assert cells.mask[MISSING_HEAD[1] - 1, MISSING_HEAD[2] - 1]
        assert [t.get_text() for t in ax.get_yticklabels()] == [str(i) for i in range(1, n_layers + 1)]
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(i) for i in range(1, n_heads + 1)]
        # The baseline: an orange line across the colour bar at its value, labelled with it, inside
        # the colour range, which covers every cell.
        colorbar_axes = image.colorbar.ax
        marks = [line for line in colorbar_axes.get_lines() if is_baseline_colour(line.get_color())]
        assert len(marks) == 1, task
        assert list(marks[0].get_ydata()) == [baseline, baseline], task
        assert f"{baseline:.3f}" in [t.get_text() for t in colorbar_axes.texts], task
        values = [row["value"] for row in head_rows]
        assert image.norm.vmin < min(*values, baseline) and max(*values, baseline) < image.norm.vmax
        # The mean change printed under the panel (mean_head_deltas, handed to the plot) is the
        # mean of the table's delta over its heads.
        mean_delta = sum(row["delta"] for row in head_rows) / len(head_rows)
        assert f"mean Δ over heads: {mean_delta:+.3f}" in [t.get_text() for t in ax.texts], task


def test_figure9_points_hold_the_table_values_and_the_baseline_line_is_at_it(
    table: pl.DataFrame, tmp_path: Path
) -> None:
    figure = plot_layer_ablation(table, METRIC_BY_TASK, tmp_path / "figure9.pdf")
    panels = [ax for ax in figure.axes if ax.collections]
    assert [ax.get_title() for ax in panels] == ["B (F1)", "A (Acc)"]
    for ax, task in zip(panels, ["B", "A"], strict=True):
        metric = METRIC_BY_TASK[task]
        baseline = TASKS[task][2][metric]
        layer_rows = rows_of(table, task, "layer", metric)
        points = [c for c in ax.collections if len(c.get_offsets()) and c.get_offsets().shape[1] == 2]
        points = [c for c in points if type(c).__name__ == "PathCollection"]
        assert len(points) == 1, task
        drawn = {float(x): float(y) for x, y in points[0].get_offsets()}
        assert drawn == {float(row["layer"]): row["value"] for row in layer_rows}, (
            task
        )  # MISSING_LAYER: no point
        marks = [line for line in ax.get_lines() if is_baseline_colour(line.get_color())]
        assert len(marks) == 1 and list(marks[0].get_ydata()) == [baseline, baseline], task
        assert f" {baseline:.3f}" in [t.get_text() for t in ax.texts], task
