"""The hand labels of attention maps (Sec. 4.1): the file format that the annotation page writes
and rule train_pattern_cnn reads (config key ``patterns.labels``).

A labels file (``.csv``, or ``.parquet`` by its suffix) has the columns ``map_id, label,
annotator, time`` (ISO 8601, UTC), one row per answer; `final_labels` keeps the last answer per
map. The labels are the paper's five pattern classes, `PATTERNS`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from headlab.io.atomic import write_atomically
from headlab.io.parquet import write_table

# The paper's pattern classes (Figure 1), in its order.
PATTERNS = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
LABEL_SCHEMA: dict[str, Any] = {
    "map_id": pl.String,
    "label": pl.String,
    "annotator": pl.String,
    "time": pl.String,
}


def read_labels(path: str | os.PathLike[str]) -> pl.DataFrame:
    """The labels file (CSV or Parquet by suffix); an empty table when it does not exist yet."""
    source = Path(path)
    if not source.exists():
        return pl.DataFrame(schema=LABEL_SCHEMA)
    if source.suffix == ".parquet":
        table = pl.read_parquet(source)
    else:
        table = pl.read_csv(source, schema_overrides=LABEL_SCHEMA, infer_schema=False)
    missing = [c for c in LABEL_SCHEMA if c not in table.columns]
    if missing:
        raise ValueError(f"{source}: labels file lacks column(s) {missing}")
    table = table.select(list(LABEL_SCHEMA)).cast(LABEL_SCHEMA)
    unknown = sorted(set(table["label"].to_list()) - set(PATTERNS))
    if unknown:
        raise ValueError(f"{source}: unknown label(s) {unknown}; valid: {list(PATTERNS)}")
    return table


def write_labels(labels: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write the labels table atomically (temporary sibling, then rename)."""
    target = Path(path)
    table = labels.select(list(LABEL_SCHEMA)).cast(LABEL_SCHEMA)
    if target.suffix == ".parquet":
        return write_table(table.to_arrow(), target, {"what": "attention pattern labels"})
    return write_atomically(target, table.write_csv)


def final_labels(labels: pl.DataFrame) -> pl.DataFrame:
    """One row per map_id (``map_id, label``): its latest answer by time (file order breaks ties)."""
    return (
        labels.with_row_index("_order")
        .sort("time", "_order")
        .group_by("map_id", maintain_order=True)
        .agg(pl.col("label").last())
        .sort("map_id")
    )
