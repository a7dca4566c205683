"""Selection-aware estimates of a sweep: which head is "best", and does disabling some head help?

The best of 144 noisy deltas is biased upward when it is scored on the examples it was chosen
on. The estimates here (scope pooled, one row each per metric of rule sweep_statistics):

- `random_head`: the mean delta over all single heads (disabling a head chosen at random);
- `best_head_naive`: the head with the largest mean delta scored on the data it was chosen on:
  the paper's number, a description only (biased upward by the choice among all heads);
- `best_head_split`: cross-fitted: the head chosen on a seeded half A of the dev examples
  scores the examples of half B, the head chosen on B scores A; the estimate is the delta of
  that combined prediction (each example predicted by a head chosen without it), with the
  pooled interval and p-value of a mask;
- `best_head_cross_seed`: each seed's head chosen on half A (and B) is scored on the other
  half in every other seed; the mean over the ordered seed pairs, with `share_improving`
  among the pairs that are not ties (`n_ties` reported); NaN with a note for one seed;
- `some_head_improves`: the simultaneous test of "disabling some head improves the score":
  each head's one-sided joint-swap permutation p-value, Bonferroni over the heads
  (`p_value` = min(1, heads x smallest p)); `mask`, `delta` and `ci_low` are the head of the
  smallest p (its simultaneous one-sided lower bound), `ci_high` the largest simultaneous
  upper bound over all heads, so "no head improves" is shown only when `ci_high` < 0.

The cross-fitted and cross-seed estimates are built as extra "masks" (`selection_masks`: each
example predicted by a head chosen without it), so the crossed bootstrap, the permutation test
and the crossed variance of `headlab.analysis.significance` apply to them unchanged.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from headlab.analysis.significance import (
    INFERENCE_COLUMNS,
    Inference,
    StatisticsSettings,
    observed_deltas,
    permutation_pvalues,
    pooled_inference,
    simultaneous_bounds,
)

SELECTION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "mode": pl.String(),
    "metric": pl.String(),
    "estimate": pl.String(),
    "mask": pl.String(),
    **dict.fromkeys(INFERENCE_COLUMNS, pl.Float64()),
    "share_improving": pl.Float64(),
    "n_ties": pl.Int64(),
    "n_seeds": pl.Int64(),
    "n_examples": pl.Int64(),
    "note": pl.String(),
}
ESTIMATES = (
    "random_head",
    "best_head_naive",
    "best_head_split",
    "best_head_cross_seed",
    "some_head_improves",
)


def best_of(deltas: np.ndarray, candidates: np.ndarray) -> int | None:
    """The candidate index with the largest finite delta (the first on ties); None when every
    candidate's delta is NaN (a NaN is never "best")."""
    values = deltas[candidates]
    if not np.isfinite(values).any():
        return None
    return int(candidates[np.nanargmax(values)])


def halves_of(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, 1]).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def _combined(pred_s: np.ndarray, chosen: list[int | None], halves: tuple, n: int) -> np.ndarray | None:
    """(n,) each example predicted by the head chosen on the other half (None if one is None)."""
    on_a, on_b = chosen
    if on_a is None or on_b is None:
        return None
    out = np.empty(n)
    out[halves[1]] = pred_s[on_a, halves[1]]  # chosen on A scores B
    out[halves[0]] = pred_s[on_b, halves[0]]
    return out


def selection_masks(
    metric: str, pred: np.ndarray, base: np.ndarray, gold: np.ndarray, heads: np.ndarray, seed: int
) -> tuple[np.ndarray, dict[str, object]]:
    """(built masks (S, E, n), what was chosen): E = 1 cross-fitted mask (chosen on the pooled
    halves) + S - 1 cross-seed masks (column r of seed j: chosen in seed (j + r) mod S)."""
    seeds, _, n = pred.shape
    halves = halves_of(n, seed)
    on_half = [observed_deltas(metric, pred, base, gold, rows) for rows in halves]  # (S, K) each
    pooled_choice = [best_of(np.nanmean(deltas, axis=0), heads) for deltas in on_half]
    per_seed = [[best_of(deltas[s], heads) for deltas in on_half] for s in range(seeds)]  # [seed][half]
    columns = []
    for s in range(seeds):
        row = [_combined(pred[s], pooled_choice, halves, n)]
        row += [_combined(pred[s], per_seed[(s + r) % seeds], halves, n) for r in range(1, seeds)]
        columns.append([base[s] if c is None else c for c in row])
    usable = {
        "split": None not in pooled_choice,
        "cross": all(None not in c for c in per_seed),
    }
    return np.array(columns), {"split": pooled_choice, "cross": per_seed, "usable": usable, "halves": halves}


def _row(
    name: str, mask: str | None, inference: Inference | None, note: str | None = None, **extra: object
) -> dict[str, object]:
    nan = float("nan")
    fields = inference.row() if inference is not None else dict.fromkeys(INFERENCE_COLUMNS, nan)
    return {
        "estimate": name,
        "mask": mask,
        **fields,
        "share_improving": extra.get("share_improving"),
        "n_ties": extra.get("n_ties"),
        "note": note,
    }


def selection_rows(
    observed: np.ndarray,
    replicates: np.ndarray,
    swaps: tuple[np.ndarray, np.ndarray],
    pooled: Inference,
    heads: np.ndarray,
    k: int,
    chosen: dict[str, object],
    names: list[str],
    n_seeds: int,
    settings: StatisticsSettings,
) -> list[dict[str, object]]:
    alpha = settings.alpha
    if heads.size == 0:
        return [_row(e, None, None, "no single-head masks") for e in ESTIMATES]
    # random head: the mean over heads, its crossed interval (a linear combination of masks)
    random_head = pooled_inference(
        observed[:, heads].mean(1, keepdims=True), replicates[:, :, heads].mean(2, keepdims=True), alpha
    )
    rows = [_row("random_head", None, random_head, f"mean over {heads.size} heads")]
    naive = best_of(pooled.estimate, heads)
    rows.append(
        _row(
            "best_head_naive",
            None if naive is None else names[naive],
            None if naive is None else pooled.take(np.array([naive])),
            "a description, not a test: chosen and scored on the same examples (biased upward)",
        )
    )
    halves = chosen["halves"]
    split_names = [None if h is None else names[h] for h in chosen["split"]]
    rows.append(
        _row(
            "best_head_split",
            "/".join(str(n) for n in split_names),
            pooled.take(np.array([k])) if chosen["usable"]["split"] else None,
            f"cross-fitted: chosen on one half ({halves[0].size} / {halves[1].size} examples), "
            "scored on the other; mask: the heads chosen on half A / half B"
            if chosen["usable"]["split"]
            else "every head's delta is NaN on a half",
        )
    )
    rows.append(_cross_seed(observed, replicates, k, chosen, names, n_seeds, alpha))
    rows.append(_existence(observed, replicates, swaps, pooled, heads, names, settings))
    return rows


def _cross_seed(
    observed: np.ndarray,
    replicates: np.ndarray,
    k: int,
    chosen: dict[str, object],
    names: list[str],
    n_seeds: int,
    alpha: float,
) -> dict[str, object]:
    if n_seeds < 2:
        return _row("best_head_cross_seed", None, None, "needs at least two seeds")
    if not chosen["usable"]["cross"]:
        return _row("best_head_cross_seed", None, None, "every head's delta is NaN on a half of a seed")
    columns = np.arange(k + 1, k + n_seeds)  # column r - 1: chosen in seed (j + r) mod S
    inference = pooled_inference(
        observed[:, columns].mean(1, keepdims=True), replicates[:, :, columns].mean(2, keepdims=True), alpha
    )
    pairs = observed[:, columns].reshape(-1)  # each ordered (chosen in, scored in) pair
    ties = int((np.abs(pairs) <= 1e-12).sum())
    decided = pairs.size - ties
    share = float((pairs > 1e-12).sum() / decided) if decided else float("nan")
    heads = ",".join("/".join(names[h] for h in halves) for halves in chosen["cross"])
    return _row(
        "best_head_cross_seed",
        heads,
        inference,
        f"each seed's heads (chosen on half A / B) scored on the other half in the {n_seeds - 1} other "
        f"seed(s); share_improving among the {decided} of {pairs.size} pairs that are not ties",
        share_improving=share,
        n_ties=ties,
    )


def _existence(
    observed: np.ndarray,
    replicates: np.ndarray,
    swaps: tuple[np.ndarray, np.ndarray],
    pooled: Inference,
    heads: np.ndarray,
    names: list[str],
    settings: StatisticsSettings,
) -> dict[str, object]:
    with np.errstate(invalid="ignore"):
        statistic = np.nanmean(swaps[0][:, heads], axis=0)  # (H,)
        permuted = np.nanmean(swaps[1][:, :, heads], axis=1)  # (P, H)
    one_sided = permutation_pvalues(statistic, permuted, alternative="greater")  # (H,)
    finite = np.isfinite(one_sided)
    m = int(finite.sum())
    if m == 0:
        return _row("some_head_improves", None, None, "every head's p-value is NaN")
    smallest = np.nanmin(one_sided)
    tied = heads[finite & (one_sided == smallest)]
    best = best_of(pooled.estimate, tied)
    best = int(tied[0]) if best is None else best
    lower, upper = simultaneous_bounds(
        pooled.estimate[heads], pooled.se[heads], pooled.df[heads], settings.alpha, m
    )
    floor = 1.0 / (1.0 + settings.permutations)
    note = (
        f"Bonferroni over {m} heads of one-sided joint-swap permutation p-values; ci_low: this "
        f"head's simultaneous lower bound, ci_high: the largest simultaneous upper bound over the heads"
    )
    if m * floor >= settings.alpha:
        need = m / settings.alpha
        note += (
            f"; {settings.permutations} permutations cannot reach alpha over {m} heads (need > {need:.0f})"
        )
    nan_heads = int((~np.isfinite(pooled.estimate[heads])).sum())
    if nan_heads:
        note += f"; {nan_heads} head(s) with a NaN delta left out"
    inference = Inference(
        np.array([pooled.estimate[best]]),
        np.array([pooled.se[best]]),
        np.array([pooled.df[best]]),
        np.array([lower[list(heads).index(best)]]),
        np.array([np.nanmax(upper)]),
        np.array([min(1.0, m * smallest)]),
    )
    return _row("some_head_improves", names[best], inference, note)
