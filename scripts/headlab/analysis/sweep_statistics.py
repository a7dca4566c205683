"""Intervals, tests and selection-aware estimates of one sweep (model x task x mode, every seed).

Input: the per-example predictions of the sweep and named-mask jobs of every seed (schema
`headlab.analysis.scoring.SWEEP_PREDICTIONS_SCHEMA`). Output, per metric of the task:

* `statistics`: one row per mask x scope. Scope "seed": that seed's delta with its paired
  bootstrap interval and p-value (sign-flip permutation for accuracy, bootstrap otherwise);
  scope "pooled": the mean delta over seeds, its two-level bootstrap interval and p-value.
  `q_value` is Benjamini-Hochberg over the sweep's masks (every single head and layer) of one
  scope and seed; named masks are their own family. `significant`: q < alpha.
* `selection`: the estimates that depend on choosing a head, with intervals (scope pooled):
  - `random_head`: the mean delta over all single heads (disabling a head chosen at random);
  - `best_head_naive`: the head with the largest mean delta, scored on the same data (the
    paper's number; biased upward by the choice among all heads);
  - `best_head_split`: the head chosen on a seeded half of the dev examples, scored on the other
    half (its interval is a two-level bootstrap over that half);
  - `best_head_cross_seed`: each seed's best head scored in every other seed (mean over the
    ordered pairs; `share_improving`: the share of pairs in which it improves). NaN with a
    note when there is one seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from headlab.analysis.resampling import weighted_metric
from headlab.analysis.significance import (
    benjamini_hochberg,
    bootstrap_pvalues,
    paired_deltas,
    percentile_interval,
    sign_flip_pvalues,
    subset_deltas,
    two_level,
)

SWEEP_KINDS = ("head", "layer")
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
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "p_value": pl.Float64(),
    "test": pl.String(),
    "q_value": pl.Float64(),
    "significant": pl.Boolean(),
    "n_examples": pl.Int64(),
    "n_resamples": pl.Int64(),
}
SELECTION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "mode": pl.String(),
    "metric": pl.String(),
    "estimate": pl.String(),
    "mask": pl.String(),
    "delta": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "p_value": pl.Float64(),
    "share_improving": pl.Float64(),
    "n_seeds": pl.Int64(),
    "n_examples": pl.Int64(),
    "note": pl.String(),
}


@dataclass(frozen=True)
class StatisticsSettings:
    resamples: int = 1000  # bootstrap resamples
    permutations: int = 10000  # sign-flip permutations (accuracy): p >= 1 / (1 + permutations)
    alpha: float = 0.05  # 1 - the intervals' level, and the BH threshold
    seed: int = 0  # of every resample, permutation and the split into halves


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
        sweeps.append(SeedSweep(int(seed), pred, gold))
    return sweeps


def _observed(metric: str, sweep: SeedSweep) -> np.ndarray:
    """(masks,) the metric of every mask on all examples."""
    return weighted_metric(metric, np.ones((1, sweep.gold.size)), sweep.pred, sweep.gold)[0]


def _tests(
    metric: str,
    sweep: SeedSweep,
    base: int,
    value: np.ndarray,
    replicates: np.ndarray,
    settings: StatisticsSettings,
    rng: np.random.Generator,
) -> tuple[np.ndarray, str]:
    if metric == "accuracy":
        correct = sweep.pred == sweep.gold[None]  # (masks, examples)
        return sign_flip_pvalues(correct, correct[base], settings.permutations, rng), "sign-flip permutation"
    return bootstrap_pvalues(replicates, value - value[base]), "paired bootstrap"


def _q_values(p: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """BH within the sweep's masks (heads and layers) and, separately, within the named masks."""
    q = np.full(p.shape, np.nan)
    for family in (np.isin(kinds, SWEEP_KINDS), kinds == "named"):
        if family.any():
            q[family] = benjamini_hochberg(p[family])
    return q


def _rows(
    keys: dict[str, object],
    masks: pl.DataFrame,
    scope: dict[str, object],
    value: np.ndarray,
    baseline: float,
    delta: np.ndarray,
    interval: tuple[np.ndarray, np.ndarray],
    p: np.ndarray,
    test: str,
    alpha: float,
    counts: dict[str, int],
) -> pl.DataFrame:
    kinds = masks["kind"].to_numpy()
    q = _q_values(np.where(kinds == "baseline", np.nan, p), kinds)
    frame = masks.with_columns(
        value=pl.Series(value),
        baseline=pl.lit(baseline),
        delta=pl.Series(delta),
        ci_low=pl.Series(interval[0]),
        ci_high=pl.Series(interval[1]),
        p_value=pl.Series(p),
        test=pl.lit(test),
        q_value=pl.Series(q),
    ).with_columns(significant=pl.col("q_value") < alpha)
    frame = frame.with_columns(**{k: pl.lit(v) for k, v in {**keys, **scope, **counts}.items()})
    return frame.select([pl.col(c).cast(t) for c, t in STATISTICS_SCHEMA.items()])


def sweep_statistics(
    predictions: pl.DataFrame, metrics: list[str], settings: StatisticsSettings
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(statistics, selection) of one model x task x mode's predictions, every seed, each metric."""
    first = predictions.row(0, named=True)
    masks = _masks_of(predictions)
    if "baseline" not in masks["mask"].to_list():
        raise ValueError("the predictions have no baseline rows (mask 'baseline')")
    base = masks["mask"].to_list().index("baseline")
    heads = np.flatnonzero(masks["kind"].to_numpy() == "head")
    sweeps = seed_sweeps(predictions, masks)
    statistics, selection = [], []
    for metric in metrics:
        rng = np.random.default_rng([settings.seed, 0, metrics.index(metric)])  # the split: [seed, 1]
        keys = {"model": first["model"], "task": first["task"], "mode": first["mode"], "metric": metric}
        counts = {"n_examples": sweeps[0].gold.size, "n_resamples": settings.resamples}
        observed, per_seed = [], []
        for sweep in sweeps:
            value = _observed(metric, sweep)
            replicates = paired_deltas(
                metric, sweep.pred, sweep.pred[base], sweep.gold, settings.resamples, rng
            )
            p, test = _tests(metric, sweep, base, value, replicates, settings, rng)
            scope = {"scope": "seed", "seed": sweep.seed, "n_seeds": 1}
            interval = percentile_interval(replicates, settings.alpha)
            statistics.append(
                _rows(
                    keys,
                    masks,
                    scope,
                    value,
                    value[base],
                    value - value[base],
                    interval,
                    p,
                    test,
                    settings.alpha,
                    counts,
                )
            )
            observed.append(value)
            per_seed.append(replicates)
        values = np.stack(observed)  # (seeds, masks)
        deltas = values - values[:, base : base + 1]  # (seeds, masks)
        pooled = two_level(np.stack(per_seed), rng)  # (B, masks)
        scope = {"scope": "pooled", "seed": None, "n_seeds": len(sweeps)}
        statistics.append(
            _rows(
                keys,
                masks,
                scope,
                values.mean(0),
                float(values[:, base].mean()),
                deltas.mean(0),
                percentile_interval(pooled, settings.alpha),
                bootstrap_pvalues(pooled, deltas.mean(0)),
                "two-level bootstrap",
                settings.alpha,
                counts,
            )
        )
        estimates = _selection(
            metric, sweeps, base, heads, masks, deltas, pooled, np.stack(per_seed), settings, rng
        )
        selection.append(
            pl.DataFrame(
                [
                    {**keys, **row, "n_seeds": len(sweeps), "n_examples": counts["n_examples"]}
                    for row in estimates
                ],
                schema=SELECTION_SCHEMA,
            )
        )
    return pl.concat(statistics), pl.concat(selection)


def _estimate(
    name: str, mask: str | None, delta: float, replicates: np.ndarray | None, alpha: float, **extra: object
) -> dict[str, object]:
    if replicates is None:
        low = high = p = float("nan")
    else:
        lows, highs = percentile_interval(replicates[:, None], alpha)
        p = float(bootstrap_pvalues(replicates[:, None], np.array([delta]))[0])
        low, high = float(lows[0]), float(highs[0])
    return {
        "estimate": name,
        "mask": mask,
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "share_improving": extra.get("share_improving"),
        "note": extra.get("note"),
    }


def _selection(
    metric: str,
    sweeps: list[SeedSweep],
    base: int,
    heads: np.ndarray,
    masks: pl.DataFrame,
    deltas: np.ndarray,
    pooled: np.ndarray,
    per_seed: np.ndarray,
    settings: StatisticsSettings,
    rng: np.random.Generator,
) -> list[dict[str, object]]:
    names = masks["mask"].to_list()
    alpha = settings.alpha
    if heads.size == 0:
        return [
            _estimate(e, None, float("nan"), None, alpha, note="no single-head masks")
            for e in ("random_head", "best_head_naive", "best_head_split", "best_head_cross_seed")
        ]
    mean_delta = deltas.mean(0)  # (masks,)
    rows = [_estimate("random_head", None, float(mean_delta[heads].mean()), pooled[:, heads].mean(1), alpha)]
    best = heads[int(np.argmax(mean_delta[heads]))]
    rows.append(
        _estimate(
            "best_head_naive",
            names[best],
            float(mean_delta[best]),
            pooled[:, best],
            alpha,
            note="chosen and scored on the same examples (biased upward)",
        )
    )
    # split: choose on half A (exact deltas, mean over seeds), score on half B
    n = sweeps[0].gold.size
    order = np.random.default_rng([settings.seed, 1]).permutation(n)
    half_a, half_b = np.sort(order[: n // 2]), np.sort(order[n // 2 :])
    on_a = np.mean(
        [subset_deltas(metric, s.pred[heads], s.pred[base], s.gold, half_a) for s in sweeps], axis=0
    )
    chosen = heads[int(np.nanargmax(on_a))] if np.isfinite(on_a).any() else heads[0]
    on_b = [subset_deltas(metric, s.pred[chosen], s.pred[base], s.gold, half_b)[0] for s in sweeps]
    b_replicates = np.stack(
        [
            paired_deltas(metric, s.pred[chosen], s.pred[base], s.gold, settings.resamples, rng, among=half_b)
            for s in sweeps
        ]
    )  # (seeds, B, 1)
    rows.append(
        _estimate(
            "best_head_split",
            names[chosen],
            float(np.mean(on_b)),
            two_level(b_replicates, rng)[:, 0],
            alpha,
            note=f"chosen on {half_a.size} examples, scored on the other {half_b.size}",
        )
    )
    if len(sweeps) < 2:
        rows.append(
            _estimate(
                "best_head_cross_seed", None, float("nan"), None, alpha, note="needs at least two seeds"
            )
        )
        return rows
    pairs = [(i, j) for i in range(len(sweeps)) for j in range(len(sweeps)) if i != j]
    best_of = [heads[int(np.argmax(deltas[i, heads]))] for i in range(len(sweeps))]
    scored = np.array([deltas[j, best_of[i]] for i, j in pairs])
    replicates = np.stack([per_seed[j, :, best_of[i]] for i, j in pairs]).mean(0)  # (B,)
    rows.append(
        _estimate(
            "best_head_cross_seed",
            ",".join(names[b] for b in best_of),
            float(scored.mean()),
            replicates,
            alpha,
            share_improving=float((scored > 0).mean()),
            note=f"each seed's best head scored in the {len(sweeps) - 1} other seed(s)",
        )
    )
    return rows
