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
* `selection`: the selection-aware estimates of `headlab.analysis.head_selection`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from headlab.analysis.head_selection import (
    ESTIMATES,
    SELECTION_SCHEMA,
    best_of,
    halves_of,
    selection_masks,
    selection_rows,
)
from headlab.analysis.significance import (
    INFERENCE_COLUMNS,
    Inference,
    StatisticsSettings,
    benjamini_hochberg,
    crossed_deltas,
    observed_deltas,
    permutation_pvalues,
    pooled_inference,
    seed_inference,
    swap_deltas,
)

__all__ = [
    "ESTIMATES",
    "SELECTION_SCHEMA",
    "SeedSweep",
    "StatisticsSettings",
    "best_of",
    "halves_of",
    "seed_sweeps",
    "sweep_statistics",
]

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
    **dict.fromkeys(INFERENCE_COLUMNS, pl.Float64()),
    "test": pl.String(),
    "q_value": pl.Float64(),
    "significant": pl.Boolean(),
    "n_examples": pl.Int64(),
    "n_resamples": pl.Int64(),
    "n_permutations": pl.Int64(),
}
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
            selection_masks(metric, pred, base, gold, heads, settings.seed)
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
                pooled.take(slice(0, k)),
                POOLED_TEST,
                settings.alpha,
            )
        )
        rows = selection_rows(
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
