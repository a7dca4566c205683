"""The verdict rule of the claims table, and the row helpers every claim uses.

Verdict rule for a claim about a direction in several tasks (every interval is 95 %, or
1 - statistics.alpha): `supported` when every task's interval lies on the claimed side of 0,
`contradicted` when some task's interval lies on the other side, else `inconclusive`; `not run`
when the claim's inputs are not in the run. Estimates are kept as fractions in `Unit` and shown
in points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

VERDICTS = ("supported", "contradicted", "inconclusive", "not run")
INTERVAL_RULE = "supported if every task's interval is {side} 0; contradicted if one is on the other side"


@dataclass(frozen=True)
class Unit:
    """One task's (or head's) estimate in points, with its interval."""

    name: str
    estimate: float
    low: float
    high: float


def points(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{100 * value:+.1f}"


def claim_row(claim_id: str, section: str, claim: str, paper: str, rule: str) -> dict[str, object]:
    return {"claim_id": claim_id, "section": section, "claim": claim, "paper": paper, "rule": rule}


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


def interval_verdict(units: Sequence[Unit], direction: int) -> str:
    """The rule of the module docstring; direction +1: claimed > 0, -1: claimed < 0."""
    lows = np.array([u.low if direction > 0 else -u.high for u in units])
    highs = np.array([u.high if direction > 0 else -u.low for u in units])
    if np.all(np.isfinite(lows)) and np.all(lows > 0):
        return "supported"
    if np.any(highs < 0):
        return "contradicted"
    return "inconclusive"


def with_units(
    row: dict[str, object], units: Sequence[Unit], direction: int, missing: Sequence[str] = ()
) -> dict[str, object]:
    """The row completed from its units: the mean estimate, the per-unit text, the verdict."""
    ours = "; ".join(f"{u.name} {points(u.estimate)} [{points(u.low)}, {points(u.high)}]" for u in units)
    estimate = float(np.mean([u.estimate for u in units]))
    note = f"not in the run: {', '.join(missing)}" if missing else None
    return {
        **row,
        "ours": ours,
        "estimate": 100 * estimate,
        "ci_low": 100 * min(u.low for u in units),
        "ci_high": 100 * max(u.high for u in units),
        "verdict": interval_verdict(units, direction),
        "note": note,
    }
