"""The importance grid and the pruning curves of issue 21 draw exactly their tables' numbers.

Synthetic tables with the issue-21 schemas; what each figure shows is read back from the Axes
(image arrays, line data, band polygons) and compared with means computed here by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.figure import Figure

from headlab.plots.importance import plot_importance
from headlab.plots.pruning import TOLERANCE, plot_pruning

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEEDS = (1, 2, 3)
# task -> (layers, heads); "B" first in the tables on purpose
SHAPES = {"B": (2, 5), "A": (3, 4)}
MISSING = ("A", 3, 2)  # (task, layer, head) without any importance row
RNG_SEED = 7


def assert_figure_files(pdf: Path) -> None:
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf.with_suffix(".png").read_bytes().startswith(PNG_SIGNATURE)
    assert not list(pdf.parent.glob(".*"))  # no temp files left


def importance_values() -> dict[tuple[str, int, int, int], float]:
    """(task, seed, layer, head) -> importance_normalized (random, so misplaced cells show)."""
    rng = np.random.default_rng(RNG_SEED)
    return {
        (task, seed, layer, head): float(rng.random())
        for task, (n_layers, n_heads) in SHAPES.items()
        for seed in SEEDS
        for layer in range(1, n_layers + 1)
        for head in range(1, n_heads + 1)
        if (task, layer, head) != MISSING
    }


def importance_table(values: dict[tuple[str, int, int, int], float]) -> pl.DataFrame:
    rows = [
        {
            "model": "tiny-bert",
            "task": task,
            "seed": seed,
            "split": "train",
            "layer": layer,
            "head": head,
            "importance": 10 * value,
            "importance_normalized": value,
            "n_examples": 16,
        }
        for (task, seed, layer, head), value in values.items()
    ]
    return pl.DataFrame(rows, schema_overrides={"layer": pl.Int32, "head": pl.Int32, "seed": pl.Int64})


def attribution_table() -> tuple[pl.DataFrame, dict[tuple[str, int, int], float]]:
    """uniform and zero estimates of 2 seeds x 3 examples; the expected uniform mean per head."""
    rng = np.random.default_rng(RNG_SEED + 1)
    rows, sums = [], {}
    for task, (n_layers, n_heads) in SHAPES.items():
        for mode in ("uniform", "zero"):
            for seed in SEEDS[:2]:
                for example in (10, 11, 12):
                    for layer in range(1, n_layers + 1):
                        for head in range(1, n_heads + 1):
                            estimate = float(rng.normal()) + (5.0 if mode == "zero" else 0.0)
                            rows.append((task, seed, mode, example, layer, head, estimate))
                            if mode == "uniform":
                                sums.setdefault((task, layer, head), []).append(estimate)
    table = pl.DataFrame(
        rows, schema=["task", "seed", "mode", "example", "layer", "head", "estimate"], orient="row"
    ).with_columns(
        model=pl.lit("tiny-bert"), layer=pl.col("layer").cast(pl.Int32), head=pl.col("head").cast(pl.Int32)
    )
    return table, {key: sum(v) / len(v) for key, v in sums.items()}


def grids(figure: Figure) -> dict[str, np.ma.MaskedArray]:
    """Panel title's first words -> its image array."""
    return {
        ax.get_title().split(" (")[0].split("\n")[0]: ax.images[0].get_array()
        for ax in figure.axes
        if ax.images
    }


def test_importance_grid_is_the_seed_mean_of_the_normalised_importance(tmp_path: Path) -> None:
    values = importance_values()
    pdf = tmp_path / "importance.pdf"
    figure = plot_importance(importance_table(values), pdf)
    assert_figure_files(pdf)
    caption = " ".join(figure.get_suptitle().split())  # wrapped to the figure's width
    assert caption.startswith("tiny-bert:") and "importance_normalized), mean over seeds" in caption
    shown = grids(figure)
    assert list(shown) == ["B: importance", "A: importance"]  # the table's task order
    for task, (n_layers, n_heads) in SHAPES.items():
        cells = shown[f"{task}: importance"]
        assert cells.shape == (n_layers, n_heads)  # rows = layers 1..L from the top, columns = heads
        for layer in range(1, n_layers + 1):
            for head in range(1, n_heads + 1):
                if (task, layer, head) == MISSING:
                    assert cells.mask[layer - 1, head - 1]
                    continue
                expected = sum(values[(task, s, layer, head)] for s in SEEDS) / len(SEEDS)
                assert cells[layer - 1, head - 1] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    ax = next(ax for ax in figure.axes if ax.get_title().startswith("A: importance"))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "2", "3"]
    bottom, top = ax.get_ylim()
    assert ax.images[0].origin == "upper" and bottom > top  # layer 1 on top, as in Figure 8
    assert "3 seeds" in ax.get_title()


def test_importance_second_row_is_the_uniform_attribution_mean(tmp_path: Path) -> None:
    attribution, expected = attribution_table()
    figure = plot_importance(importance_table(importance_values()), tmp_path / "imp.pdf", attribution)
    shown = grids(figure)
    assert set(shown) == {"B: importance", "A: importance", "B: attribution Δ score, uniform"} | {
        "A: attribution Δ score, uniform"
    }
    for task, (n_layers, n_heads) in SHAPES.items():
        cells = shown[f"{task}: attribution Δ score, uniform"]
        assert cells.shape == (n_layers, n_heads)
        for layer in range(1, n_layers + 1):
            for head in range(1, n_heads + 1):
                got = cells[layer - 1, head - 1]
                assert got == pytest.approx(expected[(task, layer, head)], rel=1e-12, abs=1e-12)
    panel = next(ax for ax in figure.axes if ax.get_title().startswith("A: attribution"))
    assert "2 seeds × 3 examples" in panel.get_title()
    limits = panel.images[0].norm
    assert limits.vmin == pytest.approx(-limits.vmax)  # centred on zero


def test_importance_refuses_two_splits_and_says_what_is_missing(tmp_path: Path) -> None:
    table = importance_table(importance_values())
    twice = pl.concat([table, table.with_columns(split=pl.lit("dev"))])
    with pytest.raises(ValueError, match=r"'B'.*splits.*one split"):
        plot_importance(twice, tmp_path / "bad.pdf")
    with pytest.raises(ValueError, match="importance_normalized"):
        plot_importance(table.drop("importance_normalized"), tmp_path / "bad.pdf")
    assert list(tmp_path.iterdir()) == []
    attribution, _ = attribution_table()
    only_zero = attribution.filter(pl.col("mode") == "zero")
    figure = plot_importance(table, tmp_path / "zero.pdf", only_zero)
    panel = next(ax for ax in figure.axes if ax.get_title().startswith("A: attribution"))
    assert panel.images[0].get_array().mask.all()
    assert "no uniform attribution" in [t.get_text() for t in panel.texts]


# ---------------------------------------------------------------------------------------------
# Pruning

STEPS = (0, 1, 2, 3)


def pruning_summary() -> pl.DataFrame:
    """Two tasks (B has two metrics), three orders; random has 4 draws; step 2 of delta in A has
    a NaN interval (one seed)."""
    rng = np.random.default_rng(RNG_SEED + 2)
    rows = []
    for task, metrics, n_heads in (("B", ("f1", "accuracy"), 10), ("A", ("accuracy",), 12)):
        for metric in metrics:
            baseline = float(rng.uniform(0.6, 0.9))
            for order in ("random", "importance", "delta"):  # not in plotting order on purpose
                for step in STEPS:
                    value = baseline if step == 0 else baseline - float(rng.uniform(0, 0.1)) * step
                    low, high = value - 0.02, value + 0.03
                    if (task, order, step) == ("A", "delta", 2):
                        low, high = float("nan"), float("nan")
                    rows.append(
                        {
                            "model": "tiny-bert",
                            "task": task,
                            "order": order,
                            "step": step,
                            "n_pruned": 3 * step,
                            "share_pruned": 3 * step / n_heads,
                            "metric": metric,
                            "value": value,
                            "ci_low": low,
                            "ci_high": high,
                            "seed_low": value - 0.01,
                            "seed_high": value + 0.01,
                            "baseline": baseline,
                            "n_seeds": 3,
                            "n_draws": 4 if order == "random" else 0,
                            "n_examples": 50,
                        }
                    )
    return pl.DataFrame(rows)


def test_pruning_lines_bands_and_tolerance_hold_the_summary(tmp_path: Path) -> None:
    summary = pruning_summary()
    pdf = tmp_path / "pruning.pdf"
    figure = plot_pruning(summary, pdf)
    assert_figure_files(pdf)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title().split(",")[0] for ax in panels] == ["B (F1)", "B (Acc)", "A (Acc)"]
    for ax, (task, metric) in zip(panels, [("B", "f1"), ("B", "accuracy"), ("A", "accuracy")], strict=True):
        assert ax.get_ylabel().startswith({"f1": "F1", "accuracy": "Acc"}[metric])
        lines = {line.get_gid(): line for line in ax.get_lines()}
        assert [g for g in lines if g.startswith("line-")] == ["line-importance", "line-delta", "line-random"]
        for order in ("importance", "delta", "random"):
            rows = summary.filter(
                (pl.col("task") == task) & (pl.col("metric") == metric) & (pl.col("order") == order)
            ).sort("step")
            line = lines[f"line-{order}"]
            np.testing.assert_allclose(line.get_xdata(), rows["share_pruned"], rtol=0, atol=1e-15)
            np.testing.assert_allclose(line.get_ydata(), rows["value"], rtol=0, atol=1e-15)
            (band,) = [c for c in ax.collections if c.get_gid() == f"band-{order}"]
            band_y = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
            for bound in ("ci_low", "ci_high"):
                finite = rows[bound].drop_nans().to_numpy()
                assert np.isclose(band_y[:, None], finite[None], rtol=0, atol=1e-12).any(axis=0).all()
        baseline = rows["baseline"][0]
        assert list(lines["tolerance"].get_ydata()) == pytest.approx([baseline - TOLERANCE] * 2, abs=1e-15)
        assert lines["tolerance"].get_linestyle() == "--"
        assert list(lines["baseline"].get_ydata()) == pytest.approx([baseline] * 2, abs=1e-15)
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "random (mean of 4 draws)" in legend and "delta (Kovaleva Δ, in-sample)" in legend


def test_pruning_picks_a_metric_and_names_bad_input(tmp_path: Path) -> None:
    summary = pruning_summary()
    figure = plot_pruning(summary, tmp_path / "one.pdf", metrics={"A": "accuracy", "B": "f1"})
    assert [ax.get_title().split(",")[0] for ax in figure.axes if ax.get_visible()] == ["B (F1)", "A (Acc)"]
    with pytest.raises(ValueError, match=r"'A'.*'f1'.*\['accuracy'\]"):
        plot_pruning(summary, tmp_path / "bad.pdf", metrics={"A": "f1", "B": "f1"})
    with pytest.raises(ValueError, match=r"'B'.*several rows per step"):
        plot_pruning(pl.concat([summary, summary]), tmp_path / "bad.pdf")
    with pytest.raises(ValueError, match="one model"):
        plot_pruning(pl.concat([summary, summary.with_columns(model=pl.lit("other"))]), tmp_path / "bad.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.pdf", "one.png"]
