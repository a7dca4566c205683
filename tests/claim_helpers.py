"""ClaimInputs for the claim tests: the config schema's claims.* and statistics.* defaults, with
fewer bootstrap resamples or permutations where a test asks; rule evaluate's predictions with a
known answer; hand-made sweep statistics and head selections."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.significance import StatisticsSettings
from headlab.workflow.defaults import config_defaults


def claim_inputs(*, resamples: int = 300, permutations: int | None = None, **fields: Any) -> ClaimInputs:
    """ClaimInputs of model "m" with the schema's defaults, `fields` over them."""
    claims = config_defaults("claims")
    settings = StatisticsSettings.of(config_defaults("statistics"))
    settings = replace(settings, resamples=resamples, permutations=permutations or settings.permutations)
    defaults = {
        "model": "m",
        "tasks": [],
        "pair_heads": claims["pair_heads"],
        "pair_heads_named": False,
        "modes": config_defaults("ablation")["modes"],
        "agreement_threshold": claims["agreement_threshold"],
        "no_harm_margin": claims["no_harm_margin"],
        "settings": settings,
    }
    return ClaimInputs(**{**defaults, **fields})


def evaluation_predictions(task: str, better_share: float, seeds: list[int], n: int = 200) -> pl.DataFrame:
    """Rule evaluate's table: gold alternates 0/1; "pretrained" and "scratch" answer 0
    always; "finetuned" is right on the first `better_share` of the examples and
    answers 0 elsewhere."""
    frames = []
    for seed in seeds:
        gold = (np.arange(n) % 2).astype(float)
        right = np.arange(n) < better_share * n
        conditions = {
            "pretrained": np.zeros(n),
            "scratch": np.zeros(n),
            "finetuned": np.where(right, gold, 0.0),
        }
        for condition, prediction in conditions.items():
            frames.append(
                pl.DataFrame(
                    {
                        "model": "m",
                        "task": task,
                        "seed": seed,
                        "condition": condition,
                        "example": np.arange(n, dtype=np.int64),
                        "prediction": prediction,
                        "label": gold,
                    }
                )
            )
    return pl.concat(frames)


HEADS_PER_TASK = 12
SELECTION_COLUMNS = {
    "task": pl.String,
    "metric": pl.String,
    "estimate": pl.String,
    "mask": pl.String,
    "delta": pl.Float64,
    "se": pl.Float64,
    "df": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "p_value": pl.Float64,
}


AROUND_ZERO = [(0.0, 0.01, 50.0)] * HEADS_PER_TASK  # every head: upper bound well above 0
HURTING = [(-0.05, 0.005, 50.0)] * HEADS_PER_TASK  # every head: upper bound -0.05 + ~3 x 0.005 < 0


def head_statistics(task: str, heads: list[tuple[float, float, float]]) -> list[dict[str, object]]:
    """Pooled statistics rows of the task's heads L1-H1, ... from (delta, se, df), plus a layer
    row L1 whose interval is far above 0 (only heads count in the existence test)."""
    rows = [
        {
            "task": task,
            "metric": "accuracy",
            "mask": f"L1-H{i + 1}",
            "kind": "head",
            "layer": 1,
            "head": i + 1,
            "delta": d,
            "se": se,
            "df": df,
            "ci_low": d - 2 * se,
            "ci_high": d + 2 * se,
            "p_value": 0.5,
            "q_value": 0.5,
        }
        for i, (d, se, df) in enumerate(heads)
    ]
    layer = {**rows[0], "mask": "L1", "kind": "layer", "head": None, "delta": 0.2, "se": 0.01, "df": 50.0}
    return [*rows, {**layer, "ci_low": 0.18, "ci_high": 0.22, "p_value": 0.001, "q_value": 0.001}]


def selection_row(task: str, estimate: str, mask: str, d: float, low: float, high: float, p: float) -> dict:
    return {
        "task": task,
        "metric": "accuracy",
        "estimate": estimate,
        "mask": mask,
        "delta": d,
        "se": float("nan"),
        "df": float("nan"),
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
    }


def selection_inputs(
    heads: dict[str, list[tuple[float, float, float]]],
    existence_p: dict[str, float],
    extra: list[dict] | None = None,
    **fields: Any,
) -> ClaimInputs:
    """ClaimInputs of the tasks of `heads` (RTE, MRPC: accuracy) with their head statistics and
    a `some_head_improves` selection row of p-value existence_p[task], plus `extra` selection rows."""
    statistics = pl.DataFrame([r for task, h in heads.items() for r in head_statistics(task, h)])
    selection = [
        selection_row(t, "some_head_improves", "L1-H1", 0.01, 0.0, 0.02, p) for t, p in existence_p.items()
    ]
    return claim_inputs(
        model="m",
        tasks=list(heads),
        statistics=statistics,
        selection=pl.DataFrame([*selection, *(extra or [])], schema=SELECTION_COLUMNS),
        pair_heads=["L1-H1"],
        **fields,
    )
