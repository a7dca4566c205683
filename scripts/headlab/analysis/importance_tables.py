"""The tables of the importance experiments (issue 21): attribution estimates, Michel's importance,
pruning curves; built from arrays, with fixed schemas and sorted rows.

- attribution (`ATTRIBUTION_SCHEMA`): per dev example x head x mode, `estimate` = the first-order
  change in the example's score when the head alone is disabled (`headlab.model.attribution`);
- importance per example (`IMPORTANCE_EXAMPLES_SCHEMA`): `value` = |dL/dxi_h| on the sample;
  aggregated (`IMPORTANCE_SCHEMA`): its mean over the sample (`importance`) and Michel's
  per-layer normalisation (`importance_normalized`);
- pruning (`PRUNING_SCHEMA`, `PRUNING_PREDICTIONS_SCHEMA`): per order x draw x step, the dev
  metric and every example's prediction and score.
Heads and layers are 1-based; `example` is the split table's `row`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import polars as pl

from headlab.analysis.metrics import compute_metrics, predictions_from_logits
from headlab.analysis.scoring import example_scores
from headlab.data.tasks import TaskSpec
from headlab.heads import head_name

_KEY = {"model": pl.String(), "task": pl.String(), "seed": pl.Int64()}
_HEAD = {"layer": pl.Int32(), "head": pl.Int32()}
ATTRIBUTION_SCHEMA = {**_KEY, "mode": pl.String(), "example": pl.Int64(), **_HEAD, "estimate": pl.Float64()}
IMPORTANCE_EXAMPLES_SCHEMA = {
    **_KEY,
    "split": pl.String(),
    "example": pl.Int64(),
    **_HEAD,
    "value": pl.Float64(),
}
IMPORTANCE_SCHEMA = {
    **_KEY,
    "split": pl.String(),
    **_HEAD,
    "importance": pl.Float64(),
    "importance_normalized": pl.Float64(),
    "n_examples": pl.Int64(),
}
_LEVEL = {
    "order": pl.String(),
    "draw": pl.Int64(),
    "step": pl.Int64(),
    "n_pruned": pl.Int64(),
    "share_pruned": pl.Float64(),
}
PRUNING_SCHEMA = {
    **_KEY,
    **_LEVEL,
    "removed": pl.String(),
    "metric": pl.String(),
    "value": pl.Float64(),
    "n_examples": pl.Int64(),
}
PRUNING_PREDICTIONS_SCHEMA = {
    **_KEY,
    **_LEVEL,
    "example": pl.Int64(),
    "prediction": pl.Float64(),
    "label": pl.Float64(),
    "score": pl.Float64(),
}


class CurveLevel(Protocol):
    """One level of a pruning curve (`headlab.model.pruning_curve.Level`)."""

    step: int
    n_pruned: int
    removed: tuple[tuple[int, int], ...]
    logits: np.ndarray  # (examples, labels)
    also_removed: tuple[tuple[int, int], ...] | None  # a cross-fitted curve's second order


def _per_head(values: np.ndarray, examples: np.ndarray) -> dict[str, np.ndarray]:
    """example, layer, head and value columns of (examples, layers, heads), example-major."""
    n, layers, heads = values.shape
    if np.shape(examples) != (n,):
        raise ValueError(f"{np.shape(examples)} example keys for {n} examples")
    return {
        "example": np.repeat(np.asarray(examples, dtype=np.int64), layers * heads),
        "layer": np.tile(np.repeat(np.arange(1, layers + 1, dtype=np.int32), heads), n),
        "head": np.tile(np.arange(1, heads + 1, dtype=np.int32), n * layers),
        "value": values.reshape(-1).astype(np.float64),  # (examples * layers * heads,)
    }


def attribution_table(
    model: str, task: str, seed: int, estimates: Mapping[str, np.ndarray], examples: np.ndarray
) -> pl.DataFrame:
    """Rows per mode x example x head of estimates {mode: (examples, layers, heads)}."""
    frames = []
    for mode, values in estimates.items():
        columns = _per_head(values, examples)
        columns["estimate"] = columns.pop("value")
        frames.append(pl.DataFrame({"model": model, "task": task, "seed": seed, "mode": mode, **columns}))
    table = pl.concat(frames).select(list(ATTRIBUTION_SCHEMA)).cast(ATTRIBUTION_SCHEMA)  # type: ignore[arg-type]
    return table.sort("mode", "example", "layer", "head")


def importance_tables(
    model: str, task: str, seed: int, split: str, values: np.ndarray, examples: np.ndarray
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per example, aggregated) importance tables of |dL/dxi| values (examples, layers, heads)."""
    key = {"model": model, "task": task, "seed": seed, "split": split}
    per_example = pl.DataFrame({**key, **_per_head(values, examples)}).cast(IMPORTANCE_EXAMPLES_SCHEMA)  # type: ignore[arg-type]
    mean = values.mean(axis=0)  # (layers, heads)
    norms = np.linalg.norm(mean, axis=1, keepdims=True)  # (layers, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalized = np.where(norms > 0, mean / norms, np.nan)  # a layer of zeros has no direction
    layers, heads = mean.shape
    aggregated = pl.DataFrame(
        {
            **key,
            "layer": np.repeat(np.arange(1, layers + 1), heads),
            "head": np.tile(np.arange(1, heads + 1), layers),
            "importance": mean.reshape(-1),
            "importance_normalized": normalized.reshape(-1),
            "n_examples": values.shape[0],
        }
    ).cast(IMPORTANCE_SCHEMA)  # type: ignore[arg-type]
    return per_example.sort("example", "layer", "head"), aggregated


def removed_names(level: CurveLevel) -> str:
    """The heads a level removed, 'L1-H2,L3-H4'; a cross-fitted level's two orders as 'first|second'."""
    names = [
        ",".join(head_name(layer + 1, head + 1) for layer, head in removed)
        for removed in (level.removed, level.also_removed)
        if removed is not None
    ]
    return "|".join(names)


def head_score_deltas(
    sweep: pl.DataFrame, layers: int, heads: int, examples: np.ndarray | None = None
) -> np.ndarray:
    """(layers, heads) mean over examples (those of `examples`, every one when None) of each
    single head's score delta in one seed's sweep predictions (score under the head's mask minus
    the baseline's, per example); an error if a head or the scores are missing."""
    if examples is not None:
        sweep = sweep.filter(pl.col("example").is_in(np.asarray(examples, dtype=np.int64).tolist()))
    base = sweep.filter(pl.col("kind") == "baseline").select("example", base="score")
    if examples is not None and base["example"].n_unique() != len(set(np.asarray(examples).tolist())):
        raise ValueError(
            f"the sweep's baseline has {base['example'].n_unique()} of the {len(examples)} examples asked for"
        )
    rows = sweep.filter(pl.col("kind") == "head").join(base, on="example", how="inner")
    means = rows.group_by("layer", "head").agg((pl.col("score") - pl.col("base")).mean().alias("delta"))
    if means.height != layers * heads or means["delta"].is_nan().any() or means["delta"].is_null().any():
        raise ValueError(
            f"the sweep has score deltas for {means.height} of {layers * heads} heads (or NaN scores): "
            "the delta order needs the single-head sweep with per-example scores"
        )
    out = np.empty((layers, heads))
    for row in means.iter_rows(named=True):
        out[row["layer"] - 1, row["head"] - 1] = row["delta"]
    return out


def pruning_tables(
    model: str,
    task: TaskSpec,
    seed: int,
    curves: Sequence[tuple[str, int, Sequence[CurveLevel]]],
    total_heads: int,
    gold: np.ndarray,
    examples: np.ndarray,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(metric table, predictions table) of curves given as (order, draw, levels)."""
    metric_rows, frames = [], []
    for order, draw, levels in curves:
        for level in levels:
            level_key = {
                "order": order,
                "draw": draw,
                "step": level.step,
                "n_pruned": level.n_pruned,
                "share_pruned": level.n_pruned / total_heads,
            }
            predicted = predictions_from_logits(level.logits, task.is_regression)
            for metric, value in compute_metrics(task.metrics, predicted, gold).items():
                metric_rows.append(
                    {
                        "model": model,
                        "task": task.name,
                        "seed": seed,
                        **level_key,
                        "removed": removed_names(level),
                        "metric": metric,
                        "value": value,
                        "n_examples": len(gold),
                    }
                )
            frames.append(
                pl.DataFrame(
                    {
                        "model": model,
                        "task": task.name,
                        "seed": seed,
                        **level_key,
                        "example": np.asarray(examples, dtype=np.int64),
                        "prediction": np.asarray(predicted, dtype=np.float64),
                        "label": np.asarray(gold, dtype=np.float64),
                        "score": example_scores(level.logits, gold, task.is_regression),
                    }
                )
            )
    metrics = pl.DataFrame(metric_rows, schema=PRUNING_SCHEMA)
    predictions = pl.concat(frames).cast(PRUNING_PREDICTIONS_SCHEMA)  # type: ignore[arg-type]
    return metrics, predictions
