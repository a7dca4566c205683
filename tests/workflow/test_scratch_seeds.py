"""finetune.scratch_seeds: the random-initialisation condition fine-tuned for fewer seeds than the
pretrained one. A dry run of configs/test.yaml with seeds [1, 2] and scratch_seeds [1] plans one
scratch fine-tuning job per task (seed 1) and the finetuned ones of both seeds, and nothing else
changes; a scratch seed that is not one of seeds stops the run at parse time, naming the key."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from headlab.conditions import FINETUNED, SCRATCH
from tiny import write_tiny_glue, write_tiny_model
from workflow_helpers import (
    expected_job_counts,
    planned_counts,
    planned_jobs,
    require_success,
    snakemake,
    tiny_workflow_config,
    with_changes,
    write_yaml,
)

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """configs/test.yaml (tiny model, MRPC and SST-2) with seeds [1, 2] and scratch_seeds [1]."""
    root = tmp_path_factory.mktemp("scratch_seeds")
    model = write_tiny_model(root / "model")
    base = tiny_workflow_config(model, write_tiny_glue(root / "glue", ("MRPC", "SST-2")))
    return with_changes(base, finetune__seeds=[1, 2], finetune__scratch_seeds=[1])


def dry_run(tmp_path: Path, config: dict[str, Any]) -> Any:
    workdir = tmp_path / "work"
    workdir.mkdir()
    return snakemake(workdir, "--dry-run", configfile=write_yaml(config, tmp_path / "config.yaml"))


def test_one_scratch_job_per_task_with_one_scratch_seed(tmp_path: Path, config: dict[str, Any]) -> None:
    run = require_success(dry_run(tmp_path, config))
    jobs = planned_jobs(run.stdout)
    trained = Counter(
        (j.wildcards["task"], j.wildcards["condition"], j.wildcards["seed"])
        for j in jobs
        if j.rule == "finetune"
    )
    tasks = config["tasks"]
    expected = Counter({(t, FINETUNED, s): 1 for t in tasks for s in ("1", "2")})
    expected.update({(t, SCRATCH, "1"): 1 for t in tasks})
    assert trained == expected, run.describe()
    # every other job as with scratch for every seed: one evaluate per seed, both seeds analysed
    counts = expected_job_counts(config)
    counts["finetune"] -= len(tasks)  # no scratch job of seed 2
    assert planned_counts(run) == counts, run.describe()
    evaluated = {(j.wildcards["task"], j.wildcards["seed"]) for j in jobs if j.rule == "evaluate"}
    assert evaluated == {(t, s) for t in tasks for s in ("1", "2")}


def test_without_scratch_seeds_every_seed_trains_scratch(tmp_path: Path, config: dict[str, Any]) -> None:
    """The default (null): scratch fine-tuned for every seed, as before the key existed."""
    default = with_changes(config, finetune__scratch_seeds=None)
    run = require_success(dry_run(tmp_path, default))
    scratch = {
        (j.wildcards["task"], j.wildcards["seed"])
        for j in planned_jobs(run.stdout)
        if j.rule == "finetune" and j.wildcards["condition"] == SCRATCH
    }
    assert scratch == {(t, s) for t in config["tasks"] for s in ("1", "2")}
    assert planned_counts(run) == expected_job_counts(default), run.describe()


def test_a_scratch_seed_outside_seeds_stops_the_run(tmp_path: Path, config: dict[str, Any]) -> None:
    run = dry_run(tmp_path, with_changes(config, finetune__scratch_seeds=[1, 3]))
    assert run.returncode != 0, run.describe()
    assert "finetune.scratch_seeds ['1', '3'] must be a subset of finetune.seeds ['1', '2']" in run.output
    assert not planned_jobs(run.stdout)
