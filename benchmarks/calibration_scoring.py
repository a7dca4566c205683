"""Scoring one simulated sweep of the calibration benchmark against its truth: interval
coverage, false positives, family-wise errors, the existence test and the best-head estimates'
bias (`evaluate_sweep`), and the mode-agreement claim (`evaluate_agreement`). Each returns
(metric, quantity, value) records that `benchmarks/calibration.py` aggregates over replicates.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from calibration_designs import (
    AGREEMENT_THRESHOLD,
    ESTIMATES,
    HEAD_NAMES,
    SWEEP_KINDS,
    TOP_K,
    Record,
    Truth,
)

if TYPE_CHECKING:
    from headlab.analysis.sweep_statistics import StatisticsSettings


def _truth_frames(truth: Truth) -> tuple[pl.DataFrame, pl.DataFrame]:
    pooled = pl.DataFrame(
        {"mask": list(truth.pooled), "pooled_truth": list(truth.pooled.values())},
        schema={"mask": pl.String, "pooled_truth": pl.Float64},
    )
    rows = [(m, s, float(v)) for m, values in truth.per_seed.items() for s, v in enumerate(values)]
    per_seed = pl.DataFrame(
        rows, schema={"mask": pl.String, "seed": pl.Int64, "seed_truth": pl.Float64}, orient="row"
    )
    return pooled, per_seed


def with_truth(statistics: pl.DataFrame, truth: Truth) -> pl.DataFrame:
    """The statistics rows of single heads and layers with their `truth` and `planted` flag."""
    pooled, per_seed = _truth_frames(truth)
    rows = statistics.filter(pl.col("kind").is_in(SWEEP_KINDS)).with_columns(pl.col("seed").cast(pl.Int64))
    rows = rows.join(pooled, on="mask", how="left").join(per_seed, on=["mask", "seed"], how="left")
    value = pl.when(pl.col("scope") == "pooled").then(pl.col("pooled_truth")).otherwise(pl.col("seed_truth"))
    return rows.with_columns(truth=value.fill_null(0.0), planted=pl.col("mask").is_in(list(truth.planted)))


def _covers(low: str = "ci_low", high: str = "ci_high") -> pl.Expr:
    return (pl.col(low) <= pl.col("truth") + 1e-12) & (pl.col("truth") - 1e-12 <= pl.col(high))


def _finite(*columns: str) -> pl.Expr:
    return pl.all_horizontal([pl.col(c).is_not_null() & pl.col(c).is_finite() for c in columns])


def interval_records(rows: pl.DataFrame, alpha: float) -> list[tuple[str, float]]:
    """Coverage per scope for null and planted masks, the nulls' false-positive rates, the
    share of undefined intervals."""
    out = [("undefined", 1.0 - rows.filter(_finite("ci_low", "ci_high")).height / max(rows.height, 1))]
    finite = rows.filter(_finite("ci_low", "ci_high"))
    for scope in ("pooled", "seed"):
        for role, is_planted in (("null", False), ("planted", True)):
            part = finite.filter((pl.col("scope") == scope) & (pl.col("planted") == is_planted))
            if part.height:
                out.append((f"coverage_{scope}_{role}", float(part.select(_covers().mean()).item())))
        tested = rows.filter((pl.col("scope") == scope) & ~pl.col("planted") & _finite("p_value"))
        if tested.height:
            out.append((f"fpr_{scope}", float((tested["p_value"] < alpha).mean())))
    return out


def family_records(rows: pl.DataFrame) -> list[tuple[str, float]]:
    """Any BH-significant null head / null layer (pooled); the planted masks' significance."""
    pooled = rows.filter(pl.col("scope") == "pooled").with_columns(pl.col("significant").fill_null(False))
    out = []
    for kind in SWEEP_KINDS:
        nulls = pooled.filter((pl.col("kind") == kind) & ~pl.col("planted"))
        if nulls.height:
            out.append((f"fwer_{kind}s", float(nulls["significant"].any())))
        real = pooled.filter((pl.col("kind") == kind) & pl.col("planted"))
        if real.height:
            out.append((f"power_{kind}s", float(real["significant"].mean())))
    return out


def estimate_truth(mask: str | None, truth: Truth) -> float:
    """The true delta an estimate targets: the mean pooled truth of its named head(s), or of
    every head when it names none (random_head). Several heads are joined by "," (one per seed)
    and "/" (one per half of the examples); each scores an equal share, and accuracy is linear."""
    names = re.split(r"[,/]", mask) if mask else HEAD_NAMES
    return float(np.mean([truth.pooled.get(name.strip(), 0.0) for name in names]))


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def selection_records(selection: pl.DataFrame, truth: Truth, alpha: float) -> list[tuple[str, float]]:
    """Bias and coverage of each head estimate; the existence test's verdicts."""
    out = []
    improves = max((truth.pooled.get(name, 0.0) for name in HEAD_NAMES), default=0.0) > 0
    for row in selection.iter_rows(named=True):
        estimate = row["estimate"]
        if estimate in ESTIMATES and _finite_number(row["delta"]):
            target = estimate_truth(row["mask"], truth)
            out.append((f"bias_{estimate}", row["delta"] - target))
            if _finite_number(row["ci_low"]) and _finite_number(row["ci_high"]):
                out.append((f"coverage_{estimate}", float(row["ci_low"] <= target <= row["ci_high"])))
        elif estimate == "some_head_improves":
            if _finite_number(row["p_value"]):
                out.append(("exists_power" if improves else "exists_false", float(row["p_value"] < alpha)))
            if _finite_number(row["ci_high"]):
                out.append(("exists_contradicted", float(row["ci_high"] < 0)))
    return out


def evaluate_sweep(table: pl.DataFrame, truth: Truth, settings: StatisticsSettings) -> list[Record]:
    """The scored answers of sweep_statistics on one simulated sweep, every metric."""
    from headlab.analysis.sweep_statistics import sweep_statistics

    statistics, selection = sweep_statistics(table, list(truth.metrics), settings)
    out: list[Record] = []
    for metric in truth.metrics:
        rows = with_truth(statistics.filter(pl.col("metric") == metric), truth)
        chosen = selection.filter(pl.col("metric") == metric)
        found = interval_records(rows, settings.alpha) + family_records(rows)
        found += selection_records(chosen, truth, settings.alpha)
        out += [(metric, quantity, value) for quantity, value in found]
    return out


def evaluate_agreement(table: pl.DataFrame, truth: Truth, settings: StatisticsSettings) -> list[Record]:
    """The modes_agree claim's verdict and the pooled correlation interval's coverage."""
    from headlab.analysis.mode_agreement import mode_agreement as agreement_table
    from headlab.analysis.mode_claims import modes_agree_claim

    by_mode = {mode: group for (mode,), group in table.group_by("mode", maintain_order=True)}
    agreement = agreement_table(by_mode, "accuracy", TOP_K, settings.resamples, settings.alpha, settings.seed)
    verdict = modes_agree_claim(agreement, list(by_mode), threshold=AGREEMENT_THRESHOLD)["verdict"]
    statistic = "pearson_corrected" if "pearson_corrected" in agreement["statistic"].to_list() else "spearman"
    row = agreement.filter((pl.col("scope") == "pooled") & (pl.col("statistic") == statistic)).row(
        0, named=True
    )
    target = truth.correlation["pearson" if statistic == "pearson_corrected" else "spearman"]
    agree = truth.correlation["pearson"] > AGREEMENT_THRESHOLD
    metric = f"accuracy ({statistic})"
    supported = "mode_supported_true" if agree else "mode_supported_false"
    out: list[Record] = [
        (metric, supported, float(verdict == "supported")),
        (metric, "mode_contradicted", float(verdict == "contradicted")),
        (metric, "mode_error", row["value"] - target),
    ]
    if _finite_number(row["ci_low"]) and _finite_number(row["ci_high"]):
        out.append((metric, "mode_coverage", float(row["ci_low"] <= target <= row["ci_high"])))
    return out
