"""The replication and attribution-agreement figures of issue 21 draw exactly their tables' numbers.

A synthetic sweep (per-example scores, known per-head effects) with the issue-21 schema; the
scatter offsets read back from the Axes equal the per-head means computed here by hand with
numpy, the titles carry the tables' pooled statistics, and NaN statistics are shown as text."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from headlab.plots.attribution import plot_attribution
from headlab.plots.replication import NEEDS_TWO_SEEDS, head_score_deltas, plot_replication

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_LAYERS, N_HEADS = 2, 3
EXAMPLES = (100, 101, 102, 103)
# (task, mode) -> seeds of the sweep; task B has a single seed, so nothing replicates there
SWEEP_SEEDS = {("A", "uniform"): (1, 2, 3), ("A", "zero"): (1, 2, 3), ("B", "uniform"): (5,)}
HEADS = [(layer, head) for layer in range(1, N_LAYERS + 1) for head in range(1, N_HEADS + 1)]
TOL = {"rtol": 1e-12, "atol": 1e-12}  # numpy.testing
APPROX = {"rel": 1e-12, "abs": 1e-12}  # pytest.approx, the same tolerances


def sweep_tables() -> tuple[pl.DataFrame, dict[tuple[str, str, int], np.ndarray]]:
    """Sweep predictions with scores, and per (task, mode, seed) the per-example score deltas as
    an array (layers, heads, examples), the reference the figures must reproduce."""
    rng = np.random.default_rng(11)
    rows, deltas = [], {}
    for (task, mode), seeds in SWEEP_SEEDS.items():
        effect = rng.normal(size=(N_LAYERS, N_HEADS))  # (layers, heads), shared by seeds
        for seed in seeds:
            base = -rng.random(len(EXAMPLES))  # (examples,)
            delta = effect[..., None] + 0.3 * rng.normal(size=(N_LAYERS, N_HEADS, len(EXAMPLES)))
            deltas[(task, mode, seed)] = delta  # (layers, heads, examples)
            masks = [("baseline", "baseline", None, None, base)]
            for layer in range(1, N_LAYERS + 1):
                masks.append((f"L{layer}", "layer", layer, None, base - 9.0))  # never a head's delta
                for head in range(1, N_HEADS + 1):
                    masks.append(
                        (f"L{layer}-H{head}", "head", layer, head, base + delta[layer - 1, head - 1])
                    )
            for mask, kind, layer, head, scores in masks:
                for example, score in zip(EXAMPLES, scores, strict=True):
                    rows.append((task, seed, mode, mask, kind, layer, head, example, 1.0, 0.0, score))
    columns = [
        "task",
        "seed",
        "mode",
        "mask",
        "kind",
        "layer",
        "head",
        "example",
        "prediction",
        "label",
        "score",
    ]
    table = pl.DataFrame(rows, schema=columns, orient="row").with_columns(
        model=pl.lit("tiny-bert"), layer=pl.col("layer").cast(pl.Int32), head=pl.col("head").cast(pl.Int32)
    )
    return table, deltas


def statistic(
    task: str,
    mode: str,
    name: str,
    scope: str,
    value: float,
    pair: tuple[int, int] | None = None,
    **extra: object,
) -> dict[str, object]:
    return {
        "model": "tiny-bert",
        "task": task,
        "mode": mode,
        "statistic": name,
        "scope": scope,
        "seed_a": pair[0] if pair else None,
        "seed_b": pair[1] if pair else None,
        "value": value,
        "ci_low": extra.get("ci_low", value - 0.1),
        "ci_high": extra.get("ci_high", value + 0.1),
        "expected": extra.get("expected", float("nan")),
        "n_selected": 3,
        "n_heads": N_LAYERS * N_HEADS,
        "n_examples": len(EXAMPLES),
        "note": extra.get("note", ""),
    }


def replication_table() -> pl.DataFrame:
    nan = float("nan")
    rows = [
        statistic("A", "uniform", "spearman_delta", "pooled", 0.61, ci_low=0.4, ci_high=0.8),
        statistic("A", "uniform", "spearman_delta", "pair", 0.55, (1, 2)),
        statistic("A", "uniform", "spearman_delta", "pair", 0.66, (1, 3)),
        statistic("A", "uniform", "helps_replicated", "pooled", 0.7, ci_low=0.5, ci_high=0.85, expected=0.4),
        statistic("A", "zero", "spearman_delta", "pooled", 0.3),
        statistic(
            "A", "zero", "helps_replicated", "pooled", nan, expected=0.5, note="no head helps in seed 1"
        ),
        statistic("B", "uniform", "spearman_delta", "pooled", nan, ci_low=nan, ci_high=nan),
        statistic("B", "uniform", "helps_replicated", "pooled", nan, ci_low=nan, ci_high=nan),
    ]
    return pl.DataFrame(rows, schema_overrides={"seed_a": pl.Int64, "seed_b": pl.Int64})


def panel(figure: Figure, title_start: str) -> Axes:
    (found,) = [ax for ax in figure.axes if ax.get_title().startswith(title_start)]
    return found


def heads_scatter(ax: Axes) -> np.ndarray:
    (points,) = [c for c in ax.collections if c.get_gid() == "heads"]
    return np.asarray(points.get_offsets())  # (heads, 2)


def texts(ax: Axes) -> str:
    return "\n".join(t.get_text() for t in ax.texts)


def test_head_score_deltas_are_the_per_seed_means() -> None:
    sweeps, deltas = sweep_tables()
    table = head_score_deltas(sweeps)
    assert table.height == sum(len(s) for s in SWEEP_SEEDS.values()) * len(HEADS)
    for row in table.iter_rows(named=True):
        expected = deltas[(row["task"], row["mode"], row["seed"])][row["layer"] - 1, row["head"] - 1].mean()
        assert row["delta"] == pytest.approx(expected, **APPROX)
        assert row["n_examples"] == len(EXAMPLES)
    with pytest.raises(ValueError, match=r"'A', mode 'zero', seed 2: 24 head rows have no baseline"):
        head_score_deltas(
            sweeps.filter(
                ~((pl.col("kind") == "baseline") & (pl.col("seed") == 2) & (pl.col("mode") == "zero"))
            )
        )
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['score'\]"):
        head_score_deltas(sweeps.drop("score"))


def test_replication_scatter_holds_the_first_two_seeds_and_the_pooled_spearman(tmp_path: Path) -> None:
    sweeps, deltas = sweep_tables()
    pdf = tmp_path / "replication.pdf"
    figure = plot_replication(sweeps, replication_table(), pdf)
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.with_suffix(".png").read_bytes().startswith(
        PNG_SIGNATURE
    )
    for mode in ("uniform", "zero"):
        ax = panel(figure, f"A ({mode})")
        expected = np.array(
            [[deltas[("A", mode, s)][layer - 1, h - 1].mean() for s in (1, 2)] for layer, h in HEADS]
        )
        np.testing.assert_allclose(heads_scatter(ax), expected, **TOL)
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("mean Δ score, seed 1", "mean Δ score, seed 2")
    uniform = panel(figure, "A (uniform)")
    assert "pooled ρ 0.61 [0.40, 0.80]" in uniform.get_title()
    assert "ρ seeds 1/2 0.55 [0.45, 0.65]" in uniform.get_title()
    assert "6 heads, 3 seeds" in uniform.get_title()
    assert "pooled ρ 0.30 [0.20, 0.40]" in panel(figure, "A (zero)").get_title()
    # one seed: no scatter, the reason instead, in the panel and its title
    single = panel(figure, "B (uniform)")
    assert not [c for c in single.collections if c.get_gid() == "heads"]
    assert NEEDS_TWO_SEEDS in texts(single) and f"pooled ρ: {NEEDS_TWO_SEEDS}" in single.get_title()
    assert "no sweep" in texts(panel(figure, "B (zero)"))


def test_replication_helps_panel_against_expected(tmp_path: Path) -> None:
    sweeps, _ = sweep_tables()
    figure = plot_replication(sweeps, replication_table(), tmp_path / "replication.pdf")
    uniform = panel(figure, "helping heads replicated (uniform)")
    (dots,) = [line for line in uniform.get_lines() if line.get_gid() == "helps_replicated"]
    assert (list(dots.get_xdata()), list(dots.get_ydata())) == ([0.0], [pytest.approx(0.7, **APPROX)])
    (interval,) = uniform.containers[0].lines[2]
    np.testing.assert_allclose(interval.get_segments()[0], [[0.0, 0.5], [0.0, 0.85]], **TOL)
    (expected,) = [line for line in uniform.get_lines() if line.get_gid() == "expected"]
    assert (list(expected.get_xdata()), list(expected.get_ydata())) == ([0], [pytest.approx(0.4, **APPROX)])
    assert NEEDS_TWO_SEEDS in texts(uniform)  # task B
    assert [t.get_text() for t in uniform.get_xticklabels()] == ["A", "B"]
    zero = panel(figure, "helping heads replicated (zero)")
    assert not [line for line in zero.get_lines() if line.get_gid() == "helps_replicated"]
    assert "no head helps in seed 1" in texts(zero)


def attribution_tables(deltas: dict[tuple[str, str, int], np.ndarray]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Estimates for seeds 1 and 2 of A (the sweep has 3) in three modes, seed 5 of B; the
    agreement table with decoys (importance screen, layer unit, seed scope)."""
    rng = np.random.default_rng(12)
    rows = []
    for task, mode, seeds in (
        ("A", "uniform", (1, 2)),
        ("A", "zero", (1, 2)),
        ("A", "mean", (1, 2)),
        ("B", "uniform", (5,)),
    ):
        for seed in seeds:
            for layer, head in HEADS:
                for example in EXAMPLES:
                    rows.append((task, seed, mode, example, layer, head, float(rng.normal())))
    attribution = pl.DataFrame(
        rows, schema=["task", "seed", "mode", "example", "layer", "head", "estimate"], orient="row"
    ).with_columns(
        model=pl.lit("tiny-bert"), layer=pl.col("layer").cast(pl.Int32), head=pl.col("head").cast(pl.Int32)
    )

    def agree(task: str, mode: str, statistic: str, value: float, **keys: object) -> dict[str, object]:
        row = {
            "model": "tiny-bert",
            "task": task,
            "screen": "attribution",
            "mode": mode,
            "unit": "head",
            "target": "score",
            "scope": "pooled",
            "seed": None,
            "statistic": statistic,
            "value": value,
            "ci_low": value - 0.05,
            "ci_high": value + 0.05,
            "k": 2,
            "n_units": 6,
            "n_examples": 4,
        }
        return row | keys

    agreement = pl.DataFrame(
        [
            agree("A", "uniform", "spearman", 0.8),
            agree("A", "uniform", "spearman", -0.9, screen="importance"),
            agree("A", "uniform", "spearman", -0.8, unit="layer"),
            agree("A", "uniform", "spearman", -0.7, scope="seed", seed=1),
            agree("A", "uniform", "pearson", 0.75),
            agree("A", "uniform", "top_k_overlap", 0.5),
            agree("A", "zero", "spearman", 0.2),
            agree("B", "uniform", "spearman", float("nan")),
        ],
        schema_overrides={"seed": pl.Int64},
    )
    return attribution, agreement


def test_attribution_scatter_is_estimate_against_exact_delta(tmp_path: Path) -> None:
    sweeps, deltas = sweep_tables()
    attribution, agreement = attribution_tables(deltas)
    pdf = tmp_path / "attribution.pdf"
    figure = plot_attribution(attribution, sweeps, agreement, pdf)
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.with_suffix(".png").read_bytes().startswith(
        PNG_SIGNATURE
    )
    for task, mode, seeds in (("A", "uniform", (1, 2)), ("A", "zero", (1, 2)), ("B", "uniform", (5,))):
        ax = panel(figure, f"{task} ({mode})")
        rows = attribution.filter((pl.col("task") == task) & (pl.col("mode") == mode))
        estimate = [
            rows.filter((pl.col("layer") == layer) & (pl.col("head") == h))["estimate"].mean()
            for layer, h in HEADS
        ]
        # the exact delta over the attribution's seeds only (seed 3 of A has no estimate)
        exact = [np.mean([deltas[(task, mode, s)][layer - 1, h - 1] for s in seeds]) for layer, h in HEADS]
        np.testing.assert_allclose(heads_scatter(ax), np.column_stack([estimate, exact]), **TOL)
        (diagonal,) = [line for line in ax.get_lines() if line.get_gid() == "diagonal"]
        assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())
        n_seeds = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}"
        assert f"{len(HEADS)} heads, {n_seeds} × {len(EXAMPLES)} examples" in ax.get_title()
    uniform = panel(figure, "A (uniform)")
    assert "pooled ρ 0.80 [0.75, 0.85]" in uniform.get_title()
    assert "pooled r 0.75 [0.70, 0.80]" in uniform.get_title()
    assert "top-2 overlap 0.50 [0.45, 0.55]" in uniform.get_title()
    assert "pooled ρ 0.20" in panel(figure, "A (zero)").get_title()
    assert "pooled ρ: undefined" in panel(figure, "B (uniform)").get_title()
    assert "no mean sweep" in texts(panel(figure, "A (mean)"))
    assert "no zero attribution" in texts(panel(figure, "B (zero)"))


def test_attribution_refuses_estimates_off_the_sweep(tmp_path: Path) -> None:
    sweeps, deltas = sweep_tables()
    attribution, agreement = attribution_tables(deltas)
    off = attribution.with_columns(
        example=pl.when((pl.col("task") == "A") & (pl.col("mode") == "zero") & (pl.col("example") == 100))
        .then(999)
        .otherwise(pl.col("example"))
    )
    with pytest.raises(ValueError, match=r"'A', mode 'zero': 12 attribution rows have no sweep row"):
        plot_attribution(off, sweeps, agreement, tmp_path / "bad.pdf")
    with pytest.raises(ValueError, match="model"):
        plot_attribution(
            attribution, sweeps.with_columns(model=pl.lit("other")), agreement, tmp_path / "bad.pdf"
        )
    with pytest.raises(ValueError, match="one model"):
        plot_replication(
            pl.concat([sweeps, sweeps.with_columns(model=pl.lit("x"))]),
            replication_table(),
            tmp_path / "bad.pdf",
        )
    assert list(tmp_path.iterdir()) == []
    assert math.isnan(replication_table().filter(pl.col("task") == "B")["value"][0])
