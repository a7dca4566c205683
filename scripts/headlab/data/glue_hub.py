"""The Hugging Face dataset ``nyu-mll/glue`` -> the normalised table (`read_hub_dataset`, `hub_split`)."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any, Protocol

import polars as pl

from headlab.data.glue_table import GlueDataError, RowBuffer, SkippedLine, clean_texts, split_spec
from headlab.data.tasks import TaskSpec

HUB_DATASET = "nyu-mll/glue"

LOGGER = logging.getLogger(__name__)


class HubDataset(Protocol):
    """What `normalise_hub_dataset` needs of a `datasets.Dataset`."""

    @property
    def column_names(self) -> list[str]: ...

    def __getitem__(self, key: str) -> Iterable[Any]: ...

    def __len__(self) -> int: ...


def _hub_label(raw: Any, task: TaskSpec) -> int | float | str:
    """The label value of a hub label cell, or the reason it is invalid."""
    if task.is_regression:
        valid = isinstance(raw, Real) and not isinstance(raw, bool) and math.isfinite(raw)
        return float(raw) if valid else f"score {raw!r} is not a finite number"
    if isinstance(raw, Integral) and not isinstance(raw, bool) and 0 <= raw < task.num_labels:
        return int(raw)
    return f"label {raw!r} is not a class index in 0..{task.num_labels - 1}"


def read_hub_dataset(dataset: HubDataset, task: TaskSpec) -> tuple[pl.DataFrame, list[SkippedLine]]:
    """Map a ``nyu-mll/glue`` dataset of `task` into the normalised table, plus its skipped rows.

    ``row`` is the dataset's ``idx`` column (0..n-1 when absent); a skipped row's ``line`` is
    that row id. Texts are stripped like TSV texts; rows with an empty text or a label outside
    the task's classes (e.g. the -1 of unlabelled test splits) are skipped. Raises
    `GlueDataError` when a needed column is missing.
    """
    names = list(dataset.column_names)
    missing = [name for name in (*task.hub_text_columns, "label") if name not in names]
    if missing:
        raise GlueDataError(f"hub dataset for GLUE {task.name} lacks columns {missing}; it has {names}")
    texts = [list(dataset[name]) for name in task.hub_text_columns]
    labels = list(dataset["label"])
    ids = [int(i) for i in dataset["idx"]] if "idx" in names else list(range(len(labels)))
    rows, skipped = RowBuffer(), []
    for position, row in enumerate(ids):
        parsed = _hub_example([column[position] for column in texts], labels[position], task)
        if isinstance(parsed, str):
            skipped.append(SkippedLine(row, parsed))
        else:
            rows.add(row, *parsed)
    return rows.frame(task), skipped


def _hub_example(raw_texts: Sequence[Any], raw_label: Any, task: TaskSpec) -> tuple[list[str], Any] | str:
    if not all(isinstance(text, str) for text in raw_texts):
        return "text is not a string"
    texts = clean_texts(raw_texts, task.hub_text_columns)
    if isinstance(texts, str):
        return texts
    label = _hub_label(raw_label, task)
    return label if isinstance(label, str) else (texts, label)


def normalise_hub_dataset(dataset: HubDataset, task: TaskSpec) -> pl.DataFrame:
    """The normalised table of a hub dataset; skipped rows are logged (see `read_hub_dataset`)."""
    frame, skipped = read_hub_dataset(dataset, task)
    if skipped:
        LOGGER.warning("%s: skipped %d hub rows, first: %s", task.name, len(skipped), skipped[0])
    return frame


def load_hub_dataset(task: TaskSpec, split: str, revision: str | None) -> HubDataset:
    """`split` of `task` from the hub (or the datasets cache); a failure is a `GlueDataError`."""
    import datasets  # deferred: a heavy import that local runs do not need

    hub_name = split_spec(task, split).hub
    try:
        return datasets.load_dataset(HUB_DATASET, task.hub_config, split=hub_name, revision=revision)
    except Exception as error:
        raise GlueDataError(
            f"could not load {HUB_DATASET} config {task.hub_config!r} split {hub_name!r} "
            f"(revision {revision or 'default'}): {error}"
        ) from error


def hub_split(task: TaskSpec, split: str, revision: str | None = None) -> pl.DataFrame:
    """Download (or read from the datasets cache) `split` of `task` and normalise it."""
    return normalise_hub_dataset(load_hub_dataset(task, split, revision), task)
