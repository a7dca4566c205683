"""The verdict rules of the claims table, and the row helpers every claim uses.

Verdict rule for a claim about a direction in one or several units (tasks, heads, modes; every
interval is 95 %, or 1 - statistics.alpha, and every unit has a two-sided p-value):
`supported` when *every* unit's interval lies on the claimed side of 0 and its p-value is below
alpha (an intersection-union test: no multiplicity correction is needed when all must pass);
`contradicted` when *some* unit lies on the other side with a p-value below alpha / m, m the
number of units (Bonferroni: with m chances to contradict, each is tested at alpha / m); else
`inconclusive`; `not run` when the claim's inputs are not in the run. A row that only describes
(the paper's naive best-head number) carries the verdict `description`. Estimates are kept as
fractions in `Unit` and shown in points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from headlab.analysis.significance import Inference

VERDICTS = ("supported", "contradicted", "inconclusive", "not run", "description")
INTERVAL_RULE = (
    "supported if every task's interval is {side} 0 (and p < alpha); contradicted if one task is "
    "on the other side with p < alpha / (number of tasks)"
)


@dataclass(frozen=True)
class Unit:
    """One task's (or head's) estimate as a fraction, with its interval and two-sided p-value."""

    name: str
    estimate: float
    low: float
    high: float
    p: float = float("nan")


def inference_unit(name: str, inference: Inference) -> Unit:
    """The unit of an inference's first column."""
    r = inference.row()
    return Unit(name, r["delta"], r["ci_low"], r["ci_high"], r["p_value"])


def points(value: float) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{100 * value:+.1f}"


def not_run(row: dict[str, object], why: str) -> dict[str, object]:
    return {
        **row,
        "ours": "–",
        "estimate": None,
        "ci_low": None,
        "ci_high": None,
        "verdict": "not run",
        "note": why,
    }


def interval_verdict(units: Sequence[Unit], direction: int, alpha: float = 0.05) -> str:
    """The rule of the module docstring; direction +1: claimed > 0, -1: claimed < 0. A unit
    whose p-value is NaN is decided by its interval alone (e.g. a hand-made interval)."""
    lows = np.array([u.low if direction > 0 else -u.high for u in units])
    highs = np.array([u.high if direction > 0 else -u.low for u in units])
    p = np.array([u.p for u in units])
    significant = np.where(np.isnan(p), True, p < alpha)
    if np.all(np.isfinite(lows)) and np.all(lows > 0) and np.all(significant):
        return "supported"
    beyond = np.where(np.isnan(p), True, p < alpha / len(units))
    if np.any((highs < 0) & beyond):
        return "contradicted"
    return "inconclusive"


def summary_span(units: Sequence[Unit]) -> tuple[float, float, str | None]:
    """(lowest low, highest high) over the units' intervals, NaN with a note naming the units
    whose interval is NaN (a NaN is never silently dropped or picked)."""
    lows = np.array([u.low for u in units], dtype=np.float64)
    highs = np.array([u.high for u in units], dtype=np.float64)
    missing = [u.name for u, lo, hi in zip(units, lows, highs, strict=True) if np.isnan(lo) or np.isnan(hi)]
    if missing:
        return float("nan"), float("nan"), f"no interval for: {', '.join(missing)}"
    return float(lows.min()), float(highs.max()), None


def with_units(
    row: dict[str, object],
    units: Sequence[Unit],
    direction: int,
    missing: Sequence[str] = (),
    alpha: float = 0.05,
) -> dict[str, object]:
    """The row completed from its units: the mean estimate, the per-unit text, the verdict."""
    ours = "; ".join(f"{u.name} {points(u.estimate)} [{points(u.low)}, {points(u.high)}]" for u in units)
    estimates = np.array([u.estimate for u in units], dtype=np.float64)
    low, high, nan_note = summary_span(units)
    notes = [f"not in the run: {', '.join(missing)}"] if missing else []
    if np.isnan(estimates).any():
        notes.append(f"{int(np.isnan(estimates).sum())} unit(s) with a NaN estimate")
    if nan_note:
        notes.append(nan_note)
    return {
        **row,
        "ours": ours,
        "estimate": 100 * float(np.mean(estimates)),
        "ci_low": 100 * low,
        "ci_high": 100 * high,
        "verdict": interval_verdict(units, direction, alpha),
        "note": "; ".join(notes) or None,
        "units": list(units),  # for the size comparison per task (the registry takes them out)
    }


SIZES = ("consistent", "smaller", "larger")


def size_verdict(
    paper: float | None, low: float | None, high: float | None, tolerance: float = 0.0
) -> str | None:
    """Where the paper's number lies against our interval, all in points: `consistent` when
    [paper - tolerance, paper + tolerance] (its reading uncertainty) meets [low, high], `smaller`
    when our interval lies below it, `larger` when above; None without a number or an interval."""
    values = (paper, low, high)
    if any(v is None or not np.isfinite(v) for v in values):
        return None
    if high < paper - tolerance:  # type: ignore[operator]
        return "smaller"
    if low > paper + tolerance:  # type: ignore[operator]
        return "larger"
    return "consistent"
