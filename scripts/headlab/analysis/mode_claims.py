"""Claims about the disabling modes and the FrameNet heads (Sec. 4.6 and 5), from their tables.

* `modes_agree`: "the heads whose disabling matters are the same under uniform, zero and mean":
  the pooled noise-corrected correlation of the per-head deltas (`pearson_corrected`: the
  correlation of the true effects, see `headlab.analysis.mode_agreement`) of every pair of
  configured modes in every task, against `claims.agreement_threshold`: supported when every
  interval lies above it, contradicted when one lies below it, else inconclusive.
* `framenet_heads_harmless`: "disabling the FrameNet relation heads does not hurt GLUE" (rule
  framenet_effect, every task x mode): contradicted when some task x mode's delta is below 0
  with p < alpha / (tasks x modes) (Bonferroni: each unit is a chance to contradict), supported
  when every interval lies above -`claims.no_harm_margin`, else inconclusive. `ours` also places
  each delta in the random-head null (the share of random sets that do worse).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from headlab.analysis.claim_rules import claim_row, not_run, points

STATISTIC = "pearson_corrected"


def _span(values: list[float] | np.ndarray) -> tuple[float, float]:
    """(min, max); NaN when any value is NaN (a summary over units with NaN says so)."""
    array = np.asarray(values, dtype=np.float64)
    return (float("nan"),) * 2 if np.isnan(array).any() else (float(array.min()), float(array.max()))


def modes_agree_claim(
    agreement: pl.DataFrame | None, modes: list[str], threshold: float
) -> dict[str, object]:
    row = claim_row(
        "modes_agree",
        "4.6 (mode)",
        "the heads whose disabling matters are the same under "
        + (", ".join(modes) if len(modes) >= 2 else "every disabling mode (uniform, zero, mean)"),
        "the paper uses one mode (uniform)",
        f"pooled noise-corrected correlation of the per-head deltas, every pair of modes and task: "
        f"supported if every "
        f"interval lies above {threshold}, contradicted if one lies below it",
    )
    if agreement is None or len(modes) < 2:
        return not_run(row, "needs two disabling modes or more (ablation.modes)")
    rows = agreement.filter((pl.col("scope") == "pooled") & (pl.col("statistic") == STATISTIC)).sort(
        "task", "mode_a", "mode_b"
    )
    if rows.height == 0:
        return not_run(row, f"no pooled {STATISTIC} rows")
    lows, highs = rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy()
    verdict = (
        "supported"
        if np.all(lows > threshold)  # False for a NaN bound
        else "contradicted"
        if np.any(highs < threshold)
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
        "note": "estimate: mean noise-corrected correlation (not points)"
        + (
            "; NaN interval(s): a mode's deltas do not vary beyond their noise"
            if np.isnan(lows).any()
            else ""
        ),
    }


def framenet_claim(
    effect: pl.DataFrame | None, margin: float, missing: str | None = None, alpha: float = 0.05
) -> dict[str, object]:
    row = claim_row(
        "framenet_heads_harmless",
        "5",
        "disabling the FrameNet relation heads (Sec. 4.2) does not hurt any GLUE task",
        "no drop of accuracy for either of the 2 heads",
        f"every task x mode: contradicted if one is below 0 with p < alpha / (tasks x modes), "
        f"supported if every interval lies above -{100 * margin:g} points",
    )
    if effect is None or effect.height == 0:
        return not_run(row, f"no FrameNet experiment in the run ({missing or 'framenet.corpus_dir'})")
    lows, highs = effect["ci_low"].to_numpy(), effect["ci_high"].to_numpy()
    p = effect["p_value"].to_numpy() if "p_value" in effect.columns else np.full(lows.shape, np.nan)
    beyond = np.where(np.isnan(p), True, p < alpha / effect.height)
    if np.any((effect["delta"].to_numpy() < 0) & (highs < 0) & beyond):
        verdict = "contradicted"
    elif np.all(lows > -margin):
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
