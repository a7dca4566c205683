"""The importance, pruning and replication claims (`headlab.analysis.importance_claims`) on hand-made
tables whose verdicts are known: intervals above, below and across the chance share or threshold,
NaN rows (one seed), and the prunable-share description; and their rows in the card."""

from __future__ import annotations

import math

import polars as pl
import pytest

from claim_helpers import claim_inputs
from headlab.analysis.claims import claims_table
from headlab.analysis.importance_claims import (
    disabling_replicates_claim,
    importance_agrees_claim,
    prunable_share_description,
)


def _replication(*rows: tuple[str, float, float, float, float]) -> pl.DataFrame:
    """Pooled helps_replicated rows (task, value, ci_low, ci_high, expected)."""
    return pl.DataFrame(
        [
            {
                "task": task,
                "statistic": "helps_replicated",
                "scope": "pooled",
                "value": value,
                "ci_low": low,
                "ci_high": high,
                "expected": expected,
                "n_selected": 3,
                "note": None if not math.isnan(value) else "needs two seeds",
            }
            for task, value, low, high, expected in rows
        ]
    )


@pytest.mark.parametrize(
    ("rows", "verdict"),
    [
        ([("MRPC", 0.9, 0.8, 1.0, 0.5), ("RTE", 0.8, 0.6, 0.95, 0.45)], "supported"),
        ([("MRPC", 0.9, 0.8, 1.0, 0.5), ("RTE", 0.2, 0.1, 0.3, 0.45)], "contradicted"),
        ([("MRPC", 0.6, 0.4, 0.8, 0.5)], "inconclusive"),
    ],
)
def test_replication_verdicts(rows, verdict: str) -> None:
    row = disabling_replicates_claim(_replication(*rows))
    assert row["verdict"] == verdict
    expected = sum(r[1] - r[4] for r in rows) / len(rows)
    assert row["estimate"] == pytest.approx(expected, rel=1e-12)


def test_replication_with_one_seed_is_not_run_and_says_why() -> None:
    row = disabling_replicates_claim(_replication(("MRPC", float("nan"), float("nan"), float("nan"), 0.5)))
    assert row["verdict"] == "not run" and "needs two seeds" in row["note"]
    assert disabling_replicates_claim(None)["verdict"] == "not run"


def test_a_task_with_no_selected_head_keeps_the_claim_from_support() -> None:
    table = _replication(("MRPC", 0.9, 0.8, 1.0, 0.5), ("RTE", float("nan"), float("nan"), float("nan"), 0.5))
    row = disabling_replicates_claim(table)
    assert row["verdict"] == "inconclusive" and "RTE" in row["note"]


def _agreement(*intervals: tuple[float, float]) -> pl.DataFrame:
    base = {
        "screen": "importance",
        "statistic": "spearman",
        "target": "score",
        "unit": "head",
        "scope": "pooled",
    }
    decoy = {**base, "screen": "attribution", "ci_low": -1.0, "ci_high": -0.9, "value": -0.95}
    rows = [
        {**base, "task": f"T{i}", "mode": "uniform", "value": (lo + hi) / 2, "ci_low": lo, "ci_high": hi}
        for i, (lo, hi) in enumerate(intervals)
    ]
    return pl.DataFrame([*rows, {**decoy, "task": "T0", "mode": "uniform"}])


def test_importance_agreement_verdicts_read_only_the_importance_screen() -> None:
    assert importance_agrees_claim(_agreement((0.6, 0.9), (0.55, 0.8)), 0.5)["verdict"] == "supported"
    assert importance_agrees_claim(_agreement((0.6, 0.9), (0.1, 0.3)), 0.5)["verdict"] == "contradicted"
    assert importance_agrees_claim(_agreement((0.3, 0.9)), 0.5)["verdict"] == "inconclusive"
    assert importance_agrees_claim(None, 0.5)["verdict"] == "not run"


def test_prunable_share_is_a_description_of_the_importance_order() -> None:
    table = pl.DataFrame(
        {
            "model": "m",
            "task": ["MRPC", "MRPC", "RTE"],
            "order": ["importance", "random", "importance"],
            "metric": "accuracy",
            "max_cost": 0.01,
            "share": [0.4, 0.1, 0.2],
            "share_conservative": [0.3, 0.0, 0.1],
            "n_heads": 72,
        }
    )
    row = prunable_share_description(table)
    assert row["verdict"] == "description"
    assert row["estimate"] == pytest.approx(0.3) and row["ci_low"] == pytest.approx(0.1)
    assert "MRPC 40 %" in row["ours"] and "random" not in row["ours"]


def test_the_card_has_the_three_rows_in_the_headlab_group() -> None:
    inputs = claim_inputs(
        replication=_replication(("MRPC", 0.9, 0.8, 1.0, 0.5)),
        screens=_agreement((0.6, 0.9)),
        tasks=["MRPC"],
    )
    card = claims_table(inputs).filter(
        pl.col("claim_id").is_in(["disabling_replicates", "importance_agrees_with_delta", "prunable_share"])
    )
    assert card["group"].to_list() == ["headlab"] * 3
    assert card["verdict"].to_list() == ["supported", "supported", "not run"]
