"""Intervals, tests and selection-aware estimates of one sweep (model x task x mode, every seed).

Input: the per-example predictions of the sweep and named-mask jobs of every seed (schema
`headlab.analysis.scoring.SWEEP_PREDICTIONS_SCHEMA`). Every seed is scored on the same dev
examples, so examples are crossed with seeds (`headlab.analysis.significance`). Output, per
metric of the task:

* `statistics`: one row per mask x scope. Scope "seed": that seed's delta, its percentile
  bootstrap interval and the paired permutation (swap) p-value. Scope "pooled": the mean delta
  over seeds, the expected delta over fine-tuning seeds and over dev examples like these, with a
  t interval of the crossed variance (example part + seed part; `se`, `df`) and
  p = max(t p-value, joint-swap permutation p-value). `q_value` is Benjamini-Hochberg within one
  family of one scope and seed: the single heads, the layers, the named masks (Figure 8 marks
  the heads' family). `significant`: q < alpha.
* `selection`: the estimates that depend on choosing a head (scope pooled):
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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from headlab.analysis.significance import (
    Inference,
    StatisticsSettings,
    benjamini_hochberg,
    crossed_deltas,
    observed_deltas,
    permutation_pvalues,
    pooled_inference,
    seed_inference,
    simultaneous_bounds,
    swap_deltas,
)

__all__ = ["SeedSweep", "StatisticsSettings", "seed_sweeps", "sweep_statistics"]

SWEEP_KINDS = ("head", "layer")
# Families of Benjamini-Hochberg: each kind of mask on its own.
FAMILIES = ("head", "layer", "named")
STATISTICS_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "mode": pl.String(),
    "metric": pl.String(),
    "scope": pl.String(),  # seed | pooled
    "seed": pl.Int64(),  # null when pooled
    "n_seeds": pl.Int64(),
    "mask": pl.String(),
    "kind": pl.String(),
    "layer": pl.Int32(),
    "head": pl.Int32(),
    "value": pl.Float64(),
    "baseline": pl.Float64(),
    "delta": pl.Float64(),
    "se": pl.Float64(),
    "df": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "p_value": pl.Float64(),
    "test": pl.String(),
    "q_value": pl.Float64(),
    "significant": pl.Boolean(),
    "n_examples": pl.Int64(),
    "n_resamples": pl.Int64(),
    "n_permutations": pl.Int64(),
}
SELECTION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "mode": pl.String(),
    "metric": pl.String(),
    "estimate": pl.String(),
    "mask": pl.String(),
    "delta": pl.Float64(),
    "se": pl.Float64(),
    "df": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "p_value": pl.Float64(),
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
SEED_TEST = "paired permutation (swap)"
POOLED_TEST = "max(crossed t, joint-swap permutation)"


@dataclass(frozen=True)
class SeedSweep:
    """One seed's sweep as matrices: masks in a fixed order."""

    seed: int
    pred: np.ndarray  # (masks, examples), the baseline included
    gold: np.ndarray  # (examples,)


def _masks_of(predictions: pl.DataFrame) -> pl.DataFrame:
    """The masks (mask, kind, layer, head) in the order of their first rows."""
    return predictions.select("mask", "kind", "layer", "head").unique(subset="mask", maintain_order=True)


def seed_sweeps(predictions: pl.DataFrame, masks: pl.DataFrame) -> list[SeedSweep]:
    """Per seed (ascending), the predictions as a (masks, examples) matrix; an error naming the
    seed when its masks or examples differ from the others'."""
    names = masks["mask"].to_list()
    sweeps = []
    reference: np.ndarray | None = None
    for seed in sorted(predictions["seed"].unique().to_list()):
        rows = predictions.filter(pl.col("seed") == seed)
        found = set(rows["mask"].unique().to_list())
        if found != set(names):
            raise ValueError(
                f"seed {seed}: masks {sorted(found ^ set(names))} are not in every seed's predictions"
            )
        order = pl.DataFrame({"mask": names, "position": np.arange(len(names))})
        rows = rows.join(order, on="mask").sort("position", "example")
        n = rows.filter(pl.col("mask") == "baseline").height
        if rows.height != n * len(names):
            raise ValueError(f"seed {seed}: the masks do not have the same {n} examples")
        per_mask = rows["example"].to_numpy().reshape(len(names), n)  # (masks, examples)
        examples = per_mask[names.index("baseline")]
        differ = [names[i] for i in np.flatnonzero((per_mask != examples[None]).any(axis=1))]
        if differ or np.unique(examples).size != n:
            raise ValueError(
                f"seed {seed}: masks {differ or ['baseline']} do not have the baseline's "
                f"{n} distinct examples"
            )
        if reference is not None and not np.array_equal(examples, reference):
            raise ValueError(f"seed {seed}: its dev examples differ from the first seed's")
        reference = examples
        pred = rows["prediction"].to_numpy().reshape(len(names), n)
        gold = rows.filter(pl.col("mask") == "baseline")["label"].to_numpy()
        if sweeps and not np.array_equal(gold, sweeps[0].gold, equal_nan=True):
            raise ValueError(
                f"seed {seed}: its gold labels differ from the first seed's on the same examples"
            )
        sweeps.append(SeedSweep(int(seed), pred, gold))
    return sweeps


def best_of(deltas: np.ndarray, candidates: np.ndarray) -> int | None:
    """The candidate index with the largest finite delta (the first on ties); None when every
    candidate's delta is NaN (a NaN is never "best")."""
    values = deltas[candidates]
    if not np.isfinite(values).any():
        return None
    return int(candidates[np.nanargmax(values)])


@dataclass(frozen=True)
class Sweep:
    """Every seed's sweep of one metric as arrays, with the selection-built masks appended."""

    metric: str
    pred: np.ndarray  # (S, K, n): the masks (baseline excluded), then the built ones
    base: np.ndarray  # (S, n)
    gold: np.ndarray  # (n,)
    masks: int  # K of the sweep's own masks


def _halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng([seed, 1]).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def _chosen_on_halves(
    metric: str, pred: np.ndarray, base: np.ndarray, gold: np.ndarray, heads: np.ndarray, halves: tuple
) -> list[list[int | None]]:
    """[seed][half] the head with the largest delta on that half of that seed's examples."""
    return [
        [best_of(observed_deltas(metric, pred, base, gold, rows)[s], heads) for rows in halves]
        for s in range(pred.shape[0])
    ]


def _combined(pred_s: np.ndarray, chosen: list[int | None], halves: tuple, n: int) -> np.ndarray | None:
    """(n,) each example predicted by the head chosen on the other half (None if one is None)."""
    on_a, on_b = chosen
    if on_a is None or on_b is None:
        return None
    out = np.empty(n)
    out[halves[1]] = pred_s[on_a, halves[1]]  # chosen on A scores B
    out[halves[0]] = pred_s[on_b, halves[0]]
    return out


def _selection_masks(
    metric: str, pred: np.ndarray, base: np.ndarray, gold: np.ndarray, heads: np.ndarray, seed: int
) -> tuple[np.ndarray, dict[str, object]]:
    """(built masks (S, E, n), what was chosen): E = 1 cross-fitted mask (chosen on the pooled
    halves) + S - 1 cross-seed masks (column r of seed j: chosen in seed (j + r) mod S)."""
    seeds, _, n = pred.shape
    halves = _halves(n, seed)
    pooled_choice = [
        best_of(np.nanmean(observed_deltas(metric, pred, base, gold, rows), axis=0), heads) for rows in halves
    ]
    per_seed = _chosen_on_halves(metric, pred, base, gold, heads, halves)
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


def _family_q(p: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """BH within each family of FAMILIES."""
    q = np.full(p.shape, np.nan)
    for family in FAMILIES:
        members = kinds == family
        if members.any():
            q[members] = benjamini_hochberg(p[members])
    return q


def _rows(
    keys: dict[str, object],
    masks: pl.DataFrame,
    scope: dict[str, object],
    value: np.ndarray,
    baseline: float,
    inference: Inference,
    test: str,
    alpha: float,
) -> pl.DataFrame:
    """The statistics rows of the masks (baseline first: delta 0, no test)."""
    kinds = masks["kind"].to_numpy()
    pad = lambda x, fill: np.concatenate([[fill], x])  # noqa: E731  the baseline's row
    p = pad(inference.p, np.nan)
    frame = masks.with_columns(
        value=pl.Series(value),
        baseline=pl.lit(baseline),
        delta=pl.Series(pad(inference.estimate, 0.0)),
        se=pl.Series(pad(inference.se, 0.0)),
        df=pl.Series(pad(inference.df, np.inf)),
        ci_low=pl.Series(pad(inference.low, 0.0)),
        ci_high=pl.Series(pad(inference.high, 0.0)),
        p_value=pl.Series(p),
        test=pl.lit(test),
        q_value=pl.Series(_family_q(p, kinds)),
    ).with_columns(significant=pl.col("q_value") < alpha)
    frame = frame.with_columns(**{k: pl.lit(v) for k, v in {**keys, **scope}.items()})
    return frame.select([pl.col(c).cast(t) for c, t in STATISTICS_SCHEMA.items()])


def _take(inference: Inference, columns: np.ndarray | slice) -> Inference:
    return Inference(*(np.atleast_1d(getattr(inference, f)[columns]) for f in Inference.__dataclass_fields__))


def sweep_statistics(
    predictions: pl.DataFrame, metrics: list[str], settings: StatisticsSettings
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(statistics, selection) of one model x task x mode's predictions, every seed, each metric."""
    first = predictions.row(0, named=True)
    masks = _masks_of(predictions)
    names = masks["mask"].to_list()
    if "baseline" not in names:
        raise ValueError("the predictions have no baseline rows (mask 'baseline')")
    base_index = names.index("baseline")
    if base_index != 0:  # the baseline first: rows of the other masks follow in their order
        masks = pl.concat([masks[base_index : base_index + 1], masks.filter(pl.col("mask") != "baseline")])
        names = masks["mask"].to_list()
    kinds = masks["kind"].to_numpy()[1:]
    heads = np.flatnonzero(kinds == "head")  # indices among the non-baseline masks
    sweeps = seed_sweeps(predictions, masks)
    pred = np.stack([s.pred[1:] for s in sweeps])  # (S, K, n)
    base = np.stack([s.pred[0] for s in sweeps])  # (S, n)
    gold = sweeps[0].gold
    statistics, selection = [], []
    for index, metric in enumerate(metrics):
        keys = {"model": first["model"], "task": first["task"], "mode": first["mode"], "metric": metric}
        counts = {
            "n_examples": gold.size,
            "n_resamples": settings.resamples,
            "n_permutations": settings.permutations,
        }
        built, chosen = (
            _selection_masks(metric, pred, base, gold, heads, settings.seed)
            if heads.size
            else (np.empty((len(sweeps), 0, gold.size)), {})
        )
        everything = np.concatenate([pred, built], axis=1)  # (S, K + E, n)
        rng = np.random.default_rng([settings.seed, 0, index])
        observed = observed_deltas(metric, everything, base, gold)  # (S, K + E)
        replicates = crossed_deltas(metric, everything, base, gold, settings.resamples, rng)
        swaps = swap_deltas(metric, everything, base, gold, settings.permutations, rng)
        values = observed + _baseline_values(metric, base, gold)[:, None]  # (S, K + E)
        k = pred.shape[1]
        for s, sweep in enumerate(sweeps):
            p = permutation_pvalues(swaps[0][s], swaps[1][:, s])
            inference = seed_inference(observed[s, :k], replicates[:, s, :k], p[:k], settings.alpha)
            baseline = float(values[s, 0] - observed[s, 0])
            statistics.append(
                _rows(
                    {**keys, **counts},
                    masks,
                    {"scope": "seed", "seed": sweep.seed, "n_seeds": 1},
                    np.concatenate([[baseline], values[s, :k]]),
                    baseline,
                    inference,
                    SEED_TEST,
                    settings.alpha,
                )
            )
        pooled = pooled_inference(observed, replicates, settings.alpha, swaps)
        baseline = float(np.mean(values[:, 0] - observed[:, 0]))
        statistics.append(
            _rows(
                {**keys, **counts},
                masks,
                {"scope": "pooled", "seed": None, "n_seeds": len(sweeps)},
                np.concatenate([[baseline], np.nanmean(values[:, :k], axis=0)]),
                baseline,
                _take(pooled, slice(0, k)),
                POOLED_TEST,
                settings.alpha,
            )
        )
        rows = _selection(
            observed, replicates, swaps, pooled, heads, k, chosen, names[1:], len(sweeps), settings
        )
        selection.append(
            pl.DataFrame(
                [{**keys, **row, "n_seeds": len(sweeps), "n_examples": gold.size} for row in rows],
                schema=SELECTION_SCHEMA,
            )
        )
    return pl.concat(statistics), pl.concat(selection)


def _baseline_values(metric: str, base: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(S,) the baseline's metric in each seed."""
    from headlab.analysis.resampling import weighted_metric

    return weighted_metric(metric, np.ones((1, gold.size)), base, gold)[0]


def _row(
    name: str, mask: str | None, inference: Inference | None, note: str | None = None, **extra: object
) -> dict[str, object]:
    nan = float("nan")
    fields = (
        inference.row()
        if inference is not None
        else dict.fromkeys(("delta", "se", "df", "ci_low", "ci_high", "p_value"), nan)
    )
    return {
        "estimate": name,
        "mask": mask,
        **fields,
        "share_improving": extra.get("share_improving"),
        "n_ties": extra.get("n_ties"),
        "note": note,
    }


def _selection(
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
            None if naive is None else _take(pooled, np.array([naive])),
            "a description, not a test: chosen and scored on the same examples (biased upward)",
        )
    )
    halves = chosen["halves"]
    split_names = [None if h is None else names[h] for h in chosen["split"]]
    rows.append(
        _row(
            "best_head_split",
            "/".join(str(n) for n in split_names),
            _take(pooled, np.array([k])) if chosen["usable"]["split"] else None,
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
