"""The disabling summary against hand computations."""

from __future__ import annotations

import math

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


def test_summary_matches_hand_computation():
    table = pl.DataFrame(
        rows("accuracy", 0.5, [0.52, 0.38, 0.55, 0.50], [0.45, 0.6]) + rows("f1", 0.6, [0.7], [0.5])
    )
    summary = {r["metric"]: r for r in summarise(table).iter_rows(named=True)}
    acc = summary["accuracy"]
    assert acc["n_heads"] == 4
    assert acc["mean_head_delta"] == pytest.approx((0.02 - 0.12 + 0.05 + 0.0) / 4)
    assert (acc["best_head"], acc["max_head_delta"]) == ("L1-H3", pytest.approx(0.05))
    assert (acc["worst_head"], acc["min_head_delta"]) == ("L1-H2", pytest.approx(-0.12))
    assert acc["n_heads_improving"] == 2
    assert (acc["best_layer"], acc["max_layer_delta"]) == ("L2", pytest.approx(0.1))
    assert acc["baseline_se"] == pytest.approx(math.sqrt(0.25 / 100))  # 0.05
    assert acc["n_heads_beyond_2se"] == 1  # |-0.12| > 2 se = 0.1; the others are within
    assert summary["f1"]["baseline_se"] is None
    assert summary["f1"]["n_heads_beyond_2se"] is None
