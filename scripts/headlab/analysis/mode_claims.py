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

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.claim_rules import not_run, points
from headlab.heads import head_name

STATISTIC = "pearson_corrected"


def _span(values: list[float] | np.ndarray) -> tuple[float, float]:
    """(min, max); NaN when any value is NaN (a summary over units with NaN says so)."""
    array = np.asarray(values, dtype=np.float64)
    return (float("nan"),) * 2 if np.isnan(array).any() else (float(array.min()), float(array.max()))


def modes_agree_claim(
    agreement: pl.DataFrame | None, modes: list[str], threshold: float
) -> dict[str, object]:
    if agreement is None or len(modes) < 2:
        return not_run({}, "needs two disabling modes or more (ablation.modes)")
    rows = agreement.filter((pl.col("scope") == "pooled") & (pl.col("statistic") == STATISTIC)).sort(
        "task", "mode_a", "mode_b"
    )
    if rows.height == 0:
        return not_run({}, f"no pooled {STATISTIC} rows")
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
    if effect is None or effect.height == 0:
        return not_run({}, f"no FrameNet experiment in the run ({missing or 'framenet.corpus_dir'})")
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
        "ours": ours,
        "estimate": 100 * float(effect["delta"].mean()),
        "ci_low": 100 * _span(lows)[0],
        "ci_high": 100 * _span(highs)[1],
        "verdict": verdict,
        "note": f"heads {heads}",
    }


PAPER_FRAMENET_SCORES = (0.201, 0.209)  # Sec. 4.2: the two top heads of BERT-base


def framenet_heads_description(inputs: ClaimInputs) -> dict[str, object]:
    """Sec. 4.2 beside ours: the sentences that pass the paper's filters and the top heads'
    scores (another model than the paper's, so a description, not a test)."""
    table = inputs.framenet_heads
    if table is None or table.height == 0:
        return not_run(
            {}, f"no FrameNet head table in the run ({inputs.framenet_missing or 'framenet.corpus_dir'})"
        )
    top = table.filter(pl.col("top")).sort("score", descending=True)
    heads = ", ".join(
        f"{head_name(r['layer'], r['head'])} {r['score']:.3f}" for r in top.iter_rows(named=True)
    )
    sentences = "unknown" if inputs.framenet_sentences is None else str(inputs.framenet_sentences)
    return {
        "ours": f"{sentences} sentences; top heads {heads or 'none'} of {table.height}",
        "estimate": float(top["score"].max()) if top.height else None,
        "ci_low": None,
        "ci_high": None,
        "verdict": "description",
        "note": f"estimate: the best head's score (not points); the paper's: {PAPER_FRAMENET_SCORES}",
    }
