"""headlab's questions about importance, pruning and replication (the sister experiments of the field).

* `disabling_replicates`: do the heads whose disabling helps in one fine-tuning seed help in
  another? The pooled `helps_replicated` share of rule importance_summary (heads selected on one
  half of the dev examples in seed a, checked on the other half in seed b;
  `headlab.analysis.replication`) against `expected`, the share a random set of heads gives:
  supported when every task's interval lies above its expected share, contradicted when one lies
  below it, else inconclusive; not run with one seed or no head selected.
* `importance_agrees_with_delta`: does Michel's gradient importance rank heads as the exact
  disabling sweep does? The pooled Spearman correlation of importance with minus the exact
  score delta (screen importance, `headlab.analysis.attribution_agreement`), every task, against
  `claims.agreement_threshold`: supported when every interval lies above it, contradicted when
  one lies below it.
* `prunable_share`: how much can be pruned at a cost of at most `pruning.max_cost`? A
  description: per task, the largest share of heads removed in the importance order whose every
  level stays within the allowance (`headlab.analysis.pruning_summary.prunable_share`), and the
  conservative share from the intervals' lower bounds.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from headlab.analysis.claim_rules import not_run


def _pooled(table: pl.DataFrame | None, **equal: str) -> pl.DataFrame:
    if table is None:
        return pl.DataFrame()
    rows = table.filter(pl.col("scope") == "pooled")
    for column, value in equal.items():
        rows = rows.filter(pl.col(column) == value)
    return rows.sort("task")


def disabling_replicates_claim(replication: pl.DataFrame | None) -> dict[str, object]:
    rows = _pooled(replication, statistic="helps_replicated")
    if rows.height == 0:
        return not_run({}, "needs rule importance_summary (head importance and pruning in the run)")
    usable = rows.filter(pl.col("value").is_not_nan())
    if usable.height == 0:
        notes = "; ".join(sorted({str(n) for n in rows["note"].to_list() if n}))
        return not_run({}, notes or "no head helped in any seed")
    lows, highs = usable["ci_low"].to_numpy(), usable["ci_high"].to_numpy()
    expected = usable["expected"].to_numpy()
    verdict = (
        "supported"
        if np.all(lows > expected) and usable.height == rows.height
        else "contradicted"
        if np.any(highs < expected)
        else "inconclusive"
    )
    ours = "; ".join(
        f"{r['task']} {r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] vs chance {r['expected']:.2f} "
        f"({r['n_selected']} heads)"
        for r in usable.iter_rows(named=True)
    )
    missing = sorted(set(rows["task"]) - set(usable["task"]))
    return {
        "ours": ours,
        "estimate": float(np.mean(usable["value"].to_numpy() - expected)),
        "ci_low": float(np.min(lows - expected)),
        "ci_high": float(np.max(highs - expected)),
        "verdict": verdict,
        "note": "estimate: mean replicated share minus chance (not points)"
        + (f"; no head selected in {', '.join(missing)}" if missing else ""),
    }


def importance_agrees_claim(agreement: pl.DataFrame | None, threshold: float) -> dict[str, object]:
    rows = _pooled(agreement, screen="importance", statistic="spearman", target="score", unit="head")
    if rows.height == 0:
        return not_run({}, "needs rule importance_summary (head importance and the sweeps in the run)")
    lows, highs = rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy()
    verdict = (
        "supported"
        if np.all(lows > threshold)
        else "contradicted"
        if np.any(highs < threshold)
        else "inconclusive"
    )
    ours = "; ".join(
        f"{r['task']} ({r['mode']}) {r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        for r in rows.iter_rows(named=True)
    )
    return {
        "ours": ours,
        "estimate": float(rows["value"].mean()),
        "ci_low": float(np.min(lows)),
        "ci_high": float(np.max(highs)),
        "verdict": verdict,
        "note": "estimate: mean Spearman correlation of importance with minus the exact score delta "
        "(not points)",
    }


def prunable_share_description(prunable: pl.DataFrame | None, order: str = "importance") -> dict[str, object]:
    rows = pl.DataFrame() if prunable is None else prunable.filter(pl.col("order") == order).sort("task")
    if rows.height == 0:
        return not_run({}, "needs rule importance_summary (pruning curves in the run)")
    ours = "; ".join(
        f"{r['task']} {100 * r['share']:.0f} % (conservative {100 * r['share_conservative']:.0f} %) of "
        f"{r['n_heads']} heads at <= {100 * r['max_cost']:.1f} points of {r['metric']}"
        for r in rows.iter_rows(named=True)
    )
    return {
        "ours": ours,
        "estimate": float(rows["share"].mean()),
        "ci_low": float(rows["share_conservative"].min()),
        "ci_high": float("nan"),
        "verdict": "description",
        "note": f"estimate: mean share of heads removed in the {order} order (a fraction, not points); "
        "ci_low: the smallest conservative share (interval lower bounds)",
    }
