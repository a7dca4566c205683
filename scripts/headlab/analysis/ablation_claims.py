"""The claims of Sec. 4.6 and 5 read from the sweep statistics (`headlab.analysis.sweep_statistics`):
single heads, layers, the best head and the pair of heads of Sec. 5, in the paper's metric.

"Disabling some single head improves every task" is decided by the simultaneous test of the
sweep statistics (`some_head_improves`: one-sided permutation p-values, Bonferroni over the
heads): supported when it rejects in every task, contradicted only when in some task every
head's simultaneous upper bound (Bonferroni over heads x tasks) is below 0. The paper's own
number, the best head scored on the data it was chosen on, is kept as a `description`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.claim_rules import Unit, not_run, points, with_units
from headlab.analysis.significance import simultaneous_bounds


def pooled_rows(inputs: ClaimInputs, task: str) -> pl.DataFrame:
    """The task's pooled statistics rows in the paper's metric."""
    metric = inputs.metric(task)
    return inputs.statistics.filter((pl.col("task") == task) & (pl.col("metric") == metric))  # type: ignore[union-attr]


def mask_unit(inputs: ClaimInputs, task: str, mask: str, name: str | None = None) -> Unit | None:
    rows = pooled_rows(inputs, task).filter(pl.col("mask") == mask)
    if rows.height == 0:
        return None
    r = rows.row(0, named=True)
    return Unit(name or task, r["delta"], r["ci_low"], r["ci_high"], r.get("p_value", float("nan")))


def selection_unit(inputs: ClaimInputs, task: str, estimate: str) -> Unit | None:
    metric = inputs.metric(task)
    rows = inputs.selection.filter(  # type: ignore[union-attr]
        (pl.col("task") == task) & (pl.col("metric") == metric) & (pl.col("estimate") == estimate)
    )
    if rows.height == 0:
        return None
    r = rows.row(0, named=True)
    label = f"{task} ({r['mask']})" if r["mask"] else task
    return Unit(label, r["delta"], r["ci_low"], r["ci_high"], r.get("p_value", float("nan")))


def units_claim(
    inputs: ClaimInputs, tasks: Sequence[str], unit_of: Callable[[str], Unit | None], direction: int
) -> dict[str, object]:
    """A direction claim over `tasks` (those of the run) from one unit per task."""
    if inputs.statistics is None or inputs.selection is None:
        return not_run({}, "no sweep statistics in the run (rule sweep_statistics)")
    present = [t for t in tasks if t in inputs.tasks]
    missing = [t for t in tasks if t not in inputs.tasks]
    units = [u for u in (unit_of(t) for t in present) if u is not None]
    if not units:
        return not_run(
            {}, f"needs tasks {', '.join(missing)} (config key tasks)" if missing else "no such masks"
        )
    return with_units({}, units, direction, missing, inputs.settings.alpha)


def selection_claim(
    inputs: ClaimInputs, estimate: str, tasks: Sequence[str] | None = None
) -> dict[str, object]:
    """Every task's `estimate` of the selection table (random_head, best_head_split, ...) above 0."""
    wanted = inputs.tasks if tasks is None else tasks
    return units_claim(inputs, wanted, lambda t: selection_unit(inputs, t, estimate), +1)


def layer_claim(inputs: ClaimInputs, task: str, layer: int) -> dict[str, object]:
    """Disabling one whole layer (mask "L{layer}") helps `task`."""
    return units_claim(inputs, [task], lambda t: mask_unit(inputs, t, f"L{layer}"), +1)


def pair_claim(inputs: ClaimInputs) -> dict[str, object]:
    """STS-B and RTE both rely on the same pair of heads: each head's delta below 0 in both.
    The paper's heads are BERT-base's indices: on another shape they name unrelated heads, so
    the claim runs only on a model of that shape or with heads named for the model."""
    heads = list(inputs.pair_heads)
    if inputs.statistics is None:
        return not_run({}, "no sweep statistics in the run (rule sweep_statistics)")
    problem = inputs.pair_heads_problem()
    if problem is not None:
        return not_run({}, problem)
    present = [t for t in ("STS-B", "RTE") if t in inputs.tasks]
    if not present:
        return not_run({}, "needs tasks STS-B and RTE (config key tasks)")
    units = [u for t in present for h in heads if (u := mask_unit(inputs, t, h, f"{t} {h}")) is not None]
    if len(units) < len(present) * len(heads):
        return not_run({}, f"the model has no head(s) {', '.join(heads)} (claims.pair_heads_by_model)")
    missing = [t for t in ("STS-B", "RTE") if t not in inputs.tasks]
    return with_units({}, units, -1, missing, inputs.settings.alpha)


def selection_row(inputs: ClaimInputs, task: str, estimate: str) -> dict[str, object] | None:
    rows = inputs.selection.filter(  # type: ignore[union-attr]
        (pl.col("task") == task)
        & (pl.col("metric") == inputs.metric(task))
        & (pl.col("estimate") == estimate)
    )
    return rows.row(0, named=True) if rows.height else None


def heads_upper(inputs: ClaimInputs, task: str, m: int) -> float:
    """The largest simultaneous upper bound over the task's heads (Bonferroni over m bounds)."""
    heads = pooled_rows(inputs, task)
    if "kind" in heads.columns:
        heads = heads.filter(pl.col("kind") == "head")
    if heads.height == 0 or "se" not in heads.columns:
        return float("nan")
    _, upper = simultaneous_bounds(
        heads["delta"].to_numpy(), heads["se"].to_numpy(), heads["df"].to_numpy(), inputs.settings.alpha, m
    )
    return float(np.max(upper)) if np.isfinite(upper).all() else float("nan")


def existence_claim(inputs: ClaimInputs) -> dict[str, object]:
    """Some single head improves every task: the simultaneous test over heads per task."""
    if inputs.statistics is None or inputs.selection is None:
        return not_run({}, "no sweep statistics in the run (rule sweep_statistics)")
    present = [t for t in inputs.tasks if selection_row(inputs, t, "some_head_improves") is not None]
    if not present:
        return not_run({}, "no simultaneous test in the sweep statistics")
    texts, rejected, below, gains = [], [], [], []
    for task in present:
        r = selection_row(inputs, task, "some_head_improves")
        assert r is not None
        pooled = pooled_rows(inputs, task)
        heads = pooled.filter(pl.col("kind") == "head").height if "kind" in pooled.columns else 1
        upper = heads_upper(inputs, task, max(heads, 1) * len(present))
        rejected.append(bool(r["p_value"] < inputs.settings.alpha))
        below.append(bool(upper < 0))
        gains.append(float(r["delta"]))
        bound = points(upper) if not upper > 1 else "above +100 (few seeds: few degrees of freedom)"
        texts.append(
            f"{task} ({r['mask']}) {points(r['delta'])}, simultaneous p = {r['p_value']:.3g}, "
            f"largest upper bound {bound}"
        )
    verdict = "supported" if all(rejected) else "contradicted" if any(below) else "inconclusive"
    missing = [t for t in inputs.tasks if t not in present]
    return {
        "ours": "; ".join(texts),
        "estimate": None,
        "ci_low": None,
        "ci_high": None,
        "verdict": verdict,
        "note": f"not in the run: {', '.join(missing)}" if missing else None,
    }


def naive_description(inputs: ClaimInputs) -> dict[str, object]:
    """The best single head scored where chosen (the paper's number): a description."""
    made = selection_claim(inputs, "best_head_naive")
    return made if made["verdict"] == "not run" else {**made, "verdict": "description"}


def held_out_claim(inputs: ClaimInputs) -> dict[str, object]:
    """The cross-fitted best head improves every task; never contradicted (a chosen head that
    does not replicate does not show that no head helps)."""
    made = selection_claim(inputs, "best_head_split")
    return {**made, "verdict": "inconclusive"} if made["verdict"] == "contradicted" else made
