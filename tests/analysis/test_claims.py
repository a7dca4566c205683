"""The claims table: one row per claim whatever is in the run; the verdict rule on hand-made
intervals; the Table 1 claims on synthetic predictions whose answer is known (a condition that is
right on every example where the other is wrong: supported; identical ones: inconclusive); a
claim whose inputs are missing is `not run` with the reason; the Markdown has a row per claim."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from headlab.analysis.claim_rules import VERDICTS, Unit, interval_verdict
from headlab.analysis.claims import CLAIM_IDS, CLAIMS_SCHEMA, ClaimInputs, claims_markdown, claims_table


def evaluation_predictions(task: str, better_share: float, seeds: list[int], n: int = 200) -> pl.DataFrame:
    """Rule evaluate's table: gold alternates 0/1; "pretrained" and "finetuned-random" answer 0
    always; "finetuned-pretrained" is right on the first `better_share` of the examples and
    answers 0 elsewhere."""
    frames = []
    for seed in seeds:
        gold = (np.arange(n) % 2).astype(float)
        right = np.arange(n) < better_share * n
        conditions = {
            "pretrained": np.zeros(n),
            "finetuned-random": np.zeros(n),
            "finetuned-pretrained": np.where(right, gold, 0.0),
        }
        for condition, prediction in conditions.items():
            frames.append(
                pl.DataFrame(
                    {
                        "model": "m",
                        "task": task,
                        "seed": seed,
                        "condition": condition,
                        "example": np.arange(n, dtype=np.int32),
                        "prediction": prediction,
                        "label": gold,
                    }
                )
            )
    return pl.concat(frames)


def test_every_claim_has_a_row_even_with_nothing_in_the_run() -> None:
    table = claims_table(ClaimInputs(model="m", tasks=[]))
    assert table["claim_id"].to_list() == list(CLAIM_IDS)
    assert dict(table.schema) == CLAIMS_SCHEMA
    assert set(table["verdict"]) == {"not run"}
    assert table["note"].null_count() == 0  # every "not run" says why


@pytest.mark.parametrize(
    ("units", "direction", "expected"),
    [
        ([Unit("a", 0.02, 0.01, 0.03), Unit("b", 0.05, 0.001, 0.1)], +1, "supported"),
        ([Unit("a", 0.02, 0.01, 0.03), Unit("b", 0.0, -0.01, 0.01)], +1, "inconclusive"),
        ([Unit("a", 0.02, 0.01, 0.03), Unit("b", -0.05, -0.1, -0.01)], +1, "contradicted"),
        ([Unit("a", -0.02, -0.03, -0.01)], -1, "supported"),
        ([Unit("a", 0.02, 0.01, 0.03)], -1, "contradicted"),
        ([Unit("a", float("nan"), float("nan"), float("nan"))], +1, "inconclusive"),
    ],
)
def test_interval_verdict(units: list[Unit], direction: int, expected: str) -> None:
    assert interval_verdict(units, direction) == expected


def test_table1_claims_on_known_predictions() -> None:
    # SST-2: its primary metric is accuracy.
    strong = evaluation_predictions("SST-2", better_share=1.0, seeds=[1, 2])
    table = claims_table(ClaimInputs(model="m", tasks=["SST-2"], predictions=strong, resamples=300))
    row = table.filter(pl.col("claim_id") == "finetuning_helps").row(0, named=True)
    # always right vs always 0 on alternating gold: +50 points on every resample
    assert row["estimate"] == pytest.approx(50.0, rel=1e-12)
    assert row["ci_low"] == pytest.approx(row["ci_high"], abs=15.0) and row["ci_low"] > 0
    assert row["verdict"] == "supported"
    same = evaluation_predictions("SST-2", better_share=0.0, seeds=[1, 2])
    table = claims_table(ClaimInputs(model="m", tasks=["SST-2"], predictions=same, resamples=300))
    row = table.filter(pl.col("claim_id") == "pretraining_helps").row(0, named=True)
    assert row["estimate"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0
    assert row["verdict"] == "inconclusive"


def pooled_statistics(task: str, masks: dict[str, tuple[float, float, float]]) -> pl.DataFrame:
    """Pooled sweep-statistics rows: mask -> (delta, ci_low, ci_high) for the task's primary metric."""
    return pl.DataFrame(
        [
            {"task": task, "metric": "accuracy", "mask": m, "delta": d, "ci_low": lo, "ci_high": hi}
            for m, (d, lo, hi) in masks.items()
        ]
    )


def test_missing_heads_and_tasks_are_not_run_with_the_reason() -> None:
    statistics = pooled_statistics("RTE", {"L1": (0.03, 0.01, 0.05), "L1-H1": (-0.01, -0.02, 0.0)})
    selection = pl.DataFrame(
        schema={
            "task": pl.String,
            "metric": pl.String,
            "estimate": pl.String,
            "mask": pl.String,
            "delta": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
        }
    )
    inputs = ClaimInputs(
        model="m", tasks=["RTE"], statistics=statistics, selection=selection, pair_heads=["L9-H9"]
    )
    table = claims_table(inputs)
    layer1 = table.filter(pl.col("claim_id") == "layer1_helps_rte").row(0, named=True)
    assert layer1["verdict"] == "supported" and layer1["estimate"] == pytest.approx(3.0)
    pair = table.filter(pl.col("claim_id") == "pair_heads_matter").row(0, named=True)
    assert pair["verdict"] == "not run" and "L9-H9" in pair["note"]
    random_head = table.filter(pl.col("claim_id") == "random_head_helps").row(0, named=True)
    assert random_head["verdict"] == "not run"


def test_markdown_has_one_row_per_claim_and_the_counts() -> None:
    table = claims_table(ClaimInputs(model="m", tasks=[]))
    text = claims_markdown(table, "m")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert len(rows) == len(CLAIM_IDS)
    assert f"{len(CLAIM_IDS)} not run" in text
    assert all(v in VERDICTS for v in table["verdict"])


def test_missing_framenet_folder_is_named_in_the_not_run_note() -> None:
    why = "framenet.corpus_dir ../shared/data/framenet_v15 is not a folder (from /somewhere)"
    table = claims_table(ClaimInputs(model="m", tasks=["SST-2"], framenet_missing=why))
    row = table.filter(pl.col("claim_id") == "framenet_heads_harmless").row(0, named=True)
    assert row["verdict"] == "not run" and why in row["note"]
