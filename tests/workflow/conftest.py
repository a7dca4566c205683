"""Workflow tests run a copy of the workflow (Snakefile, rules, scripts and the library), made once
per session in a temporary folder, so that a test that edits a library module edits the copy and a
killed test run can never leave the checkout edited."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import workflow_helpers

COPIED = ("Snakefile", "config.yaml", "configs", "rules", "scripts", "schemas", "report", "envs", "profiles")


@pytest.fixture(scope="session", autouse=True)
def workflow_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The copy's Snakefile, used by every `workflow_helpers.snakemake` call of this folder."""
    root = tmp_path_factory.mktemp("workflow")
    for name in COPIED:
        source = workflow_helpers.REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    original = workflow_helpers.SNAKEFILE
    workflow_helpers.SNAKEFILE = root / "Snakefile"
    yield root / "Snakefile"
    workflow_helpers.SNAKEFILE = original
