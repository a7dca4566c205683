"""Parquet in and out: fixed schemas, sorted rows, provenance metadata, atomic writes.

Every table the workflow writes goes through `write_table`, which writes to a temporary file in
the destination folder and renames it into place, so a crash never leaves a half-written
Parquet file under the target name.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import shutil
import time
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

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
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    merged = dict(table.schema.metadata or {})
    merged[METADATA_KEY] = json.dumps(provenance(metadata), sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(merged)
    remove_stale_siblings(target)
    # A hidden sibling name (not mkstemp, whose 0600 mode would carry over to the output).
    tmp_name = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        pq.write_table(table, tmp_name)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def remove_stale_siblings(target: Path) -> None:
    """Delete hidden '.<name>.*' leftovers of an earlier attempt that was killed mid-write."""
    for stale in target.parent.glob(f".{target.name}.*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The 'headlab' metadata record of a Parquet file written by `write_table`."""
    raw = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in raw:
        return {}
    return json.loads(raw[METADATA_KEY])
