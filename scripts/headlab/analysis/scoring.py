"""Turn logits into the tidy score tables the workflow writes (fixed schemas, sorted rows)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from scipy.special import logsumexp

from headlab.analysis.metrics import compute_metrics, predictions_from_logits
from headlab.conditions import CONDITIONS
from headlab.data.tasks import TaskSpec
from headlab.heads import KINDS, HeadMask

# Columns that name what was scored: one seed's model and condition, or one seed's mask.
SEED_KEY = [("model", pa.string()), ("task", pa.string()), ("seed", pa.int64())]
MASK_KEY = [
    *SEED_KEY,
    ("mode", pa.string()),
    ("mask", pa.string()),
    ("kind", pa.string()),
    ("layer", pa.int32()),
    ("head", pa.int32()),
]
SCORES_SCHEMA = pa.schema(
    [
        *SEED_KEY,
        ("condition", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("n_examples", pa.int64()),
    ]
)
ABLATION_SCHEMA = pa.schema(
    [
        *MASK_KEY,
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("baseline", pa.float64()),
        ("delta", pa.float64()),
        ("n_examples", pa.int64()),
    ]
)


# Per-example outputs, so that every interval and test is recomputed from tables: `prediction`
# is the predicted class index (as a float) or the regression output, `label` the gold value,
# `score` the continuous per-example score (`example_scores`: log p(gold), or minus the squared
# error; a delta of it is far less noisy than one of accuracy),
# `example` the dev table's `row` (the key of an example in every table). Rules evaluate (key
# "condition") and the sweeps (key "mask", with its kind, layer and head).
PREDICTION_COLUMNS = [
    ("example", pa.int64()),
    ("prediction", pa.float64()),
    ("label", pa.float64()),
    ("score", pa.float64()),
]
EVALUATION_PREDICTIONS_SCHEMA = pa.schema([*SEED_KEY, ("condition", pa.string()), *PREDICTION_COLUMNS])
SWEEP_PREDICTIONS_SCHEMA = pa.schema([*MASK_KEY, *PREDICTION_COLUMNS])


def example_scores(logits: np.ndarray, gold: np.ndarray, is_regression: bool) -> np.ndarray:
    """(..., examples) score of each example from logits (..., examples, labels): the log-probability
    of the gold class, or for regression minus the squared error (higher is better for both; the
    loss of Michel et al. is its negative, `headlab.model.attribution`)."""
    values = np.asarray(logits, dtype=np.float64)
    if is_regression:
        if values.shape[-1] != 1:
            raise ValueError(f"regression logits must have one column, got {values.shape[-1]}")
        return -((values[..., 0] - np.asarray(gold, dtype=np.float64)) ** 2)
    log_probs = values - logsumexp(values, axis=-1, keepdims=True)  # (..., examples, labels)
    index = np.broadcast_to(np.asarray(gold, dtype=np.int64)[..., None], (*values.shape[:-1], 1))
    return np.take_along_axis(log_probs, index, axis=-1)[..., 0]


def score(task: TaskSpec, logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """All of the task's metrics for logits (examples, labels)."""
    return compute_metrics(task.metrics, predictions_from_logits(logits, task.is_regression), gold)


def scores_table(
    model: str, task: TaskSpec, seed: int, scores: dict[str, dict[str, float]], n_examples: int
) -> pa.Table:
    """One row per condition x metric, in CONDITIONS order then metric order."""
    rows = [
        {
            "model": model,
            "task": task.name,
            "seed": seed,
            "condition": c,
            "metric": m,
            "value": scores[c][m],
            "n_examples": n_examples,
        }
        for c in CONDITIONS
        if c in scores
        for m in task.metrics
    ]
    return pa.Table.from_pylist(rows, schema=SCORES_SCHEMA)


def _prediction_columns(
    task: TaskSpec, logits: np.ndarray, gold: np.ndarray, examples: np.ndarray
) -> dict[str, pa.Array]:
    """example, prediction, label columns of logits (keys, examples, labels), key-major;
    `examples` (examples,) the dev table's `row` of each example."""
    keys, n = logits.shape[:2]
    if np.shape(examples) != (n,):
        raise ValueError(f"{np.shape(examples)} example keys for {n} examples")
    predicted = np.stack([predictions_from_logits(logits[k], task.is_regression) for k in range(keys)])
    return {
        "example": pa.array(np.tile(np.asarray(examples, dtype=np.int64), keys)),
        "prediction": pa.array(predicted.astype(np.float64).reshape(-1)),  # (keys * examples,)
        "label": pa.array(np.tile(np.asarray(gold, dtype=np.float64), keys)),
        "score": pa.array(example_scores(logits, gold, task.is_regression).reshape(-1)),  # (keys * examples,)
    }


def _seed_key_columns(model: str, task: TaskSpec, seed: int, rows: int) -> dict[str, pa.Array]:
    """The SEED_KEY columns (model, task, seed), constant over `rows` rows."""
    return {
        "model": pa.array([model] * rows, pa.string()),
        "task": pa.array([task.name] * rows, pa.string()),
        "seed": pa.array(np.full(rows, seed, dtype=np.int64)),
    }


def predictions_table(
    model: str,
    task: TaskSpec,
    seed: int,
    logits: dict[str, np.ndarray],
    gold: np.ndarray,
    examples: np.ndarray,
) -> pa.Table:
    """Rule evaluate's per-example predictions: one row per condition x example; `examples` the
    dev table's `row` of each example."""
    stacked = np.stack(list(logits.values()))  # (conditions, examples, labels)
    n = stacked.shape[1]
    columns = {
        **_seed_key_columns(model, task, seed, len(logits) * n),
        "condition": pa.array(np.repeat(list(logits), n), pa.string()),
        **_prediction_columns(task, stacked, gold, examples),
    }
    return pa.Table.from_pydict(columns, schema=EVALUATION_PREDICTIONS_SCHEMA)


def sweep_predictions_table(
    model: str,
    task: TaskSpec,
    seed: int,
    mode: str,
    masks: Sequence[HeadMask],
    logits: np.ndarray,
    gold: np.ndarray,
    examples: np.ndarray,
) -> pa.Table:
    """A sweep's per-example predictions: one row per mask x example; `logits` (masks, examples,
    labels), `examples` the dev table's `row` of each example."""
    n = logits.shape[1]
    rows = len(masks) * n

    def per_mask(values: list[object], kind: pa.DataType) -> pa.Array:
        return pa.array(np.repeat(np.array(values, dtype=object), n).tolist(), kind)

    columns = {
        **_seed_key_columns(model, task, seed, rows),
        "mode": pa.array([mode] * rows, pa.string()),
        "mask": per_mask([m.name for m in masks], pa.string()),
        "kind": per_mask([m.kind for m in masks], pa.string()),
        "layer": per_mask([m.layer for m in masks], pa.int32()),
        "head": per_mask([m.head for m in masks], pa.int32()),
        **_prediction_columns(task, logits, gold, examples),
    }
    return pa.Table.from_pydict(columns, schema=SWEEP_PREDICTIONS_SCHEMA)


def ablation_table(
    model: str,
    task: TaskSpec,
    seed: int,
    mode: str,
    masks: Sequence[HeadMask],
    logits: np.ndarray,
    gold: np.ndarray,
) -> pa.Table:
    """Rows per mask x metric; `logits` is (masks, examples, labels) and masks include the baseline."""
    names = [m.name for m in masks]
    if "baseline" not in names:
        raise ValueError("the masks must include the baseline")
    per_mask = [score(task, logits[i], gold) for i in range(len(masks))]
    baseline = per_mask[names.index("baseline")]
    rows = [
        {
            "model": model,
            "task": task.name,
            "seed": seed,
            "mode": mode,
            "mask": mask.name,
            "kind": mask.kind,
            "layer": mask.layer,
            "head": mask.head,
            "metric": metric,
            "value": values[metric],
            "baseline": baseline[metric],
            "delta": values[metric] - baseline[metric],
            "n_examples": int(gold.shape[0]),
        }
        for mask, values in zip(masks, per_mask, strict=True)
        for metric in task.metrics
    ]
    rows.sort(key=lambda r: (KINDS.index(r["kind"]), r["layer"] or 0, r["head"] or 0, r["mask"], r["metric"]))
    return pa.Table.from_pylist(rows, schema=ABLATION_SCHEMA)
