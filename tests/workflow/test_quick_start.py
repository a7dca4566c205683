"""A new user's first run: `make quick` in a fresh copy of the repository with no ../shared folder
beside it (every user's machine) and no network (offline flags, an empty Hugging Face cache).

It must stop within a minute with a message that names both ways on (connect, or a local GLUE
folder), and leave nothing half-written; with `make quick GLUE_DIR=...` it reads that folder and
ends with the summary. The copy is the session's workflow copy (tests/workflow/conftest.py) plus
the Makefile; `make` runs with this interpreter's environment as VENV, told not to reinstall it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import workflow_helpers
from tiny import write_tiny_glue
from workflow_helpers import REPO

pytestmark = pytest.mark.workflow

QUICK_SECONDS = 60
QUICK_TARGETS = [
    "results/figure8.pdf",
    "results/figure9.pdf",
    "results/table1.csv",
    "results/claims.md",
    "results/pruning.pdf",
]


def fresh_clone(tmp_path: Path) -> Path:
    """The workflow with its Makefile in tmp/clone/headlab: no ../shared beside it."""
    root = tmp_path / "clone" / "headlab"
    shutil.copytree(workflow_helpers.SNAKEFILE.parent, root)
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, root / name)
    assert not (root.parent / "shared").exists()
    return root


def user_environment(tmp_path: Path, root: Path) -> dict[str, str]:
    """No network, an empty Hugging Face cache, none of our own variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HEADLAB_", "HF_", "MAKE")) and key not in {"MFLAGS", "GLUE_DIR"}
    }
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf_home"),
        TOKENIZERS_PARALLELISM="false",
    )  # no PYTHONPATH: the workflow puts the clone's own library first
    return env


def make_quick(root: Path, env: dict[str, str], *variables: str) -> tuple[subprocess.CompletedProcess, float]:
    """`make quick` in `root` (or, without make or a venv with snakemake, the same snakemake call)."""
    venv = Path(sys.prefix)
    if shutil.which("make") and (venv / "bin" / "snakemake").is_file():
        # -o: the environment counts as installed (pyproject.toml may be newer than its stamp)
        command = ["make", "-C", str(root), "quick", f"VENV={venv}", "-o", f"{venv}/.installed", *variables]
    else:
        settings = dict(variable.split("=", 1) for variable in variables)
        command = [sys.executable, "-m", "snakemake", "--cores", "2"]
        command += settings.get("QUICK_TARGETS", " ".join(QUICK_TARGETS)).split()
        command += ["--configfile", "configs/quick.yaml"]
        if "GLUE_DIR" in settings:
            command += ["--config", f'data={{source: local, local_dir: "{settings["GLUE_DIR"]}"}}']
    start = time.monotonic()
    done = subprocess.run(
        command, cwd=root, env=env, capture_output=True, text=True, timeout=10 * QUICK_SECONDS, check=False
    )
    return done, time.monotonic() - start


def describe(done: subprocess.CompletedProcess, seconds: float) -> str:
    return (
        f"{' '.join(done.args)}\nexit status {done.returncode} after {seconds:.1f} s\n"
        f"--- stdout ---\n{done.stdout[-6000:]}\n--- stderr ---\n{done.stderr[-6000:]}"
    )


def test_quick_start_offline_without_a_glue_folder_says_what_to_do(tmp_path: Path) -> None:
    root = fresh_clone(tmp_path)
    done, seconds = make_quick(root, user_environment(tmp_path, root))
    output = f"{done.stdout}\n{done.stderr}"
    report = describe(done, seconds)
    assert done.returncode != 0, report
    assert seconds < QUICK_SECONDS, f"took {seconds:.0f} s\n{report}"
    # The plan said where the data would come from; the data job said why it cannot, and the two ways on.
    assert "no GLUE folder at data.local_dir (../shared/data/glue)" in output, report
    assert "so GLUE comes from the Hugging Face hub" in output, report
    assert "cannot read GLUE" in output and "offline mode is on (HF_HUB_OFFLINE=1" in output, report
    for way in (
        "connect this machine to the internet",
        "point data.local_dir at a GLUE folder in the glue_data/<TASK>/{train,dev}.tsv layout",
        "make quick GLUE_DIR=/path/to/glue_data",
    ):
        assert way in output, f"the message lacks {way!r}\n{report}"
    assert "Retrying in" not in output, report  # no network retries
    # Nothing half-written: no table, no hidden temporary file, no figure.
    for folder in ("resources", "results"):
        left = sorted(path for path in (root / folder).rglob("*") if path.is_file())
        assert left == [], f"{folder}/ holds {left}"
    if done.args[0] == "make":
        assert "make quick failed after" in done.stdout, report


def test_quick_start_with_glue_dir_reads_that_folder_and_ends_with_a_summary(tmp_path: Path) -> None:
    root = fresh_clone(tmp_path)
    glue = write_tiny_glue(tmp_path / "my_glue_data", ("SST-2", "STS-B"))  # the quick tasks
    target = "resources/glue/STS-B/dev.parquet"
    done, seconds = make_quick(
        root, user_environment(tmp_path, root), f"GLUE_DIR={glue}", f"QUICK_TARGETS={target}"
    )
    report = describe(done, seconds)
    assert done.returncode == 0, report
    assert (root / target).is_file(), report
    assert "cannot read GLUE" not in done.stdout + done.stderr, report
    if done.args[0] == "make":
        assert "make quick: done in" in done.stdout, report
        assert f"GLUE data from {glue}." in done.stdout, report
        assert f"  {target}" in done.stdout, report  # the target is listed among the tables
