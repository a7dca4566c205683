"""Schemas of the artifacts that no analysis module builds: the fine-tuning log."""

from __future__ import annotations

import pyarrow as pa

# results/{model}/{task}/training-{init}.parquet: one row per optimiser step.
TRAINING_LOG_SCHEMA = pa.schema(
    [("step", pa.int64()), ("epoch", pa.int32()), ("loss", pa.float64()), ("learning_rate", pa.float64())]
)
