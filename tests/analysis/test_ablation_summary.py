"""The disabling summary against hand computations: the deltas over heads and layers, and the
noise columns from the pooled sweep statistics (median standard error of a head's delta, number
of heads significant after Benjamini-Hochberg), null without statistics."""

from __future__ import annotations

import polars as pl
import pytest

from headlab.analysis.ablation_summary import summarise


def rows(metric: str, baseline: float, head_values: list[float], layer_values: list[float]) -> list[dict]:
    base = {
        "model": "m",
        "task": "T",
        "mode": "uniform",
        "metric": metric,
        "baseline": baseline,
        "n_examples": 100,
    }
    out = [{**base, "mask": "baseline", "kind": "baseline", "value": baseline, "delta": 0.0}]
    out += [
        {**base, "mask": f"L1-H{i + 1}", "kind": "head", "value": v, "delta": v - baseline}
        for i, v in enumerate(head_values)
    ]
    out += [
        {**base, "mask": f"L{i + 1}", "kind": "layer", "value": v, "delta": v - baseline}
        for i, v in enumerate(layer_values)
    ]
    return out


def sweep_table() -> pl.DataFrame:
    return pl.DataFrame(
        rows("accuracy", 0.5, [0.52, 0.38, 0.55, 0.50], [0.45, 0.6]) + rows("f1", 0.6, [0.7], [0.5])
    )


def statistics_rows(
    metric: str, head_se: list[float], head_significant: list[bool], scope: str = "pooled", kind: str = "head"
) -> list[dict]:
    """Sweep-statistics rows (the columns summarise reads) of the heads L1-H1, ... of one metric."""
    base = {"model": "m", "task": "T", "mode": "uniform", "metric": metric, "scope": scope}
    return [
        {**base, "kind": kind, "mask": f"L1-H{i + 1}", "se": se, "significant": sig}
        for i, (se, sig) in enumerate(zip(head_se, head_significant, strict=True))
    ]


def test_summary_matches_hand_computation():
    summary = {r["metric"]: r for r in summarise(sweep_table()).iter_rows(named=True)}
    acc = summary["accuracy"]
    assert acc["n_heads"] == 4
    assert acc["mean_head_delta"] == pytest.approx((0.02 - 0.12 + 0.05 + 0.0) / 4)
    assert (acc["best_head"], acc["max_head_delta"]) == ("L1-H3", pytest.approx(0.05))
    assert (acc["worst_head"], acc["min_head_delta"]) == ("L1-H2", pytest.approx(-0.12))
    assert acc["n_heads_improving"] == 2
    assert (acc["best_layer"], acc["max_layer_delta"]) == ("L2", pytest.approx(0.1))
    # baseline_se and n_heads_beyond_2se (a binomial error of one accuracy) are gone: the noise
    # columns now come from the sweep statistics, null without them
    assert "baseline_se" not in acc and "n_heads_beyond_2se" not in acc
    for metric in ("accuracy", "f1"):
        assert summary[metric]["median_head_se"] is None
        assert summary[metric]["n_heads_significant"] is None


def test_noise_columns_from_the_pooled_head_statistics():
    statistics = pl.DataFrame(
        statistics_rows("accuracy", [0.01, 0.03, 0.02, 0.05], [True, False, True, False])
        # rows that must not count: seed scope and layers (huge se, all significant)
        + statistics_rows("accuracy", [9.0, 9.0, 9.0, 9.0], [True] * 4, scope="seed")
        + statistics_rows("accuracy", [9.0, 9.0], [True, True], kind="layer")
        + statistics_rows("accuracy", [9.0], [True], kind="baseline")
    )
    summary = summarise(sweep_table(), statistics)
    assert summary.schema["median_head_se"] == pl.Float64
    assert summary.schema["n_heads_significant"] == pl.Int64
    by_metric = {r["metric"]: r for r in summary.iter_rows(named=True)}
    acc = by_metric["accuracy"]
    assert acc["median_head_se"] == pytest.approx(0.025)  # median of 0.01, 0.02, 0.03, 0.05
    assert acc["n_heads_significant"] == 2
    # f1 has no statistics rows: null, not 0
    assert by_metric["f1"]["median_head_se"] is None
    assert by_metric["f1"]["n_heads_significant"] is None
    # the deltas do not depend on the statistics
    assert summary.drop("median_head_se", "n_heads_significant").equals(
        summarise(sweep_table()).drop("median_head_se", "n_heads_significant")
    )


def test_odd_number_of_heads_and_no_significant_head():
    statistics = pl.DataFrame(
        statistics_rows("f1", [0.04], [False]) + statistics_rows("accuracy", [0.3, 0.1, 0.2], [False] * 3)
    )
    by_metric = {r["metric"]: r for r in summarise(sweep_table(), statistics).iter_rows(named=True)}
    assert by_metric["accuracy"]["median_head_se"] == pytest.approx(0.2)
    assert by_metric["accuracy"]["n_heads_significant"] == 0  # counted, none significant: 0, not null
    assert by_metric["f1"]["median_head_se"] == pytest.approx(0.04)
    assert by_metric["f1"]["n_heads_significant"] == 0
