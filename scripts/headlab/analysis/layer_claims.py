"""Claims of Sec. 4.6 and 5 on whole layers, the FrameNet heads and how tasks differ, read from
the pooled sweep statistics (`ClaimInputs.statistics`, each task in its paper metric; deltas are
fractions, shown in points).

* `layer_helps_claim` (Sec. 4.6: "disabling a whole layer ... also improves the results"): the
  layer rows (kind "layer") of every task. Supported when some task has a layer with delta > 0
  and q < alpha / T (q: Benjamini-Hochberg over the task's layers, in the table; Bonferroni over
  the T tasks); contradicted when in every task every layer's interval lies below 0 with
  p < alpha / m, m = layers x tasks; else inconclusive. Estimate: the largest layer delta.
* `layer_cost_small_claim` (Sec. 4.6: "for QNLI and MNLI, it produces a performance drop of up
  to -0.2%"): every layer of QNLI and MNLI (those in the run) against COST = 0.2 points.
  Supported when every layer's lower bound is >= -COST; contradicted when some layer's upper
  bound is below -COST with p < alpha / m (m = layers x tasks; p tests delta = 0); else
  inconclusive. Estimate: the most negative layer delta; `size`: where the paper's -0.2 lies
  against each task's most negative layer's interval (`size_verdict`).
* `framenet_either_head_claim` (Sec. 5: disabling "either one" of the FrameNet heads "does not
  lead to a drop of accuracy"): each top head of the FrameNet head table alone (its single-head
  sweep row) in every task. Contradicted when some (task, head) has delta < 0 with
  p < alpha / m, m = tasks x heads (a NaN p: its interval below 0); supported when every lower
  bound is above -claims.no_harm_margin; else inconclusive. Estimate: the mean delta.
* `heads_impact_differs_claim` (abstract: the impact of disabling heads differs across tasks):
  the Spearman correlation of the per-head deltas of every pair of tasks (the heads both have).
  Interval: a parametric bootstrap, each head's delta drawn from N(delta, se), independently
  per task (statistics.resamples draws), percentile interval. Supported when every pair's upper
  bound is below claims.agreement_threshold; contradicted when some pair's lower bound is above
  it; else inconclusive. Estimate: the mean correlation x 100 (a correlation, not points).

A p-value or q-value that is NaN never passes a threshold, except where said (the interval
alone decides, as in `headlab.analysis.claim_rules`); a NaN delta or bound is never read as 0.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import polars as pl
from scipy import stats

from headlab.analysis.ablation_claims import mask_unit, pooled_rows
from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.claim_rules import Unit, not_run, points, size_verdict, with_units
from headlab.analysis.significance import percentile_interval
from headlab.heads import head_name, marked_heads

NO_STATISTICS = "no sweep statistics in the run (rule sweep_statistics)"
COST = 0.002  # Sec. 4.6: "a performance drop of up to -0.2%", as a fraction
COST_TASKS = ("QNLI", "MNLI")
RNG_STREAM = 23  # the heads_impact_differs bootstrap: default_rng([statistics.seed, RNG_STREAM])
MIN_COMMON_HEADS = 3  # a rank correlation of fewer heads says nothing


def kind_rows(inputs: ClaimInputs, task: str, kind: str) -> pl.DataFrame:
    """The task's pooled rows of one kind of mask ("layer", "head") in its paper metric, in
    (layer, head) order."""
    rows = pooled_rows(inputs, task).filter(pl.col("kind") == kind)
    return rows.sort("layer", "head", nulls_last=True)


def _beyond(p: np.ndarray, threshold: float, interval_says: np.ndarray) -> np.ndarray:
    """p < threshold; where p is NaN, the interval alone (`interval_says`)."""
    return np.where(np.isnan(p), interval_says, p < threshold)


def _unit_text(name: str, delta: float, low: float, high: float) -> str:
    return f"{name} {points(delta)} [{points(low)}, {points(high)}]"


def _points_or_none(value: float) -> float | None:
    return 100 * float(value) if np.isfinite(value) else None


def _layers_by_task(inputs: ClaimInputs, tasks: list[str]) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """task -> its layer rows (tasks that have some), and the tasks without any."""
    layers = {t: kind_rows(inputs, t, "layer") for t in tasks}
    return {t: r for t, r in layers.items() if r.height}, [t for t, r in layers.items() if r.height == 0]


def layer_helps_claim(inputs: ClaimInputs) -> dict[str, object]:
    """Disabling some whole layer improves some task (BH over its layers, Bonferroni over tasks)."""
    if inputs.statistics is None:
        return not_run({}, NO_STATISTICS)
    layers, without = _layers_by_task(inputs, list(inputs.tasks))
    if not layers:
        return not_run(
            {}, "no layer rows (kind layer) in the sweep statistics of the run's tasks (config key tasks)"
        )
    alpha, n_tasks = inputs.settings.alpha, len(layers)
    m = sum(r.height for r in layers.values())
    helps, all_below, texts = [], [], []
    best: tuple[float, float, float, str] | None = None  # (delta, low, high, "TASK Lk")
    for task, rows in layers.items():
        delta, low, high = (rows[c].to_numpy().astype(np.float64) for c in ("delta", "ci_low", "ci_high"))
        p, q = rows["p_value"].to_numpy().astype(np.float64), rows["q_value"].to_numpy().astype(np.float64)
        helps.append(bool(np.any((delta > 0) & (q < alpha / n_tasks))))  # NaN q: False
        all_below.append(bool(np.all((high < 0) & _beyond(p, alpha / m, high < 0))))
        if not np.isfinite(delta).any():
            texts.append(f"{task}: no finite layer delta")
            continue
        i = int(np.nanargmax(delta))
        name = f"{task} {rows['mask'][i]}"
        texts.append(f"{_unit_text(name, delta[i], low[i], high[i])}, q = {q[i]:.3g}")
        if best is None or delta[i] > best[0]:
            best = (float(delta[i]), float(low[i]), float(high[i]), name)
    verdict = "supported" if any(helps) else "contradicted" if all(all_below) else "inconclusive"
    notes = [f"best layer: {best[3]}"] if best else ["no finite layer delta"]
    if without:
        notes.append(f"no layer rows: {', '.join(without)}")
    return {
        "ours": "; ".join(texts),
        "estimate": _points_or_none(best[0]) if best else None,
        "ci_low": _points_or_none(best[1]) if best else None,
        "ci_high": _points_or_none(best[2]) if best else None,
        "verdict": verdict,
        "note": "; ".join(notes),
    }


def layer_cost_small_claim(inputs: ClaimInputs) -> dict[str, object]:
    """For QNLI and MNLI, disabling any whole layer costs at most COST (0.2 points)."""
    present = [t for t in COST_TASKS if t in inputs.tasks]
    if not present:
        return not_run({}, "needs tasks QNLI or MNLI (config key tasks)")
    if inputs.statistics is None:
        return not_run({}, NO_STATISTICS)
    layers, without = _layers_by_task(inputs, present)
    if not layers:
        return not_run({}, f"no layer rows (kind layer) of {', '.join(present)} in the sweep statistics")
    alpha = inputs.settings.alpha
    m = sum(r.height for r in layers.values())
    frame = pl.concat([r.select("ci_low", "ci_high", "p_value") for r in layers.values()])
    low, high, p = (frame[c].to_numpy().astype(np.float64) for c in ("ci_low", "ci_high", "p_value"))
    if np.all(np.isfinite(low)) and np.all(low >= -COST):
        verdict = "supported"
    elif np.any((high < -COST) & _beyond(p, alpha / m, high < -COST)):
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    texts, sizes = [], []
    worst: tuple[float, float, float, str] | None = None
    for task, rows in layers.items():
        d, lo, hi = (rows[c].to_numpy().astype(np.float64) for c in ("delta", "ci_low", "ci_high"))
        if not np.isfinite(d).any():
            texts.append(f"{task}: no finite layer delta")
            continue
        i = int(np.nanargmin(d))
        name = f"{task} {rows['mask'][i]}"
        texts.append(_unit_text(name, d[i], lo[i], hi[i]))
        size = size_verdict(-100 * COST, 100 * lo[i], 100 * hi[i])
        sizes.append(f"{name} {size or 'no interval'}")
        if worst is None or d[i] < worst[0]:
            worst = (float(d[i]), float(lo[i]), float(hi[i]), name)
    notes = [f"most negative layer: {worst[3]}" if worst else "no finite layer delta"]
    missing = [t for t in COST_TASKS if t not in inputs.tasks]
    if missing:
        notes.append(f"not in the run: {', '.join(missing)}")
    if without:
        notes.append(f"no layer rows: {', '.join(without)}")
    if not np.all(np.isfinite(low)):
        notes.append(f"{int((~np.isfinite(low)).sum())} layer(s) without an interval")
    return {
        "ours": "; ".join(texts),
        "estimate": _points_or_none(worst[0]) if worst else None,
        "ci_low": _points_or_none(worst[1]) if worst else None,
        "ci_high": _points_or_none(worst[2]) if worst else None,
        "verdict": verdict,
        "size": "; ".join(sizes),
        "note": "; ".join(notes),
    }


def framenet_either_head_claim(inputs: ClaimInputs) -> dict[str, object]:
    """Disabling either FrameNet head alone does not hurt any task."""
    if inputs.framenet_heads is None:
        detail = f": {inputs.framenet_missing}" if inputs.framenet_missing else ""
        return not_run({}, f"needs framenet.corpus_dir (the FrameNet corpus){detail}")
    heads = marked_heads(inputs.framenet_heads)
    if not heads:
        return not_run({}, "the FrameNet head table marks no top head (rule framenet_heads)")
    if inputs.statistics is None:
        return not_run({}, NO_STATISTICS)
    names = [head_name(layer, head) for layer, head in heads]
    units: list[Unit] = []
    absent: list[str] = []
    for task in inputs.tasks:
        for name in names:
            unit = mask_unit(inputs, task, name, f"{task} {name}")
            if unit is None:
                absent.append(f"{task} {name}")
            else:
                units.append(unit)
    if not units:
        return not_run({}, f"no single-head rows of {', '.join(names)} in the sweep statistics")
    made = with_units({}, units, -1, alpha=inputs.settings.alpha)
    delta, low, high, p = (np.array([getattr(u, f) for u in units]) for f in ("estimate", "low", "high", "p"))
    alpha, m = inputs.settings.alpha, len(units) + len(absent)
    if np.any((delta < 0) & _beyond(p, alpha / m, high < 0)):
        verdict = "contradicted"
    elif not absent and np.all(np.isfinite(low)) and np.all(low > -inputs.no_harm_margin):
        verdict = "supported"
    else:
        verdict = "inconclusive"
    notes = [f"FrameNet top heads {', '.join(names)}; margin {100 * inputs.no_harm_margin:.1f} points"]
    if absent:
        notes.append(f"not in the sweep statistics: {', '.join(absent)}")
    if made["note"]:
        notes.append(str(made["note"]))
    return {**made, "verdict": verdict, "note": "; ".join(notes)}


def _head_deltas(inputs: ClaimInputs, task: str) -> tuple[pl.DataFrame, int]:
    """(mask, delta, se of the task's single heads with a finite delta and standard error, the
    number of heads left out for a NaN one)."""
    rows = kind_rows(inputs, task, "head").select("mask", "delta", "se")
    kept = rows.filter(pl.col("delta").is_finite() & pl.col("se").is_finite())
    return kept, rows.height - kept.height


def rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B,) Spearman correlations of the rows of a and b, each (B, K) (average ranks for ties);
    NaN where a row is constant."""
    ra, rb = stats.rankdata(a, axis=-1), stats.rankdata(b, axis=-1)
    ra, rb = ra - ra.mean(-1, keepdims=True), rb - rb.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(-1) / np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))


def heads_impact_differs_claim(inputs: ClaimInputs) -> dict[str, object]:
    """The per-head deltas of every pair of tasks correlate below claims.agreement_threshold."""
    if inputs.statistics is None:
        return not_run({}, NO_STATISTICS)
    found = {t: _head_deltas(inputs, t) for t in inputs.tasks}
    heads = {t: h for t, (h, _) in found.items() if h.height}
    dropped = [f"{t} {n}" for t, (_, n) in found.items() if n]
    if len(heads) < 2:
        return not_run(
            {}, "needs two tasks or more with single-head rows in the sweep statistics (config key tasks)"
        )
    rng = np.random.default_rng([inputs.settings.seed, RNG_STREAM])
    draws = {  # (resamples, heads) per task, drawn in the run's task order
        t: h["delta"].to_numpy()[None]
        + h["se"].to_numpy()[None] * rng.standard_normal((inputs.settings.resamples, h.height))
        for t, h in heads.items()
    }
    texts, values, lows, highs, few = [], [], [], [], []
    for a, b in combinations(heads, 2):
        both = heads[a].with_row_index("ia").join(heads[b].with_row_index("ib"), on="mask")
        if both.height < MIN_COMMON_HEADS:
            few.append(f"{a}~{b}")
            continue
        ia, ib = both["ia"].to_numpy(), both["ib"].to_numpy()
        rho = float(rowwise_spearman(both["delta"].to_numpy(), both["delta_right"].to_numpy()))
        replicates = rowwise_spearman(draws[a][:, ia], draws[b][:, ib])
        low, high = (float(x[0]) for x in percentile_interval(replicates[:, None], inputs.settings.alpha))
        texts.append(f"{a}~{b} {rho:.2f} [{low:.2f}, {high:.2f}] ({both.height} heads)")
        values.append(rho)
        lows.append(low)
        highs.append(high)
    if not values:
        return not_run({}, f"fewer than {MIN_COMMON_HEADS} heads common to any pair of tasks")
    lows_a, highs_a = np.array(lows), np.array(highs)
    threshold = inputs.agreement_threshold
    if np.all(highs_a < threshold):  # False for a NaN bound
        verdict = "supported"
    elif np.any(lows_a > threshold):
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    notes = [
        f"estimate: the mean Spearman correlation of per-head deltas x 100 (a correlation, not points); "
        f"threshold {threshold:g}"
    ]
    if few:
        notes.append(f"fewer than {MIN_COMMON_HEADS} common heads: {', '.join(few)}")
    if np.isnan(lows_a).any() or np.isnan(highs_a).any():
        notes.append("NaN interval(s): a task's deltas are constant in too many draws")
    if dropped:
        notes.append(f"heads left out for a NaN delta or se: {', '.join(dropped)}")
    missing = [t for t in inputs.tasks if t not in heads]
    if missing:
        notes.append(f"no head rows: {', '.join(missing)}")
    span_ok = np.isfinite(lows_a).all() and np.isfinite(highs_a).all()
    mean = float(np.mean(values))
    return {
        "ours": "; ".join(texts),
        "estimate": 100 * mean if np.isfinite(mean) else None,
        "ci_low": 100 * float(lows_a.min()) if span_ok else float("nan"),
        "ci_high": 100 * float(highs_a.max()) if span_ok else float("nan"),
        "verdict": verdict,
        "note": "; ".join(notes),
    }
