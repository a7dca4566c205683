"""finetune.by_task: one task's training settings apart from the others'. A run of configs/test.yaml
(tiny model, MRPC and SST-2, one seed) with MRPC at 2 epochs trains MRPC for twice SST-2's steps
and records the settings it used; changing MRPC's entry replans MRPC's fine-tuning only; a
misspelt setting stops the run at parse time, naming it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from headlab.io.parquet import read_metadata
from tiny import write_tiny_glue, write_tiny_model
from workflow_helpers import (
    planned_jobs,
    require_success,
    snakemake,
    tiny_workflow_config,
    with_changes,
    write_yaml,
)

pytestmark = pytest.mark.workflow

TASKS = ("MRPC", "SST-2")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """configs/test.yaml (1 epoch) with one seed and MRPC trained for 2 epochs."""
    root = tmp_path_factory.mktemp("task_training")
    model = write_tiny_model(root / "model")
    base = tiny_workflow_config(model, write_tiny_glue(root / "glue", TASKS))
    return with_changes(base, finetune__seeds=[42], finetune__by_task={"MRPC": {"epochs": 2}})


def training_logs(config: dict[str, Any]) -> list[str]:
    alias = config["models"][0]["alias"]
    return [f"results/{alias}/{task}/seed-42/training-finetuned.parquet" for task in TASKS]


@pytest.fixture(scope="module")
def trained(config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fine-tuned training logs of both tasks, in a working folder of their own."""
    workdir = tmp_path_factory.mktemp("task_training_run")
    configfile = write_yaml(config, workdir / "config.yaml")
    require_success(snakemake(workdir, configfile=configfile, targets=training_logs(config)))
    return workdir


def test_a_task_trains_with_its_own_settings(config: dict[str, Any], trained: Path) -> None:
    batch = config["finetune"]["batch_size"]
    for path, epochs in zip(training_logs(config), (2, config["finetune"]["epochs"]), strict=True):
        log = pl.read_parquet(trained / path)
        settings = read_metadata(trained / path)["settings"]
        n_train = read_metadata(trained / path)["n_train"]
        assert settings["epochs"] == epochs, path
        assert settings["learning_rate"] == config["finetune"]["learning_rate"], path
        assert log.height == epochs * math.ceil(n_train / batch), path
        assert log["epoch"].max() == epochs, path


def test_changing_one_task_entry_replans_that_task_only(config: dict[str, Any], trained: Path) -> None:
    changed = with_changes(config, finetune__by_task={"MRPC": {"epochs": 3}})
    configfile = write_yaml(changed, trained / "changed.yaml")
    run = require_success(
        snakemake(trained, "--dry-run", configfile=configfile, targets=training_logs(config))
    )
    planned = {(job.rule, job.wildcards.get("task")) for job in planned_jobs(run.stdout)}
    assert planned == {("finetune", "MRPC")}, run.describe()


def test_a_misspelt_setting_stops_the_run(config: dict[str, Any], tmp_path: Path) -> None:
    bad = with_changes(config, finetune__by_task={"MRPC": {"epoch": 2}})
    run = snakemake(tmp_path, "--dry-run", configfile=write_yaml(bad, tmp_path / "config.yaml"))
    assert run.returncode != 0, run.describe()
    assert "'epoch' was unexpected" in run.output, run.describe()
    assert not planned_jobs(run.stdout)
