"""Parquet out and in: provenance metadata on every table, written through the one atomic writer.

Every table the workflow writes goes through `write_table` (or `write_table_chunks` for tables
written row group by row group), which write through `headlab.io.atomic`, so a crash never
leaves a half-written Parquet file under the target name.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import time
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from headlab.io.atomic import write_atomically

METADATA_KEY = b"headlab"


# Libraries whose versions can change the numbers; those not installed in a job's environment
# are left out (the plotting environment has no torch, say).
TRACKED_PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "polars", "pyarrow", "numpy", "scipy")


def provenance(extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Versions of the libraries that shape the numbers, plus caller-supplied facts."""
    record: dict[str, Any] = {
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for package in TRACKED_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            record[package] = version(package)
    if extra:
        record.update(extra)
    return record


def write_table(
    table: pa.Table, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write `table` to `path` atomically, with `metadata` as JSON under the key 'headlab'."""
    merged = dict(table.schema.metadata or {})
    merged[METADATA_KEY] = json.dumps(provenance(metadata), sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(merged)
    return write_atomically(path, lambda tmp: pq.write_table(table, tmp))


def write_table_chunks(
    chunks: Iterable[pa.Table],
    schema: pa.Schema,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write `chunks` (tables of `schema`) as row groups of one Parquet file, atomically, with
    `metadata` (plus provenance) as JSON under 'headlab', like `write_table`; memory stays flat in
    the number of chunks."""
    merged = dict(schema.metadata or {})
    merged[METADATA_KEY] = json.dumps(provenance(metadata), sort_keys=True, default=str).encode()
    schema = schema.with_metadata(merged)

    def write(tmp: Path) -> None:
        with pq.ParquetWriter(tmp, schema) as writer:
            for chunk in chunks:
                writer.write_table(chunk)

    return write_atomically(path, write)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The 'headlab' metadata record of a Parquet file written by `write_table`."""
    raw = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in raw:
        return {}
    return json.loads(raw[METADATA_KEY])
