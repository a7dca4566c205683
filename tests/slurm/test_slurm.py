"""The SLURM profile (profiles/slurm) on a live one-node SLURM cluster.

`bash tests/slurm/cluster.sh up` brings the cluster up on this machine (root, Debian's packages);
then `HEADLAB_SLURM=1 pytest tests/slurm/test_slurm.py` runs the tiny test configuration (one task,
one mode, one named mask) through `--profile profiles/slurm` to completion and checks with
`sacct` that every non-local job ran as a SLURM job (COMPLETED) with the threads, mem_mb and
runtime its rule declares in rules/*.smk, that a GPU request reaches SLURM, and that the
localrules (figures, tables) never became SLURM jobs. `bash tests/slurm/cluster.sh down` stops it.

Without HEADLAB_SLURM=1 the live tests are skipped with the reason (no cluster here); with it, a
live test that cannot run (not root, no apt-get, the cluster not up, a node with less memory than
the rules ask for) fails instead of skipping. The static checks of the profile run everywhere.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tiny import write_tiny_glue, write_tiny_model
from workflow_helpers import (
    REPO,
    SNAKEFILE,
    Run,
    expected_job_counts,
    load_yaml,
    planned_counts,
    tiny_workflow_config,
    with_changes,
    write_yaml,
)

PROFILE = REPO / "profiles" / "slurm"
CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "cluster.sh"
# Rules whose jobs go through sbatch, and the localrules (rules/summaries.smk) that must not.
SLURM_RULES = frozenset({"prepare_task", "finetune", "evaluate", "ablate_sweep", "ablate_mask"})
LOCAL_RULES = frozenset(
    {"figure8", "figure9", "model_figure8", "model_figure9", "table1", "collect_ablation"}
)
# The test cluster (tests/slurm/cluster.sh): its partition, the account root belongs to, and the
# rule whose jobs the test asks a (device-less) GPU for, as a user with `device: cuda` would.
PARTITION = os.environ.get("HEADLAB_SLURM_PARTITION", "debug")
ACCOUNT = "headlab"
GPU_RULE = "ablate_mask"
# Upper bound of the whole run; SIGINT (not SIGTERM) makes Snakemake cancel its SLURM jobs.
RUN_TIMEOUT_S = int(os.environ.get("HEADLAB_SLURM_TIMEOUT", "900"))
SACCT_FIELDS = [
    "JobID",
    "JobName",
    "Comment",
    "State",
    "ExitCode",
    "Partition",
    "Account",
    "ReqMem",
    "Timelimit",
    "AllocCPUS",
    "AllocTRES",
    "Elapsed",
]
_COMMENT = re.compile(r"^rule_(?P<rule>\w+?)(?:_wildcards_(?P<wildcards>.*))?$")


# ----------------------------------------------------------------------------------------------
# Helpers


def profile() -> dict[str, Any]:
    return load_yaml(PROFILE / "profile.yaml")


def rule_blocks() -> dict[str, str]:
    """rule -> its text, for the `rule` blocks of rules/*.smk; a `use rule A as B with:` block's
    text is its own followed by A's (what it does not override, B inherits)."""
    blocks: dict[str, str] = {}
    derived: dict[str, tuple[str, str]] = {}
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=\S)", path.read_text(), flags=re.M):
            head = re.match(r"rule (\w+):", block)
            if head:
                blocks[head.group(1)] = block
            used = re.match(r"use rule (\w+) as (\w+) with:", block)
            if used:
                derived[used.group(2)] = (used.group(1), block)
    for name, (base, block) in derived.items():
        blocks[name] = block + blocks[base]
    return blocks


def declared_resources() -> dict[str, dict[str, int]]:
    """rule -> {threads, mem_mb, runtime} as written in rules/*.smk."""
    patterns = {
        "threads": r"^\s+threads:\s*(\d+)",
        "mem_mb": r"^\s+mem_mb=(\d+)",
        "runtime": r"^\s+runtime=(\d+)",
    }
    declared: dict[str, dict[str, int]] = {}
    for rule, block in rule_blocks().items():
        declared[rule] = {}
        for key, pattern in patterns.items():
            found = re.search(pattern, block, re.M)
            if found:
                declared[rule][key] = int(found.group(1))
    return declared


def declared_localrules() -> set[str]:
    names: set[str] = set()
    for path in sorted((REPO / "rules").glob("*.smk")):
        for block in re.findall(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", path.read_text(), re.M):
            names.update(re.findall(r"\w+", block))
    return names


def slurm_timelimit(minutes: int) -> str:
    """sacct's Timelimit for a --time of `minutes`: [D-]HH:MM:SS."""
    days, rest = divmod(minutes, 24 * 60)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def cluster_rules(config: dict) -> set[str]:
    """Rules of the planned run whose jobs go through sbatch: all but the localrules and `all`."""
    return {
        rule for rule in expected_job_counts(config) if rule not in declared_localrules() and rule != "all"
    }


def mem_mb(reqmem: str) -> float:
    """sacct's ReqMem (e.g. 16000M, 16G, or per CPU with a trailing c/n in old versions) in MB."""
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)[cn]?", reqmem)
    assert found, f"unexpected ReqMem {reqmem!r}"
    factor = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[found.group(2)]
    return float(found.group(1)) * factor


def tres(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def resource_args(resources: dict[str, Any]) -> list[str]:
    return [f"{key}={value}" for key, value in resources.items()]


def live_cluster_skip_reason() -> str | None:
    """Why the live tests are skipped: only that no cluster was brought up for them."""
    if os.environ.get("HEADLAB_SLURM") != "1":
        return "set HEADLAB_SLURM=1 after `bash tests/slurm/cluster.sh up` to run the live SLURM tests"
    return None


def live_cluster_problem() -> str | None:
    """With HEADLAB_SLURM=1, what keeps the live tests from running (they fail with it)."""
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (tests/slurm/cluster.sh installs packages)"
    if shutil.which("apt-get") is None:
        return "no apt-get: tests/slurm/cluster.sh cannot install SLURM here"
    return None


# ----------------------------------------------------------------------------------------------
# 1. The profile itself (no cluster needed)


def test_every_profile_line_is_commented() -> None:
    lines = (PROFILE / "profile.yaml").read_text().splitlines()
    previous = ""
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            assert previous.startswith("#") or " #" in line, (
                f"profiles/slurm/profile.yaml:{number}: {line!r} has no comment above it"
            )
        previous = stripped


def test_profile_keys() -> None:
    settings = profile()
    assert settings["executor"] == "slurm"
    assert settings["rerun-incomplete"] is True and settings["keep-going"] is True
    assert settings["slurm-status-command"] in {"sacct", "squeue"}
    defaults = settings["default-resources"]
    assert {"mem_mb", "runtime", "cpus_per_task"} <= set(defaults)
    # Every rule that honours `device` can be given a GPU: through the plugin's resources, never
    # through slurm_extra.
    torch_rules = {rule for rule, text in rule_blocks().items() if 'device=config["device"]' in text}
    assert torch_rules >= {"finetune", "evaluate", "ablate_sweep", "ablate_mask"}
    assert set(settings["set-resources"]) >= torch_rules
    for rule, values in settings["set-resources"].items():
        assert "gpu" in values or "gres" in values, rule
        assert not re.search(r"--(gres|gpus)", str(values.get("slurm_extra", ""))), rule
    # SLURM's job logs in their own folder: the plugin deletes old *.log files under it.
    assert Path(settings["slurm-logdir"]).parts[:1] == ("logs",) and settings["slurm-logdir"] != "logs"


def test_localrules_are_the_figures_and_tables() -> None:
    assert declared_localrules() >= LOCAL_RULES
    declared = declared_resources()
    assert set(declared) >= SLURM_RULES
    for rule in SLURM_RULES:
        assert set(declared[rule]) == {"threads", "mem_mb", "runtime"}, rule


def test_live_tests_fail_when_asked_for_but_impossible_and_skip_when_not_asked_for(tmp_path: Path) -> None:
    """The live tests in a fresh pytest with a PATH that has no SLURM tools and no apt-get: with
    HEADLAB_SLURM=1 each errors (naming the cause), without it each is skipped with the reason."""
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "HEADLAB_SLURM"}
    env["PATH"] = str(bare)

    def live_tests(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", "-m", "slurm", __file__],
            cwd=REPO,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    live = [
        name for name, item in globals().items() if name.startswith("test_") and hasattr(item, "pytestmark")
    ]
    count = sum(any(mark.name == "slurm" for mark in globals()[name].pytestmark) for name in live)
    assert count >= 5
    asked = live_tests(HEADLAB_SLURM="1")
    summary = asked.stdout.strip().splitlines()[-1]
    assert asked.returncode == 1 and f"{count} errors" in summary and "skipped" not in summary, asked.stdout
    assert asked.stdout.count("HEADLAB_SLURM=1 but ") >= count, asked.stdout  # the cause, per test
    not_asked = live_tests()
    summary = not_asked.stdout.strip().splitlines()[-1]
    assert not_asked.returncode == 0 and f"{count} skipped" in summary, not_asked.stdout
    assert "error" not in summary and "failed" not in summary, not_asked.stdout


@pytest.mark.workflow
def test_profile_dry_run_plans_local_and_cluster_jobs(tmp_path: Path) -> None:
    # a dev dependency (pyproject.toml), installed with pytest itself
    assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), "pip install -e '.[dev]'"
    model = write_tiny_model(tmp_path / "model")
    config = small_config(model, write_tiny_glue(tmp_path / "glue", ("MRPC",)))
    workdir = tmp_path / "work"
    workdir.mkdir()
    run = run_snakemake(
        workdir,
        ["--profile", str(PROFILE), "--configfile", str(write_yaml(config, tmp_path / "c.yaml")), "-n"],
        timeout=300,
    )
    assert run.returncode == 0, run.describe()
    # A dry run executes nothing, so it cannot tell local from cluster jobs: the live test does.
    assert planned_counts(run) == expected_job_counts(config), run.describe()


# ----------------------------------------------------------------------------------------------
# 2. A complete run on the live cluster


def small_config(model_dir: Path, glue_dir: Path) -> dict[str, Any]:
    """configs/test.yaml on the tiny model: MRPC only, uniform only, one seed, its one named mask."""
    return with_changes(
        tiny_workflow_config(model_dir, glue_dir),
        tasks=["MRPC"],
        ablation__modes=["uniform"],
        finetune__seeds=[42],
    )


def run_snakemake(workdir: Path, args: list[str], timeout: int, prefix: Sequence[str] = ()) -> Run:
    argv = ["--snakefile", str(SNAKEFILE), "--directory", str(workdir), *args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "snakemake", *argv],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return Run(argv, done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class SlurmRun:
    workdir: Path
    config: dict[str, Any]
    run: Run
    seconds: float
    run_id: str
    sacct_lines: list[str]

    @property
    def jobs(self) -> list[dict[str, str]]:
        """One dict per SLURM job of the run (allocations, not steps), with its rule."""
        rows = []
        for line in self.sacct_lines:
            row = dict(zip(SACCT_FIELDS, line.split("|"), strict=True))
            found = _COMMENT.match(row["Comment"])
            row["rule"] = found["rule"] if found else row["Comment"]
            rows.append(row)
        return rows


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory: pytest.TempPathFactory) -> SlurmRun:
    reason = live_cluster_skip_reason()
    if reason:
        pytest.skip(reason)
    problem = live_cluster_problem()
    if problem:
        pytest.fail(f"HEADLAB_SLURM=1 but {problem}")
    missing = [tool for tool in ("sbatch", "sacct", "sinfo", "timeout") if shutil.which(tool) is None]
    assert not missing, f"HEADLAB_SLURM=1 but {missing} not found: run `bash {CLUSTER_SCRIPT} up` first"
    assert importlib.util.find_spec("snakemake_executor_plugin_slurm"), (
        "pip install snakemake-executor-plugin-slurm"
    )
    status = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True, check=False
    )
    assert status.returncode == 0, f"the SLURM test cluster is not up:\n{status.stdout}\n{status.stderr}"
    node_mem = max(int(m) for m in subprocess.check_output(["sinfo", "-h", "-o", "%m"], text=True).split())
    need = max(declared_resources()[rule]["mem_mb"] for rule in SLURM_RULES)
    if node_mem < need:
        pytest.fail(
            f"HEADLAB_SLURM=1 but the SLURM node has {node_mem} MB, the rules ask up to {need} MB (mem_mb)"
        )

    root = tmp_path_factory.mktemp("slurm_run")
    model = write_tiny_model(root / "model")
    config = small_config(model, write_tiny_glue(root / "glue", ("MRPC",)))
    workdir = root / "work"
    workdir.mkdir()
    settings = profile()
    # Test-only overrides; a key given here replaces the profile's, so the profile's values are
    # repeated with the test cluster's partition and account added, and a GPU for one rule.
    defaults = {**settings["default-resources"], "slurm_partition": PARTITION, "slurm_account": ACCOUNT}
    per_rule = {rule: dict(values) for rule, values in settings["set-resources"].items()}
    per_rule[GPU_RULE]["gpu"] = 1
    args = [
        "--profile",
        str(PROFILE),
        "--configfile",
        str(write_yaml(config, root / "config.yaml")),
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--latency-wait",
        "5",
        "--slurm-keep-successful-logs",
        "--default-resources",
        *resource_args(defaults),
        "--set-resources",
        *[f"{rule}:{key}={value}" for rule, values in per_rule.items() for key, value in values.items()],
    ]
    started = time.monotonic()
    run = run_snakemake(
        workdir,
        args,
        timeout=RUN_TIMEOUT_S + 120,
        prefix=["timeout", "-s", "INT", "-k", "60", str(RUN_TIMEOUT_S)],
    )
    seconds = time.monotonic() - started
    assert run.returncode == 0, f"after {seconds:.0f}s:\n{run.describe()}"
    found = re.search(r"SLURM run ID: (\S+)", run.output)
    assert found, run.describe()
    run_id = found.group(1)
    sacct = subprocess.run(
        [
            "sacct",
            "--parsable2",
            "--noheader",
            "--allocations",
            "--starttime",
            "now-2days",
            "--name",
            run_id,
            f"--format={','.join(SACCT_FIELDS)}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in sacct.stdout.splitlines() if line.strip()]
    return SlurmRun(workdir, config, run, seconds, run_id, lines)


@pytest.mark.slurm
@pytest.mark.workflow
def test_slurm_run_completes(slurm_run: SlurmRun, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():  # the CI log shows what SLURM recorded, also when everything passes
        print(f"\nSnakemake run {slurm_run.run_id} through profiles/slurm: {slurm_run.seconds:.0f} s")
        print("|".join(SACCT_FIELDS))
        print("\n".join(slurm_run.sacct_lines))
    results = slurm_run.workdir / "results"
    for name in ("figure8.pdf", "figure9.pdf", "table1.csv", "ablation.parquet", "ablation_summary.parquet"):
        assert (results / name).is_file(), name


@pytest.mark.slurm
@pytest.mark.workflow
def test_every_cluster_job_ran_on_slurm_and_completed(slurm_run: SlurmRun) -> None:
    jobs = slurm_run.jobs
    listing = "\n".join(slurm_run.sacct_lines)
    assert jobs, f"sacct knows no job of run {slurm_run.run_id}"
    expected = expected_job_counts(slurm_run.config)
    wanted = {rule: expected[rule] for rule in cluster_rules(slurm_run.config)}
    assert Counter(job["rule"] for job in jobs) == wanted, listing
    for job in jobs:
        assert job["State"] == "COMPLETED" and job["ExitCode"] == "0:0", job
        assert job["Partition"] == PARTITION and job["Account"] == ACCOUNT, job


@pytest.mark.slurm
@pytest.mark.workflow
def test_slurm_jobs_got_the_resources_the_rules_declare(slurm_run: SlurmRun) -> None:
    declared = declared_resources()
    for job in slurm_run.jobs:
        want = declared[job["rule"]]
        assert mem_mb(job["ReqMem"]) == want["mem_mb"], (job, want)
        assert job["Timelimit"] == slurm_timelimit(want["runtime"]), (job, want)
        assert int(job["AllocCPUS"]) == want["threads"], (job, want)
    finetune = [job for job in slurm_run.jobs if job["rule"] == "finetune"]
    assert len(finetune) == 2, slurm_run.sacct_lines


@pytest.mark.slurm
@pytest.mark.workflow
def test_gpu_request_reaches_slurm(slurm_run: SlurmRun) -> None:
    for job in slurm_run.jobs:
        gpus = tres(job["AllocTRES"]).get("gres/gpu")
        assert gpus == ("1" if job["rule"] == GPU_RULE else None), job


@pytest.mark.slurm
@pytest.mark.workflow
def test_localrules_ran_on_the_submitting_host(slurm_run: SlurmRun) -> None:
    submitted = {job["rule"] for job in slurm_run.jobs}
    local_rules = declared_localrules()
    assert not submitted & local_rules, slurm_run.sacct_lines
    local = Counter(re.findall(r"^localrule (\w+):", slurm_run.run.output, re.M))
    expected = expected_job_counts(slurm_run.config)
    for rule in local_rules & set(expected):
        assert local[rule] == expected[rule], (rule, slurm_run.run.describe())
    remote = set(re.findall(r"^rule (\w+):", slurm_run.run.output, re.M))
    assert remote == cluster_rules(slurm_run.config), slurm_run.run.describe()
