"""The claims card: every claim of the registry (`headlab.analysis.claim_registry`: the paper's
checkable claims, then headlab's own questions), each with our estimate, its interval, a
direction verdict and, where the paper gives a number, a size comparison.

A claim whose inputs are missing is `not run` and says what to add to the config. A claim that
reads fine-tuned models leaves out the tasks they do not learn (`headlab.analysis.claim_gate`). Direction
verdicts follow `headlab.analysis.claim_rules`; the size is `consistent` when the paper's number
lies in our interval (on the paper's scale: points of the paper's metric), else `smaller` or
`larger` (ours against the paper's).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from headlab.analysis.claim_gate import left_out_note, left_out_reasons, unlearned_tasks, without_tasks
from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.claim_registry import CLAIM_IDS, REGISTRY
from headlab.analysis.claim_rules import VERDICTS, Unit, size_verdict
from headlab.analysis.claim_types import GROUPS, Claim, PaperNumber

__all__ = ["CLAIMS_SCHEMA", "CLAIM_IDS", "ClaimInputs", "claims_markdown", "claims_table"]

CLAIMS_SCHEMA: dict[str, pl.DataType] = {
    "claim_id": pl.String(),
    "group": pl.String(),
    "section": pl.String(),
    "claim": pl.String(),
    "paper": pl.String(),
    "source": pl.String(),
    "quantity": pl.String(),
    "ours": pl.String(),
    "estimate": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "verdict": pl.String(),
    "size": pl.String(),
    "rule": pl.String(),
    "needs": pl.String(),
    "note": pl.String(),
}


def claim_size(paper: PaperNumber, made: Mapping[str, object], units: list[Unit]) -> str | None:
    """The size comparison of a computed claim (None without a number or an interval)."""
    if made.get("size") is not None or made["verdict"] == "not run":
        return made.get("size")  # type: ignore[return-value]
    if paper.per_task:
        sizes = [
            f"{u.name}: {s}"
            for u in units
            if (task := u.name.split(" ")[0]) in paper.per_task
            and (s := size_verdict(paper.per_task[task], 100 * u.low, 100 * u.high, paper.tolerance))
        ]
        return "; ".join(sizes) or None
    if paper.value is None:
        return None
    if paper.average and units:
        low = 100 * float(np.mean([u.low for u in units]))
        high = 100 * float(np.mean([u.high for u in units]))
        return size_verdict(paper.value, low, high, paper.tolerance)
    return size_verdict(paper.value, made.get("ci_low"), made.get("ci_high"), paper.tolerance)  # type: ignore[arg-type]


def gated_compute(claim: Claim, inputs: ClaimInputs, left_out: Mapping[str, str]) -> dict[str, object]:
    """What the claim's function computes on the tasks whose fine-tuned models learn (all of
    them when it does not read fine-tuned models or every task learns), with the tasks left out
    in its note; `inconclusive` when it needs only left-out tasks (headlab.analysis.claim_gate)."""
    if not claim.needs_learning or not left_out:
        return dict(claim.compute(inputs))
    made = dict(claim.compute(without_tasks(inputs, set(left_out))))
    note = left_out_note(left_out)
    if made["verdict"] == "not run" and claim.compute(inputs)["verdict"] != "not run":
        # the run has what it needs; the models it would read did not learn
        undecided = f"{note}; without it the claim cannot be decided"
        return {**made, "verdict": "inconclusive", "note": undecided, "size": None}
    return {**made, "note": "; ".join(filter(None, [made.get("note"), note]))}  # type: ignore[list-item]


def claim_row(
    claim: Claim, inputs: ClaimInputs, left_out: Mapping[str, str] | None = None
) -> dict[str, object]:
    """One row of the card: the registry's entry, then what its function computed (on the tasks
    that learn: `left_out` maps the others to why, `unlearned_tasks`)."""
    made = gated_compute(claim, inputs, left_out or {})
    units = list(made.pop("units", []))  # type: ignore[call-overload]
    return {
        "claim_id": claim.claim_id,
        "group": claim.group,
        "section": claim.section,
        "claim": claim.claim,
        "paper": claim.paper.text,
        "source": claim.paper.source,
        "quantity": claim.quantity,
        "ours": made.get("ours"),
        "estimate": made.get("estimate"),
        "ci_low": made.get("ci_low"),
        "ci_high": made.get("ci_high"),
        "verdict": made["verdict"],
        "size": claim_size(claim.paper, made, units),
        "rule": claim.rule,
        "needs": claim.needs,
        "note": made.get("note"),
    }


def claims_table(inputs: ClaimInputs, left_out: Mapping[str, str] | None = None) -> pl.DataFrame:
    """One row per claim of the registry (CLAIMS_SCHEMA), the paper's first, in its order; the
    claims on fine-tuned models leave out `left_out` (default: `unlearned_tasks(inputs)`)."""
    left_out = unlearned_tasks(inputs) if left_out is None else left_out
    rows = [claim_row(claim, inputs, left_out) for claim in REGISTRY]
    unknown = sorted({str(r["verdict"]) for r in rows} - set(VERDICTS))
    if unknown:
        raise ValueError(f"claims with unknown verdicts {unknown}")
    return pl.DataFrame(rows, schema=CLAIMS_SCHEMA)


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def claims_markdown(table: pl.DataFrame, model: str, left_out: Mapping[str, str] | None = None) -> str:
    """The card: the tasks the claims on fine-tuned models leave out (`unlearned_tasks`), per
    group the count of verdicts and one line per claim, then each claim's detail."""
    lines = [f"# The paper's claims, checked on {model}", ""]
    if left_out:
        lines += [
            f"The claims on fine-tuned models leave out {' and '.join(sorted(left_out))}: "
            f"{left_out_reasons(left_out)}. See the learning check.",
            "",
        ]
    for group, title in GROUPS.items():
        rows = table.filter(pl.col("group") == group)
        counts = {v: n for v in VERDICTS if (n := rows.filter(pl.col("verdict") == v).height)}
        summary = ", ".join(f"{n} {v}" for v, n in counts.items())
        lines += [f"**{title}**: {summary} (of {rows.height}).", ""]
    lines += [
        "Estimates in points of the paper's metric, means over fine-tuning seeds, 95 % intervals in "
        "brackets; size: where the paper's number lies against our interval.",
        "",
        "| group | claim | section | verdict | size |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in table.iter_rows(named=True):
        cells = [r["group"], f"[{r['claim_id']}](#{r['claim_id']}) {r['claim']}", r["section"]]
        lines.append("| " + " | ".join(map(_cell, [*cells, f"**{r['verdict']}**", r["size"]])) + " |")
    for r in table.iter_rows(named=True):
        lines += [
            "",
            f"### {r['claim_id']}",
            "",
            f"{_cell(r['claim'])} ({r['section']}; {GROUPS[r['group']]})",
            "",
            f"- paper: {_cell(r['paper'])} ({_cell(r['source'])})",
            f"- quantity: {_cell(r['quantity'])}",
            f"- ours: {_cell(r['ours']) or '–'}",
            f"- verdict: **{r['verdict']}**" + (f"; size: {r['size']}" if r["size"] else ""),
            f"- rule: {_cell(r['rule'])}",
            f"- needs: {_cell(r['needs'])}",
        ]
        if r["note"]:
            lines.append(f"- note: {_cell(r['note'])}")
    return "\n".join(lines) + "\n"
