"""GLUE data in, one normalised table out: locate a split, read it from either source, sample it.

Both sources of a GLUE split, the classic TSV files (`headlab.data.glue_tsv`) and the Hugging
Face dataset ``nyu-mll/glue`` (`headlab.data.glue_hub`), are turned into the same table
(`headlab.data.glue_table`). A malformed input line never crashes a run: it is skipped and
reported as a `SkippedLine`. Missing or empty inputs, or inputs without a single valid row,
raise `GlueDataError`. `prepare_split` is what rule prepare_task runs. The source ``auto`` is the
local folder when one is configured and present, else the hub (`resolve_source`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from headlab.data.glue_hub import HUB_DATASET, load_hub_dataset, read_hub_dataset
from headlab.data.glue_table import GlueDataError, SkippedLine, split_spec, to_arrow
from headlab.data.glue_tsv import read_glue_tsv
from headlab.data.tasks import TaskSpec, get_task

MAX_SKIPPED_IN_METADATA = 50
SOURCES = ("hub", "local", "auto")

LOGGER = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Choosing the source and locating a local split


def resolve_source(source: str, data_dir: str | Path | None) -> str:
    """The source a split is read from: "auto" is "local" when `data_dir` names an existing
    folder and "hub" otherwise; "hub" and "local" are returned as they are."""
    if source == "auto":
        return "local" if data_dir and Path(data_dir).is_dir() else "hub"
    return source


def _listing(folder: Path, pattern: str) -> str:
    names = sorted(p.name for p in folder.glob(pattern)) if folder.is_dir() else []
    return ", ".join(names) if names else "none"


def local_split_path(
    data_dir: str | Path, task: TaskSpec, split: str, overrides: Mapping[str, str] | None = None
) -> Path:
    """Path of `split` of `task` in the classic layout ``<data_dir>/<TASK>/<file>``.

    `overrides` maps split names to file names inside the task folder, replacing the standard
    names (e.g. ``{"dev": "subset_23497.tsv"}`` for the QQP subset). Raises `GlueDataError` when
    the split, the task folder or the file is unknown or missing; the message lists the .tsv
    files (or task folders) that do exist.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(task.splits))
    if unknown:
        raise GlueDataError(f"file overrides for unknown splits {unknown}; valid splits: {list(task.splits)}")
    file_name = overrides.get(split, split_spec(task, split).file)
    folder = Path(data_dir) / task.name
    if not folder.is_dir():
        raise GlueDataError(
            f"GLUE {task.name} folder {folder} does not exist (looking for {file_name}); "
            f"folders in {Path(data_dir)}: {_listing(Path(data_dir), '*/')}"
        )
    path = folder / file_name
    if not path.is_file():
        raise GlueDataError(
            f"GLUE {task.name} {split} file {path} does not exist; "
            f".tsv files in {folder}: {_listing(folder, '*.tsv')}"
        )
    return path


# --------------------------------------------------------------------------------------------
# Sampling and the Snakemake entry point


def sample_rows(df: pl.DataFrame, cap: int | None, seed: int) -> pl.DataFrame:
    """`cap` rows drawn uniformly without replacement (numpy default_rng(seed)), in original order.

    Returns `df` unchanged when `cap` is None or not smaller than its height.
    """
    if cap is None or cap >= df.height:
        return df
    if cap < 1:
        raise ValueError(f"cap must be a positive number of rows or None, got {cap}")
    chosen = np.random.default_rng(seed).choice(df.height, size=cap, replace=False)
    return df[np.sort(chosen)]


def read_sample(path: str | Path, cap: int | None, seed: int) -> pl.DataFrame:
    """A normalised split Parquet, sampled like `sample_rows` (the attention jobs' dev sample)."""
    return sample_rows(pl.read_parquet(path), cap, seed)


def _load(
    task: TaskSpec,
    split: str,
    source: str,
    data_dir: str | Path | None,
    file_overrides: Mapping[str, str] | None,
    hub_revision: str | None,
) -> tuple[pl.DataFrame, list[SkippedLine], str]:
    """(table, skipped lines, source description) of one split from `source` (already resolved)."""
    if source == "hub":
        frame, skipped = read_hub_dataset(load_hub_dataset(task, split, hub_revision), task)
        where = f"{HUB_DATASET}/{task.hub_config}/{split_spec(task, split).hub}"
        return frame, skipped, where
    if source == "local":
        if data_dir is None:
            raise GlueDataError(f"source 'local' for GLUE {task.name} {split} needs a data_dir")
        path = local_split_path(data_dir, task, split, file_overrides)
        frame, skipped = read_glue_tsv(path, task)
        return frame, skipped, str(path)
    raise GlueDataError(f"unknown data source {source!r}; valid sources: {list(SOURCES)}")


def _label_counts(frame: pl.DataFrame, task: TaskSpec) -> dict[str, int] | None:
    if task.is_regression:
        return None
    counts = Counter(frame.get_column("label").to_list())
    return {name: counts.get(index, 0) for index, name in enumerate(task.labels)}


def prepare_split(
    task_name: str,
    split: str,
    source: str,
    data_dir: str | Path | None,
    file_overrides: Mapping[str, str] | None,
    cap: int | None,
    seed: int,
    hub_revision: str | None,
    log: logging.Logger | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """One split of a GLUE task, sampled to at most `cap` rows: the table and its metadata.

    `source` is "hub" (``nyu-mll/glue`` at `hub_revision`), "local" (classic TSV files under
    `data_dir`, with optional `file_overrides` {split: file name}) or "auto" (local when
    `data_dir` exists, else the hub; the metadata records the one used). The table has the fixed
    `arrow_schema`; the metadata records counts and the first skipped lines. Counts and every
    skipped line are logged to `log`.
    """
    log = log or LOGGER
    task = get_task(task_name)
    source = resolve_source(source, data_dir)
    frame, skipped, where = _load(task, split, source, data_dir, file_overrides, hub_revision)
    _log_skipped(log, where, skipped)
    sampled = sample_rows(frame, cap, seed)
    metadata: dict[str, Any] = {
        "task": task.name,
        "split": split,
        "source": source,
        "source_path": where,
        "hub_revision": hub_revision if source == "hub" else None,
        "n_read": frame.height + len(skipped),
        "n_valid": frame.height,
        "n_skipped": len(skipped),
        "skipped": [asdict(s) for s in skipped[:MAX_SKIPPED_IN_METADATA]],
        "cap": cap,
        "seed": seed,
        "n_written": sampled.height,
        "labels": list(task.labels),
        "label_counts": _label_counts(sampled, task),
    }
    log.info(
        "%s %s from %s: read %d, skipped %d, valid %d, kept %d (cap %s, seed %d)",
        task.name,
        split,
        where,
        metadata["n_read"],
        len(skipped),
        frame.height,
        sampled.height,
        cap,
        seed,
    )
    return to_arrow(sampled, task), metadata


def _log_skipped(log: logging.Logger, where: str, skipped: Sequence[SkippedLine]) -> None:
    for item in skipped:
        log.warning("%s:%d: %s", where, item.line, item.reason)
