"""Claims about the disabling modes and the FrameNet heads (Sec. 4.6 and 5), from their tables.

* `modes_agree`: "the heads whose disabling matters are the same under uniform, zero and mean":
  the pooled Spearman correlation of the per-head deltas of every pair of configured modes in
  every task (rule mode_agreement), against `claims.agreement_threshold`: supported when every
  interval lies above it, contradicted when one lies below it, else inconclusive.
* `framenet_heads_harmless`: "disabling the FrameNet relation heads does not hurt GLUE" (rule
  framenet_effect, every task x mode): contradicted when an interval lies below 0 (it hurts),
  supported when every interval lies above -`claims.no_harm_margin`, else inconclusive. `ours`
  also places each delta in the random-head null (the share of random sets that do worse).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from headlab.analysis.claim_rules import claim_row, not_run, points


def _span(values: list[float]) -> tuple[float, float]:
    return float(np.nanmin(values)), float(np.nanmax(values))


def modes_agree_claim(
    agreement: pl.DataFrame | None, modes: list[str], threshold: float
) -> dict[str, object]:
    row = claim_row(
        "modes_agree",
        "4.6 (mode)",
        "the heads whose disabling matters are the same under "
        + (", ".join(modes) if len(modes) >= 2 else "every disabling mode (uniform, zero, mean)"),
        "the paper uses one mode (uniform)",
        f"pooled Spearman of the per-head deltas, every pair of modes and task: supported if every "
        f"interval lies above {threshold}, contradicted if one lies below it",
    )
    if agreement is None or len(modes) < 2:
        return not_run(row, "needs two disabling modes or more (ablation.modes)")
    rows = agreement.filter((pl.col("scope") == "pooled") & (pl.col("statistic") == "spearman")).sort(
        "task", "mode_a", "mode_b"
    )
    if rows.height == 0:
        return not_run(row, "no pooled agreement rows")
    lows, highs = rows["ci_low"].to_list(), rows["ci_high"].to_list()
    verdict = (
        "supported"
        if all(lo > threshold for lo in lows)
        else "contradicted"
        if any(hi < threshold for hi in highs)
        else "inconclusive"
    )
    ours = "; ".join(
        f"{r['task']} {r['mode_a']}~{r['mode_b']} {r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        for r in rows.iter_rows(named=True)
    )
    low, high = _span(lows), _span(highs)
    return {
        **row,
        "ours": ours,
        "estimate": float(rows["value"].mean()),
        "ci_low": low[0],
        "ci_high": high[1],
        "verdict": verdict,
        "note": "estimate: mean Spearman correlation (not points)",
    }


def framenet_claim(
    effect: pl.DataFrame | None, margin: float, missing: str | None = None
) -> dict[str, object]:
    row = claim_row(
        "framenet_heads_harmless",
        "5",
        "disabling the FrameNet relation heads (Sec. 4.2) does not hurt any GLUE task",
        "no drop of accuracy for either of the 2 heads",
        f"every task x mode: contradicted if an interval lies below 0, supported if every interval "
        f"lies above -{100 * margin:g} points",
    )
    if effect is None or effect.height == 0:
        return not_run(row, f"no FrameNet experiment in the run ({missing or 'framenet.corpus_dir'})")
    lows, highs = effect["ci_low"].to_list(), effect["ci_high"].to_list()
    if any(hi < 0 for hi in highs):
        verdict = "contradicted"
    elif all(lo > -margin for lo in lows):
        verdict = "supported"
    else:
        verdict = "inconclusive"
    ours = "; ".join(
        f"{r['task']}/{r['mode']} {points(r['delta'])} [{points(r['ci_low'])}, {points(r['ci_high'])}], "
        f"{100 * r['share_null_below']:.0f} % of {r['n_sets']} random sets worse"
        for r in effect.iter_rows(named=True)
    )
    heads = effect["heads"][0]
    return {
        **row,
        "ours": ours,
        "estimate": 100 * float(effect["delta"].mean()),
        "ci_low": 100 * _span(lows)[0],
        "ci_high": 100 * _span(highs)[1],
        "verdict": verdict,
        "note": f"heads {heads}",
    }
