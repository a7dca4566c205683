"""The normalised GLUE table: its columns and schemas, the checks both sources share, its errors.

Both sources of a GLUE split, the classic TSV files and the Hugging Face dataset
``nyu-mll/glue``, are turned into the same table (a polars DataFrame, and the Parquet file
written from it), rows in source order:

=========  ==================  ===========================================================
column     type                meaning
=========  ==================  ===========================================================
row        Int64               TSV: 1-based physical line number in the file (the header,
                               when present, is line 1); hub: the ``idx`` column (or
                               0..n-1 when the dataset has none)
text_a     Utf8                first sentence (surrounding whitespace stripped)
text_b     Utf8, nullable      second sentence; null for single-sentence tasks
label      Int64 | Float64     class index into ``TaskSpec.labels``; the score (Float64)
                               for regression tasks
=========  ==================  ===========================================================
A line or row that cannot be used is a `SkippedLine`; an input that cannot be used at all is a
`GlueDataError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from headlab.data.tasks import SplitSpec, TaskSpec

COLUMNS = ("row", "text_a", "text_b", "label")


class GlueDataError(ValueError):
    """A GLUE input that cannot be used at all: missing, empty, or without one valid row."""


@dataclass(frozen=True)
class SkippedLine:
    """One input line (TSV: physical line number; hub: row id) that was left out, and why."""

    line: int
    reason: str


def polars_schema(task: TaskSpec) -> dict[str, pl.DataType]:
    """The normalised DataFrame schema of `task` (label Float64 for regression, else Int64)."""
    label = pl.Float64() if task.is_regression else pl.Int64()
    return {"row": pl.Int64(), "text_a": pl.Utf8(), "text_b": pl.Utf8(), "label": label}


def arrow_schema(task: TaskSpec) -> pa.Schema:
    """The fixed Parquet schema of `task`'s normalised table."""
    label = pa.float64() if task.is_regression else pa.int64()
    return pa.schema(
        [
            pa.field("row", pa.int64(), nullable=False),
            pa.field("text_a", pa.string(), nullable=False),
            pa.field("text_b", pa.string(), nullable=True),
            pa.field("label", label, nullable=False),
        ]
    )


def to_arrow(frame: pl.DataFrame, task: TaskSpec) -> pa.Table:
    """The normalised DataFrame as an Arrow table with the fixed `arrow_schema`."""
    return frame.select(COLUMNS).to_arrow().cast(arrow_schema(task))


class RowBuffer:
    """Column buffers for the normalised table, filled one valid example at a time."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}

    def add(self, row: int, texts: Sequence[str], label: int | float) -> None:
        self.columns["row"].append(row)
        self.columns["text_a"].append(texts[0])
        self.columns["text_b"].append(texts[1] if len(texts) > 1 else None)
        self.columns["label"].append(label)

    def frame(self, task: TaskSpec) -> pl.DataFrame:
        return pl.DataFrame(self.columns, schema=polars_schema(task))


def clean_texts(raw: Sequence[str], names: Sequence[str]) -> list[str] | str:
    """Texts with surrounding whitespace stripped, or the reason the example is unusable."""
    texts = [text.strip() for text in raw]
    for name, text in zip(names, texts, strict=True):
        if not text:
            return f"empty text in column {name!r}"
    return texts


def split_spec(task: TaskSpec, split: str) -> SplitSpec:
    """The split `split` of `task`; an unknown split is an error naming the valid ones."""
    if split not in task.splits:
        raise GlueDataError(
            f"unknown split {split!r} for GLUE {task.name}; valid splits: {list(task.splits)}"
        )
    return task.splits[split]


def example_keys(path: str | os.PathLike[str]) -> np.ndarray:
    """(examples,) int64: the `row` of each example of a normalised table file, in file order,
    the key of an example in every table the workflow writes."""
    return pl.read_parquet(path, columns=["row"])["row"].to_numpy().astype(np.int64)
