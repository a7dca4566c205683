"""The verdicts of the mode and FrameNet claims (`headlab.analysis.mode_claims`) on hand-made tables.

Proved here, for `modes_agree_claim` (pooled `pearson_corrected` rows only, the noise-corrected
correlation, against the threshold): every interval above the threshold -> supported; one wholly
below -> contradicted; otherwise (an interval straddling it, or a NaN bound) -> inconclusive, a
NaN bound never supported and named in the note; seed-scope and other-statistic rows (Spearman
included, the statistic the claim used to read) do not count; no table, fewer than two modes or
no pooled corrected row -> "not run" with a note; the estimate is the mean pooled corrected
correlation and the interval spans every pooled interval.

For `framenet_claim` (every task x mode): a delta below 0 whose interval is wholly below 0 with
p < alpha / (number of rows) -> contradicted (Bonferroni; a NaN or missing p-value: the interval
alone); every lower bound above -margin -> supported; else inconclusive; no table or an empty one
-> "not run"; the estimate and interval are in points, the note names the heads.
"""

from __future__ import annotations

import polars as pl
import pytest

from headlab.analysis.claim_rules import VERDICTS
from headlab.analysis.framenet_effect import EFFECT_SCHEMA
from headlab.analysis.mode_agreement import AGREEMENT_SCHEMA
from headlab.analysis.mode_claims import STATISTIC, framenet_claim, modes_agree_claim

MODES = ["uniform", "zero", "mean"]
PAIRS = [("uniform", "zero"), ("uniform", "mean"), ("zero", "mean")]
THRESHOLD = 0.5
MARGIN = 0.01  # 1 point
# What a claim function computes; the static fields come from the registry (claim_registry).
CLAIM_KEYS = {"ours", "estimate", "ci_low", "ci_high", "verdict", "note"}


def agreement_row(
    task: str, pair: tuple[str, str], value: float, low: float, high: float, **other: object
) -> dict[str, object]:
    row: dict[str, object] = {
        "model": "synthetic",
        "task": task,
        "metric": "accuracy",
        "scope": "pooled",
        "seed": None,
        "mode_a": pair[0],
        "mode_b": pair[1],
        "statistic": STATISTIC,
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "k": 10,
        "n_heads": 144,
        "n_examples": 400,
    }
    return {**row, **other}


def agreement_table(intervals: list[tuple[float, float, float]], noise: bool = True) -> pl.DataFrame:
    """Pooled corrected-correlation rows (value, low, high) for tasks x pairs in order; with
    `noise`, seed-scope and Spearman / Kendall / overlap rows whose intervals lie far below the
    threshold (they must not count)."""
    rows = []
    for i, (value, low, high) in enumerate(intervals):
        task, pair = ("SST-2", "MRPC")[i // len(PAIRS)], PAIRS[i % len(PAIRS)]
        rows.append(agreement_row(task, pair, value, low, high))
        if noise:
            rows.append(agreement_row(task, pair, -0.9, -1.0, -0.8, scope="seed", seed=0))
            rows.append(agreement_row(task, pair, -0.9, -1.0, -0.8, statistic="kendall"))
            rows.append(agreement_row(task, pair, -0.9, -1.0, -0.8, statistic="spearman"))
            rows.append(agreement_row(task, pair, 0.0, 0.0, 0.1, statistic="top_k_overlap"))
    return pl.DataFrame(rows, schema=AGREEMENT_SCHEMA)


def check_row(row: dict[str, object]) -> None:
    assert set(row) >= CLAIM_KEYS
    assert row["verdict"] in VERDICTS


# --- modes agree ---------------------------------------------------------------------------------

HIGH = [(0.9, 0.8, 0.95), (0.85, 0.7, 0.9), (0.8, 0.6, 0.9), (0.95, 0.9, 0.99), (0.7, 0.55, 0.8)]


@pytest.mark.parametrize(
    ("intervals", "verdict"),
    [
        (HIGH, "supported"),  # every low bound above 0.5
        ([*HIGH, (0.2, 0.1, 0.4)], "contradicted"),  # one interval wholly below 0.5
        ([(0.2, 0.1, 0.4), (0.6, 0.4, 0.8)], "contradicted"),  # one below, one straddling
        ([*HIGH, (0.6, 0.4, 0.8)], "inconclusive"),  # one interval straddles 0.5
        ([(0.5, 0.3, 0.7)], "inconclusive"),
        ([*HIGH, (float("nan"), float("nan"), float("nan"))], "inconclusive"),  # undefined: not shown
        ([*HIGH, (0.9, float("nan"), 0.95)], "inconclusive"),  # a NaN lower bound is never above
        ([(float("nan"), float("nan"), float("nan"))], "inconclusive"),  # only NaN: not supported
    ],
)
def test_modes_agree_verdict(intervals: list[tuple[float, float, float]], verdict: str) -> None:
    row = modes_agree_claim(agreement_table(intervals), MODES, THRESHOLD)
    check_row(row)
    assert row["verdict"] == verdict


def test_modes_agree_names_nan_intervals_in_the_note() -> None:
    row = modes_agree_claim(agreement_table([*HIGH, (float("nan"),) * 3]), MODES, THRESHOLD)
    assert row["verdict"] == "inconclusive"
    assert "NaN interval" in row["note"]
    assert row["ci_low"] != row["ci_low"]  # NaN: a span over a NaN bound is NaN, not a number
    clean = modes_agree_claim(agreement_table(HIGH), MODES, THRESHOLD)
    assert "NaN" not in clean["note"]


def test_modes_agree_ignores_seed_rows_and_other_statistics() -> None:
    with_noise = modes_agree_claim(agreement_table(HIGH, noise=True), MODES, THRESHOLD)
    without = modes_agree_claim(agreement_table(HIGH, noise=False), MODES, THRESHOLD)
    assert with_noise["verdict"] == without["verdict"] == "supported"
    assert with_noise == without


def test_modes_agree_estimate_and_span() -> None:
    row = modes_agree_claim(agreement_table(HIGH), MODES, THRESHOLD)
    values = [v for v, _, _ in HIGH]
    assert row["estimate"] == pytest.approx(sum(values) / len(values), rel=1e-12, abs=1e-12)
    assert row["ci_low"] == min(lo for _, lo, _ in HIGH)
    assert row["ci_high"] == max(hi for _, _, hi in HIGH)
    # every pooled pair is reported, e.g. the first: SST-2 uniform~zero 0.90 [0.80, 0.95]
    assert "SST-2 uniform~zero 0.90 [0.80, 0.95]" in row["ours"]
    assert row["ours"].count(";") == len(HIGH) - 1


@pytest.mark.parametrize(
    ("table", "modes"),
    [
        (None, MODES),
        ("table", ["uniform"]),
        ("table", []),
        (None, []),
    ],
)
def test_modes_agree_not_run(table: str | None, modes: list[str]) -> None:
    agreement = agreement_table(HIGH) if table else None
    row = modes_agree_claim(agreement, modes, THRESHOLD)
    check_row(row)
    assert row["verdict"] == "not run"
    assert row["note"] and "two disabling modes" in row["note"]
    assert row["estimate"] is None and row["ci_low"] is None and row["ci_high"] is None


def test_modes_agree_without_pooled_corrected_rows_is_not_run() -> None:
    # the pooled Spearman rows remain, but the claim reads only the corrected correlation
    only_noise = agreement_table(HIGH).filter(
        (pl.col("scope") != "pooled") | (pl.col("statistic") != STATISTIC)
    )
    assert only_noise.filter((pl.col("scope") == "pooled") & (pl.col("statistic") == "spearman")).height
    row = modes_agree_claim(only_noise, MODES, THRESHOLD)
    assert row["verdict"] == "not run"
    assert f"no pooled {STATISTIC} rows" in row["note"]


# --- FrameNet heads harmless ---------------------------------------------------------------------


def effect_table(
    intervals: list[tuple[float, float, float]], p_values: list[float] | None = None
) -> pl.DataFrame:
    """One row per (delta, low, high), tasks x modes in order, with p_values (default NaN: the
    verdict then reads the interval alone); se and df are not read by the claim (NaN)."""
    p_values = p_values if p_values is not None else [float("nan")] * len(intervals)
    rows = []
    for i, ((delta, low, high), p) in enumerate(zip(intervals, p_values, strict=True)):
        rows.append(
            {
                "model": "synthetic",
                "task": ("SST-2", "MRPC", "STS-B")[i // 2],
                "mode": ("uniform", "zero")[i % 2],
                "metric": "accuracy",
                "heads": "L2-H12,L4-H1",
                "n_heads": 2,
                "delta": delta,
                "se": float("nan"),
                "df": float("nan"),
                "ci_low": low,
                "ci_high": high,
                "p_value": p,
                "null_mean": -0.01,
                "null_low": -0.03,
                "null_high": 0.0,
                "share_null_below": 0.4,
                "n_sets": 100,
                "n_seeds": 3,
                "n_examples": 400,
            }
        )
    return pl.DataFrame(rows, schema=EFFECT_SCHEMA)


HARMLESS = [(0.0, -0.005, 0.004), (0.001, -0.002, 0.006), (-0.001, -0.009, 0.003), (0.01, 0.0, 0.02)]


@pytest.mark.parametrize(
    ("intervals", "verdict"),
    [
        (HARMLESS, "supported"),  # every low bound above -0.01
        ([*HARMLESS, (-0.03, -0.05, -0.01)], "contradicted"),  # wholly below 0: it hurts
        ([(-0.004, -0.008, -0.001)], "contradicted"),  # below 0 even within the margin
        ([*HARMLESS, (-0.01, -0.03, 0.01)], "inconclusive"),  # low bound below -margin, high above 0
        ([(0.0, -0.02, 0.02)], "inconclusive"),
    ],
)
def test_framenet_verdict(intervals: list[tuple[float, float, float]], verdict: str) -> None:
    row = framenet_claim(effect_table(intervals), MARGIN)
    check_row(row)
    assert row["verdict"] == verdict


def test_framenet_estimate_in_points_and_heads_note() -> None:
    row = framenet_claim(effect_table(HARMLESS), MARGIN)
    deltas = [d for d, _, _ in HARMLESS]
    assert row["estimate"] == pytest.approx(100 * sum(deltas) / len(deltas), rel=1e-12, abs=1e-12)
    assert row["ci_low"] == pytest.approx(100 * min(lo for _, lo, _ in HARMLESS), rel=1e-12, abs=1e-12)
    assert row["ci_high"] == pytest.approx(100 * max(hi for _, _, hi in HARMLESS), rel=1e-12, abs=1e-12)
    assert "L2-H12,L4-H1" in row["note"]
    # 40 % of 100 random sets worse, for each of the 4 task x mode rows
    assert row["ours"].count("40 % of 100 random sets worse") == len(HARMLESS)
    assert "SST-2/uniform" in row["ours"]


# Four task x mode rows; the last hurts (wholly below 0, also below -margin): 4 chances to
# contradict, so each is tested at alpha / 4 = 0.0125 (Bonferroni).
FOUR = [*HARMLESS[:3], (-0.03, -0.05, -0.01)]


@pytest.mark.parametrize(
    ("p_hurting", "verdict"),
    [
        (0.02, "inconclusive"),  # 0.02 < alpha but > alpha / 4: one of 4 chances, not enough
        (0.0125, "inconclusive"),  # the threshold itself: p must be below it
        (0.001, "contradicted"),  # below alpha / 4
        (float("nan"), "contradicted"),  # no p-value: the interval alone decides
    ],
)
def test_framenet_contradiction_is_bonferroni_over_rows(p_hurting: float, verdict: str) -> None:
    table = effect_table(FOUR, [0.5, 0.6, 0.7, p_hurting])
    assert framenet_claim(table, MARGIN, alpha=0.05)["verdict"] == verdict


def test_framenet_bonferroni_uses_alpha_and_the_number_of_rows() -> None:
    # alpha 0.1: 0.02 < 0.1 / 4 = 0.025 -> contradicted
    assert framenet_claim(effect_table(FOUR, [0.5, 0.6, 0.7, 0.02]), MARGIN, alpha=0.1)["verdict"] == (
        "contradicted"
    )
    # the hurting row alone (1 row): 0.02 < 0.05 / 1 -> contradicted
    alone = effect_table([FOUR[-1]], [0.02])
    assert framenet_claim(alone, MARGIN)["verdict"] == "contradicted"


def test_framenet_without_a_p_value_column_reads_the_interval_alone() -> None:
    table = effect_table(FOUR, [0.5, 0.6, 0.7, 0.02]).drop("p_value")
    assert framenet_claim(table, MARGIN)["verdict"] == "contradicted"
    harmless = effect_table(HARMLESS).drop("p_value")
    assert framenet_claim(harmless, MARGIN)["verdict"] == "supported"


def test_framenet_a_p_value_does_not_block_support() -> None:
    # "supported" reads the intervals only (no harm beyond the margin): large p-values are fine
    assert framenet_claim(effect_table(HARMLESS, [0.9, 0.5, 0.8, 0.04]), MARGIN)["verdict"] == "supported"


@pytest.mark.parametrize("empty", [True, False])
def test_framenet_not_run(empty: bool) -> None:
    table = effect_table([]) if empty else None
    row = framenet_claim(table, MARGIN)
    check_row(row)
    assert row["verdict"] == "not run"
    assert row["note"] and "FrameNet" in row["note"]
    assert row["estimate"] is None
