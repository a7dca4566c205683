"""Jobs of rules/data.smk: one GLUE split into normalised Parquet."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PrepareTask:
    task: str
    split: str
    data: dict[str, Any]  # source, local_dir, files (this task's overrides), hub_revision, cap, seed
    table: Path
    log: Path | None = None
    tsv: Path | None = None  # the local TSV (an input so that editing it reruns the job)
    threads: int = 1


def prepare_task(job: PrepareTask, logger: logging.Logger) -> dict[str, Any]:
    """Rule prepare_task: read (hub or local TSV), sample, write; returns the table's metadata."""
    from headlab.data.glue import prepare_split
    from headlab.io.parquet import write_table

    data = job.data
    table, metadata = prepare_split(
        task_name=job.task,
        split=job.split,
        source=data["source"],
        data_dir=data["local_dir"],
        file_overrides=data["files"],
        cap=data["cap"],
        seed=data["seed"],
        hub_revision=data["hub_revision"],
        log=logger,
    )
    write_table(table, job.table, metadata)
    logger.info("wrote %d rows to %s", table.num_rows, job.table)
    return metadata
