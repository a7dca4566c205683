"""Do heads whose disabling helps in one fine-tuning seed help in another? Cross-seed replication.

Input: the sweep predictions with per-example `score` of one model x task x mode, every seed, and
the per-example importance table (issue 21 table 3, `importance-examples`). A head's *score
delta* on an example is its score with that head alone disabled minus the baseline's; its mean
score delta (per seed) is the mean of that over the dev examples.

Statistics, per seed pair (scope "pair") and pooled over the pairs (scope "pooled": the mean of
the pairs' values, and of their replicates for the interval):

* `spearman_delta` (pairs a < b): Spearman's rho over the single heads of the mean score deltas
  of seed a and seed b;
* `pearson_corrected` (pairs a < b): the correlation of the heads' *true* deltas in the two seeds,
  the noise of the observed deltas removed (`headlab.analysis.mode_agreement.spread_noise` and
  `corrected_pearson`, as for two modes: corrected once for the value, twice for a replicate;
  where a corrected variance is not positive in the replicates, the interval is NaN and the note
  says the correlation is not resolved: its value, clipped to [-1, 1], is then no evidence);
* `helps_replicated` (ordered pairs a != b): the dev examples are split into halves A and B
  (`headlab.analysis.head_selection.halves_of(n, settings.seed)`). In seed a, on half A, the
  heads whose mean score delta is significantly > 0 are selected: a one-sided paired sign-flip
  permutation test (`SELECTION_TEST`: the mask's and the baseline's scores trade places on each
  example with probability 1/2, i.e. the per-example delta changes sign; p-values by
  `significance.permutation_pvalues`, `settings.permutations` flips), Benjamini-Hochberg over the
  heads, q < settings.alpha. The value is the share of the selected heads whose mean score delta
  on half B in seed b is > 0; `expected` is the share of *all* heads with a delta > 0 on half B
  in seed b (what a head set chosen at random gives). The same with the halves swapped (chosen
  on B, scored on A); the two are averaged (only the halves that selected a head count;
  `n_selected` sums the selections used; no selected head: NaN with a note). Pooled
  `n_selected`: the selections of every seed and half;
* `spearman_importance` (pairs a < b): Spearman's rho of the heads' importances (the mean of
  `value` over the importance sample per head) in seed a and seed b.

Intervals: percentile intervals over `settings.resamples` crossed example resamples: one set of
bootstrap counts for every seed, drawn within each half of the dev examples (so that each half
keeps its size); `helps_replicated` holds the selection fixed and resamples the examples of the
half it is scored on (an interval conditional on the selection). The importance sample is other
examples: it is resampled on its own, one set of counts for both seeds of a pair. Seeds are not
resampled: the intervals are conditional on these fine-tuning seeds. The Spearman intervals (as
mode agreement's) are percentile intervals of replicates that add resampling noise to deltas
that are noisy already, so where the noise is a fair share of the heads' spread they lean towards
0 and can sit just below a high observed value; `pearson_corrected` removes that noise. With one
seed there are no pair rows and one pooled NaN row per statistic with the note "needs two seeds".

Table (`REPLICATION_SCHEMA`): model, task, mode, statistic, scope (pair | pooled), seed_a,
seed_b (null pooled), value, ci_low, ci_high, expected, n_selected, n_heads, n_examples, note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations, permutations

import numpy as np
import polars as pl

from headlab.analysis.head_arrays import HEAD_KEYS, head_values, interval_fields, score_sweep, weighted_means
from headlab.analysis.head_selection import halves_of
from headlab.analysis.mode_agreement import _spearman_rows, corrected_pearson, spread_noise
from headlab.analysis.significance import (
    BLOCK_WEIGHTS,
    StatisticsSettings,
    benjamini_hochberg,
    crossed_weights,
    permutation_pvalues,
)

REPLICATION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "mode": pl.String(),
    "statistic": pl.String(),
    "scope": pl.String(),
    "seed_a": pl.Int64(),
    "seed_b": pl.Int64(),
    "value": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "expected": pl.Float64(),
    "n_selected": pl.Int64(),
    "n_heads": pl.Int64(),
    "n_examples": pl.Int64(),
    "note": pl.String(),
}
STATISTICS = ("spearman_delta", "pearson_corrected", "helps_replicated", "spearman_importance")
SELECTION_TEST = "one-sided paired sign-flip permutation test of the mean score delta, BH over the heads"
NEEDS_TWO = "needs two seeds"


def sign_flip_pvalues(deltas: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """(H,) one-sided p-values of "mean delta <= 0" from per-example deltas (H, n): the paired
    permutation that swaps a mask's and the baseline's score on each example with probability
    1/2 flips the sign of its delta."""
    n = deltas.shape[1]
    observed = deltas.mean(axis=1)  # (H,)
    block = max(1, BLOCK_WEIGHTS // max(n, 1))
    permuted = []
    for start in range(0, n_permutations, block):
        signs = 1.0 - 2.0 * rng.integers(0, 2, size=(min(block, n_permutations - start), n))  # (p, n)
        permuted.append(signs @ deltas.T / n)  # (p, H)
    return permutation_pvalues(observed, np.concatenate(permuted), alternative="greater")


@dataclass(frozen=True)
class PairEstimate:
    """One seed pair's value of a statistic, its replicates (B,) and the pair's other fields."""

    seeds: tuple[int, int]
    value: float
    replicates: np.ndarray  # (B,)
    extra: dict[str, object] = field(default_factory=dict)


def _missing(statistic: str, note: str, **extra: object) -> dict[str, object]:
    """A pooled row of NaN with its note."""
    nan = float("nan")
    return {
        "statistic": statistic,
        "scope": "pooled",
        "value": nan,
        "ci_low": nan,
        "ci_high": nan,
        "note": note,
        **extra,
    }


def _rows(
    statistic: str, pairs: list[PairEstimate], alpha: float, pooled: list[PairEstimate], **extra: object
) -> list[dict[str, object]]:
    """The pair rows and, unless `pooled` is empty, the pooled row: the mean of the `pooled`
    pairs' values and replicates."""
    rows = [
        {
            "statistic": statistic,
            "scope": "pair",
            "seed_a": p.seeds[0],
            "seed_b": p.seeds[1],
            **interval_fields(p.value, p.replicates, alpha),
            **p.extra,
        }
        for p in pairs
    ]
    if not pooled:
        return rows
    value = np.mean([p.value for p in pooled])
    replicates = np.mean([p.replicates for p in pooled], axis=0)  # (B,)
    return [
        *rows,
        {"statistic": statistic, "scope": "pooled", **interval_fields(value, replicates, alpha), **extra},
    ]


def _correlations(
    seeds: list[int], observed: np.ndarray, replicates: np.ndarray, alpha: float
) -> list[dict[str, object]]:
    """spearman_delta and pearson_corrected rows of per-seed deltas (S, H), replicates (B, S, H)."""
    spearman, corrected = [], []
    for a, b in combinations(range(len(seeds)), 2):
        pair = (seeds[a], seeds[b])
        value = _spearman_rows(observed[a][None], observed[b][None])[0]
        spearman.append(PairEstimate(pair, value, _spearman_rows(replicates[:, a], replicates[:, b])))
        noise = spread_noise(replicates[:, a], replicates[:, b])
        value = corrected_pearson(observed[a][None], observed[b][None], *noise)[0]
        corrected.append(
            PairEstimate(
                pair, value, corrected_pearson(replicates[:, a], replicates[:, b], *noise, times=2.0)
            )
        )
    unresolved = (
        "the deltas' noise is as large as their spread over the heads (a corrected variance is not "
        "positive in the replicates): the corrected correlation is not resolved, its value clipped to [-1, 1]"
    )
    corrected_rows = [
        row | {"note": unresolved} if not np.isfinite(row["ci_low"]) else row
        for row in _rows("pearson_corrected", corrected, alpha, corrected)
    ]
    return _rows("spearman_delta", spearman, alpha, spearman) + corrected_rows


def _selections(
    deltas: np.ndarray, halves: tuple[np.ndarray, np.ndarray], settings: StatisticsSettings
) -> np.ndarray:
    """(S, 2, H) the heads selected in each seed on each half (BH q < alpha of one-sided tests)."""
    rng = np.random.default_rng([settings.seed, 33])
    selected = np.zeros((deltas.shape[0], 2, deltas.shape[1]), dtype=bool)
    for s in range(deltas.shape[0]):
        for h, rows in enumerate(halves):
            p = sign_flip_pvalues(deltas[s][:, rows], settings.permutations, rng)  # (H,)
            selected[s, h] = benjamini_hochberg(p) < settings.alpha
    return selected


def _helps(
    seeds: list[int],
    deltas: np.ndarray,
    weights: np.ndarray,
    halves: tuple[np.ndarray, np.ndarray],
    settings: StatisticsSettings,
) -> list[dict[str, object]]:
    """helps_replicated rows of per-example deltas (S, H, n) under the stratified weights (B, n)."""
    selected = _selections(deltas, halves, settings)  # (S, 2, H)
    on_half = [deltas[:, :, rows].mean(-1) for rows in halves]  # 2 x (S, H)
    replicated = [weighted_means(weights[:, rows], deltas[:, :, rows]) for rows in halves]  # 2 x (B, S, H)
    test = f"{SELECTION_TEST} ({settings.permutations} permutations, q < {settings.alpha})"
    note = (
        f"selected in seed a on one half by a {test}, scored on the other half in seed b; halves swapped "
        "and averaged; interval resamples the scoring half with the selection fixed"
    )
    pairs = []
    for a, b in permutations(range(len(seeds)), 2):
        shares, expected, reps = [], [], []
        for chosen, scored in ((0, 1), (1, 0)):
            pick = selected[a, chosen]  # (H,)
            if pick.any():
                shares.append((on_half[scored][b, pick] > 0).mean())
                expected.append((on_half[scored][b] > 0).mean())
                reps.append((replicated[scored][:, b][:, pick] > 0).mean(axis=1))  # (B,)
        if not shares:
            nan = np.full(weights.shape[0], np.nan)
            extra = {"n_selected": 0, "note": f"no head selected in seed {seeds[a]} on either half ({test})"}
            pairs.append(PairEstimate((seeds[a], seeds[b]), float("nan"), nan, extra))
            continue
        extra = {
            "expected": float(np.mean(expected)),
            "n_selected": int(selected[a].sum()),
            "note": note + ("" if len(shares) == 2 else "; only one half selected a head"),
        }
        pairs.append(PairEstimate((seeds[a], seeds[b]), float(np.mean(shares)), np.mean(reps, axis=0), extra))
    used = [p for p in pairs if np.isfinite(p.value)]
    if not used:
        missing = _missing("helps_replicated", f"no head selected in any seed ({test})", n_selected=0)
        return [*_rows("helps_replicated", pairs, settings.alpha, []), missing]
    return _rows(
        "helps_replicated",
        pairs,
        settings.alpha,
        used,
        expected=float(np.mean([p.extra["expected"] for p in used])),
        n_selected=int(selected.sum()),
        note=f"mean over the {len(used)} ordered seed pairs whose seed a selected a head; " + note,
    )


def _importance(importance: pl.DataFrame | None, settings: StatisticsSettings) -> list[dict[str, object]]:
    """spearman_importance rows of the per-example importance table (every seed)."""
    if importance is None or importance.height == 0:
        return [_missing("spearman_importance", "no importance table")]
    seeds = sorted(importance["seed"].unique().to_list())
    heads = importance.select(*HEAD_KEYS).unique().sort(*HEAD_KEYS)
    values, sample = head_values(importance, "value", seeds, heads)  # (S, H, m)
    counts = {"n_heads": heads.height, "n_examples": sample.size}
    if len(seeds) < 2:
        return [_missing("spearman_importance", NEEDS_TWO, **counts)]
    weights = crossed_weights(np.random.default_rng([settings.seed, 32]), settings.resamples, sample.size)
    observed, replicates = values.mean(-1), weighted_means(weights, values)  # (S, H), (B, S, H)
    pairs = [
        PairEstimate(
            (seeds[a], seeds[b]),
            _spearman_rows(observed[a][None], observed[b][None])[0],
            _spearman_rows(replicates[:, a], replicates[:, b]),
        )
        for a, b in combinations(range(len(seeds)), 2)
    ]
    return [{**row, **counts} for row in _rows("spearman_importance", pairs, settings.alpha, pairs)]


def replication(
    sweeps: pl.DataFrame, importance_examples: pl.DataFrame | None, settings: StatisticsSettings
) -> pl.DataFrame:
    """The replication table of one model x task x mode (every seed of the sweep and of the
    importance table)."""
    sweep = score_sweep(sweeps)
    deltas = sweep.deltas("head")  # (S, H, n)
    if deltas.shape[1] == 0:
        raise ValueError("the sweep has no single-head masks (kind 'head')")
    n = sweep.examples.size
    first = sweeps.row(0, named=True)
    keys = {"model": first["model"], "task": first["task"], "mode": first["mode"]}
    counts = {"n_heads": deltas.shape[1], "n_examples": n}
    if len(sweep.seeds) < 2:
        rows = [_missing(s, NEEDS_TWO, **counts) for s in STATISTICS[:3]]
    else:
        halves = halves_of(n, settings.seed)
        weights = crossed_weights(
            np.random.default_rng([settings.seed, 31]), settings.resamples, n, strata=list(halves)
        )  # (B, n): every half keeps its size
        rows = _correlations(sweep.seeds, deltas.mean(-1), weighted_means(weights, deltas), settings.alpha)
        rows += _helps(sweep.seeds, deltas, weights, halves, settings)
        rows = [{**counts, **row} for row in rows]
    rows += _importance(importance_examples, settings)
    return pl.DataFrame([{**keys, **row} for row in rows], schema=REPLICATION_SCHEMA)
