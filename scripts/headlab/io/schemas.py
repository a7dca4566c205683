"""Schemas of artifacts written on one side of the package seam and read on the other: the
fine-tuning log, and the attention statistics that `headlab.measure.attention_stats` writes and
`headlab.analysis.patterns` (and the claims) read."""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa

# results/{model}/{task}/seed-{seed}/training-{condition}.parquet: one row per optimiser step.
TRAINING_LOG_SCHEMA = pa.schema(
    [("step", pa.int64()), ("epoch", pa.int32()), ("loss", pa.float64()), ("learning_rate", pa.float64())]
)
# attention/{condition}.parquet: one row per (example, layer, head, stat); `example` the dev row.
ATTENTION_STATS_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("condition", pa.string(), nullable=False),
        pa.field("example", pa.int64(), nullable=False),
        pa.field("layer", pa.int32(), nullable=False),
        pa.field("head", pa.int32(), nullable=False),
        pa.field("stat", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)


def polars_schema(schema: pa.Schema) -> dict[str, Any]:
    """The same columns as polars data types (name -> dtype, in order)."""
    return dict(pl.from_arrow(schema.empty_table()).schema)  # type: ignore[union-attr]
