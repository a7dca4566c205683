"""Turn logits into the tidy score tables the workflow writes (fixed schemas, sorted rows)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from headlab.analysis.metrics import compute_metrics, predictions_from_logits
from headlab.data.tasks import TaskSpec
from headlab.model.masks import KINDS, HeadMask

SCORES_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("task", pa.string()),
        ("condition", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("n_examples", pa.int64()),
    ]
)

ABLATION_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("task", pa.string()),
        ("mode", pa.string()),
        ("mask", pa.string()),
        ("kind", pa.string()),
        ("layer", pa.int32()),
        ("head", pa.int32()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("baseline", pa.float64()),
        ("delta", pa.float64()),
        ("n_examples", pa.int64()),
    ]
)

CONDITIONS = ("pretrained", "finetuned-random", "finetuned-pretrained")


def score(task: TaskSpec, logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """All of the task's metrics for logits (examples, labels)."""
    return compute_metrics(task.metrics, predictions_from_logits(logits, task.is_regression), gold)


def scores_table(
    model: str, task: TaskSpec, scores: dict[str, dict[str, float]], n_examples: int
) -> pa.Table:
    """One row per condition x metric, in CONDITIONS order then metric order."""
    rows = [
        {
            "model": model,
            "task": task.name,
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


def ablation_table(
    model: str,
    task: TaskSpec,
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
