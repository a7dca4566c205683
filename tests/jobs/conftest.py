"""Jobs called directly, as `run_job` calls them: a tiny "pretrained" model, MRPC tables prepared
by the prepare_task job from tiny GLUE TSVs, and finetune runs of two seeds (tests/job_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headlab.conditions import TRAINED
from headlab.jobs.data import PrepareTask, prepare_task
from job_helpers import TASK, Trained, job_logger, run_finetune, write_pretrained
from tiny import write_tiny_glue


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pretrained(tmp_path_factory.mktemp("pretrained") / "model")


@pytest.fixture(scope="session")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train and dev Parquet of MRPC, 40 rows each, through the prepare_task job."""
    root = tmp_path_factory.mktemp("tables")
    glue = write_tiny_glue(root / "glue", (TASK,), rows=40)
    paths = {}
    for split in ("train", "dev"):
        data = {"source": "local", "local_dir": str(glue), "files": None, "hub_revision": None, "cap": None}
        paths[split] = root / f"{split}.parquet"
        params = PrepareTask(task=TASK, split=split, data={**data, "seed": 42}, table=paths[split])
        prepare_task(params, job_logger())
    return paths


@pytest.fixture(scope="session")
def trained(
    tmp_path_factory: pytest.TempPathFactory, pretrained_dir: Path, tables: dict[str, Path]
) -> dict[tuple[str, str], Trained]:
    """(condition, run) -> checkpoint and log: runs "a" and "b" with seed 42 (independent runs of the
    job into different folders), run "c" with seed 7."""
    seeds = {"a": 42, "b": 42, "c": 7}
    runs = {}
    for run, seed in seeds.items():
        folder = tmp_path_factory.mktemp(f"run_{run}")
        for condition in TRAINED:
            runs[condition, run] = run_finetune(folder, pretrained_dir, tables["train"], condition, seed)
    return runs
