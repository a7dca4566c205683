"""Per-example tables of issue 21 as arrays aligned on seeds, masks (or heads) and examples.

* `score_sweep`: one mode's sweep predictions (`SWEEP_PREDICTIONS_SCHEMA` plus the column
  `score`, every seed) as a `ScoreSweep`: score and prediction matrices (seeds, masks, examples)
  read by `headlab.analysis.sweep_statistics.seed_sweeps` (which checks that every seed has the
  same masks, examples and gold labels). A mask's per-example *score delta* is its score minus
  the baseline's on the same example; the mean of these over the dev examples is the exact
  delta of the mean score.
* `head_values`: a long per-example table keyed by (seed, layer, head, example) (the
  attribution table's `estimate`, the importance table's `value`) as an array (seeds, heads,
  examples) in a given order of heads and examples; an error naming what is missing or
  repeated.
* `weighted_means`: the means over examples of any (..., examples) array under bootstrap
  counts (B, examples): the replicates of a mean (score, score delta, estimate) on resampled
  examples, one matrix product.
* `interval_fields`: a statistic's table fields value, ci_low, ci_high: its observed value and
  the percentile interval of its replicates (`headlab.analysis.significance.percentile_interval`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from headlab.analysis.significance import percentile_interval
from headlab.analysis.sweep_statistics import seed_sweeps

HEAD_KEYS = ("layer", "head")


@dataclass(frozen=True)
class ScoreSweep:
    """One mode's sweep of every seed as matrices, the masks in the order of their first rows."""

    seeds: list[int]
    masks: pl.DataFrame  # mask, kind, layer, head
    examples: np.ndarray  # (n,) the dev rows, ascending
    score: np.ndarray  # (S, masks, n) per-example scores
    pred: np.ndarray  # (S, masks, n) per-example predictions
    gold: np.ndarray  # (n,)

    @property
    def base(self) -> int:
        """The index of the baseline among the masks."""
        return self.masks["mask"].to_list().index("baseline")

    def of_kind(self, kind: str) -> np.ndarray:
        """(K,) the indices of the masks of one kind ("head", "layer"), in the masks' order."""
        return np.flatnonzero(self.masks["kind"].to_numpy() == kind)

    def units(self, kind: str) -> pl.DataFrame:
        """The (layer, head) of the masks of one kind, in the masks' order."""
        return self.masks[self.of_kind(kind)].select(*HEAD_KEYS)

    def deltas(self, kind: str) -> np.ndarray:
        """(S, K, n) per-example score deltas of the masks of one kind."""
        return self.score[:, self.of_kind(kind)] - self.score[:, self.base][:, None]


def score_sweep(predictions: pl.DataFrame) -> ScoreSweep:
    """The `ScoreSweep` of one mode's predictions table (every seed)."""
    if "score" not in predictions.columns:
        raise ValueError("the sweep predictions have no 'score' column (per-example scores of issue 21)")
    modes = predictions["mode"].unique().to_list()
    if len(modes) != 1:
        raise ValueError(f"one mode's sweep predictions expected, got modes {sorted(modes)}")
    masks = predictions.select("mask", "kind", "layer", "head").unique(subset="mask", maintain_order=True)
    if "baseline" not in masks["mask"].to_list():
        raise ValueError("the sweep predictions have no baseline rows (mask 'baseline')")
    by_prediction = seed_sweeps(predictions, masks)
    by_score = seed_sweeps(predictions.with_columns(prediction=pl.col("score")), masks)
    first = by_prediction[0].seed
    examples = np.sort(
        predictions.filter((pl.col("seed") == first) & (pl.col("mask") == "baseline"))["example"].to_numpy()
    )
    return ScoreSweep(
        seeds=[s.seed for s in by_prediction],
        masks=masks,
        examples=examples,
        score=np.stack([s.pred for s in by_score]),  # (S, masks, n)
        pred=np.stack([s.pred for s in by_prediction]),  # (S, masks, n)
        gold=by_prediction[0].gold,
    )


def head_values(
    table: pl.DataFrame,
    column: str,
    seeds: list[int],
    heads: pl.DataFrame,
    examples: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(values (S, H, n), examples (n,)): `column` of a table keyed by seed, layer, head and
    example, for the seeds and heads (layer, head rows) in the given orders and the examples
    (default: every example of the table, ascending). Every key must be there exactly once, and
    no row of these seeds may name another head or example."""
    absent = sorted({"seed", *HEAD_KEYS, "example", column} - set(table.columns))
    if absent:
        raise ValueError(
            f"a per-example table with columns seed, layer, head, example, {column} expected; no {absent}"
        )
    if examples is None:
        examples = np.sort(table["example"].unique().to_numpy())
    keys = {
        "seed": pl.DataFrame(
            {"seed": seeds, "_s": np.arange(len(seeds))}, schema_overrides={"seed": pl.Int64}
        ),
        "head": heads.select(pl.col(c).cast(pl.Int32) for c in HEAD_KEYS).with_row_index("_h"),
        "example": pl.DataFrame({"example": np.asarray(examples, np.int64), "_e": np.arange(len(examples))}),
    }
    rows = (
        table.select(
            pl.col("seed").cast(pl.Int64), *(pl.col(c).cast(pl.Int32) for c in HEAD_KEYS), "example", column
        )
        .join(keys["seed"], on="seed")
        .join(keys["head"], on=list(HEAD_KEYS))
        .join(keys["example"], on="example")
    )
    wanted = table.filter(pl.col("seed").is_in(seeds)).height
    if rows.height != wanted:
        raise ValueError(
            f"'{column}': {wanted - rows.height} rows of seeds {seeds} have a head or an example outside "
            f"the {heads.height} heads and {len(examples)} examples expected"
        )
    shape = (len(seeds), heads.height, len(examples))
    flat = (rows["_s"].to_numpy() * shape[1] + rows["_h"].to_numpy()) * shape[2] + rows["_e"].to_numpy()
    counts = np.bincount(flat, minlength=int(np.prod(shape)))
    if (counts != 1).any():
        missing, repeated = int((counts == 0).sum()), int((counts > 1).sum())
        raise ValueError(
            f"'{column}': {missing} of the {counts.size} (seed, head, example) keys of seeds {seeds} are "
            f"missing and {repeated} repeated"
        )
    values = np.empty(counts.size)
    values[flat] = rows[column].to_numpy()
    return values.reshape(shape), np.asarray(examples)  # (S, H, n)


def weighted_means(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(B, ...) the means over the last axis of values (..., n) under weights (B, n)."""
    lead = values.shape[:-1]
    flat = values.reshape(-1, values.shape[-1])  # (prod(lead), n)
    means = (weights @ flat.T) / weights.sum(axis=1, keepdims=True)  # (B, prod(lead))
    return means.reshape(weights.shape[0], *lead)


def interval_fields(value: float, replicates: np.ndarray, alpha: float) -> dict[str, float]:
    """{value, ci_low, ci_high}: the observed value and the percentile interval of its replicates (B,)
    (NaN without enough finite replicates)."""
    replicates = np.asarray(replicates, np.float64)
    if not np.isfinite(replicates).any():  # nothing to take quantiles of
        return {"value": float(value), "ci_low": float("nan"), "ci_high": float("nan")}
    low, high = percentile_interval(replicates[:, None], alpha)
    return {"value": float(value), "ci_low": float(low[0]), "ci_high": float(high[0])}
