"""Running the workflow from the tests: Snakemake as a subprocess in a scratch folder, test
configs built from configs/*.yaml, and the jobs a dry run plans, read from its output."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from headlab.workflow.job_stats import job_stats

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
CONFIGS = REPO / "configs"

# Jobs that read every task's or mask's results: they rerun whenever a task or mask is added.
AGGREGATE_RULES = frozenset(
    {
        "collect_ablation",
        "table1",
        "learning_check",
        "claims",
        "figure_mode_agreement",
        "figure1",
        "figure2",
        "figure5",
        "figure6",
        "figure7",
        "figure8",
        "figure9",
        "model_figure5",
        "model_figure6",
        "model_figure7",
        "model_figure8",
        "model_figure9",
        "importance_figures",
        "run_report",
        "all",
    }
)
# What adding a fine-tuning seed reruns besides that seed's own jobs: the rules that read every seed.
SEED_COLLECTING_RULES = frozenset(
    {
        "sweep_statistics",
        "mode_agreement",
        "figure_mode_agreement",
        "collect_ablation",
        "table1",
        "learning_check",
        "claims",
        "figure8",
        "figure9",
        "model_figure8",
        "model_figure9",
        "importance_summary",
        "importance_figures",
        "run_report",
        "all",
    }
)
# Snakemake's own marker inside directory() outputs: the only hidden file results/ may hold.
SNAKEMAKE_MARKERS = frozenset({".snakemake_timestamp"})
NOTHING_TO_DO = "Nothing to be done"


@dataclass
class Run:
    """One finished Snakemake invocation."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return f"{self.stdout}\n{self.stderr}"

    def describe(self, chars: int = 6000) -> str:
        """The command, exit status and the tail of both streams, for assertion messages."""
        return (
            f"snakemake {' '.join(self.args)}\nexit status {self.returncode}\n"
            f"--- stdout (tail) ---\n{self.stdout[-chars:]}\n--- stderr (tail) ---\n{self.stderr[-chars:]}"
        )


def snakemake(
    workdir: Path,
    *args: str,
    targets: Sequence[str] = (),
    configfile: Path | None = None,
    cores: int = 2,
    timeout: int = 1200,
) -> Run:
    """Run the repository's Snakefile with `workdir` as working directory (all outputs go there).

    `targets` follow a "--", so that options taking several values (--configfile) cannot
    swallow them.
    """
    argv = ["--snakefile", str(SNAKEFILE), "--directory", str(workdir), "--cores", str(cores)]
    if configfile is not None:
        argv += ["--configfile", str(configfile)]
    argv += [*args, "--", *targets] if targets else list(args)
    # No PYTHONPATH: the workflow itself puts its own library first (the copy's, while the
    # environment has an editable install of the repository).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", *argv],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    return Run(argv, done.returncode, done.stdout, done.stderr)


def require_success(run: Run) -> Run:
    assert run.returncode == 0, run.describe()
    return run


def load_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def write_yaml(config: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(dict(config), handle, sort_keys=False)
    return path


def tiny_workflow_config(model_dir: Path, glue_dir: Path) -> dict[str, Any]:
    """configs/test.yaml with the tiny model and GLUE folder at absolute paths."""
    config = load_yaml(CONFIGS / "test.yaml")
    config["models"][0]["path"] = str(Path(model_dir).resolve())
    config["data"]["local_dir"] = str(Path(glue_dir).resolve())
    return config


def with_changes(config: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `config`; keys like `data__local_dir` set nested values."""
    result = copy.deepcopy(dict(config))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = result
        for key in parents:
            node = node[key]
        node[last] = value
    return result


def model_dimensions(model_dir: Path) -> tuple[int, int]:
    """(layers, heads) from a Hugging Face config.json."""
    model_config = json.loads((Path(model_dir) / "config.json").read_text())
    return int(model_config["num_hidden_layers"]), int(model_config["num_attention_heads"])


def expected_job_counts(config: Mapping[str, Any]) -> Counter[str]:
    """Jobs of a complete run from scratch, per rule, computed from the config."""
    tasks, models = len(config["tasks"]), len(config["models"])
    modes, masks = len(config["ablation"]["modes"]), len(config["ablation"]["masks"])
    seeds = len(config["finetune"]["seeds"])
    framenet = bool(config.get("framenet", {}).get("corpus_dir"))
    pretrained = config.get("patterns", {}).get("condition", "finetuned") == "pretrained"  # schema default
    pattern_rule = "pretrained_pattern_classes" if pretrained else "pattern_classes"
    counts = Counter(
        {
            "prepare_task": 2 * tasks,  # train and dev
            "finetune": 2 * tasks * models * seeds,  # conditions scratch and finetuned
            "evaluate": tasks * models * seeds,
            "ablate_sweep": tasks * models * modes * seeds,
            "ablate_mask": tasks * models * modes * masks * seeds,
            "sweep_statistics": tasks * models * modes,  # every seed
            "claims": 1,
            "head_means": tasks * models * seeds if "mean" in config["ablation"]["modes"] else 0,
            "mode_agreement": tasks * models if modes >= 2 else 0,
            "figure_mode_agreement": 1 if modes >= 2 else 0,
            "framenet_ablation": tasks * models * seeds * modes if framenet else 0,
            "framenet_effect": models if framenet else 0,
            "parse_task": tasks,  # dev only, shared by every model
            "pretrained_feature_attention": tasks * models,  # once: no seed
            "feature_attention": tasks * models,  # finetuned, of finetune.analysis_seed (Figures 6, 7)
            "pretrained_attention_stats": tasks * models,
            "attention_stats": tasks * models * seeds,  # finetuned, every seed (the claims)
            "attention_drift": tasks * models * seeds,
            "figure5": 1,
            "model_figure5": models,
            "export_maps": tasks,  # the primary model's maps, for annotation and Figure 1
            "classify_maps": tasks,
            # patterns.condition only; the fine-tuned one of finetune.analysis_seed
            pattern_rule: tasks * models,
            "figure1": 1,
            "figure2": 1,
            "collect_ablation": 1,
            "table1": 1,
            "learning_check": 1,
            "figure6": 1,
            "figure7": 1,
            "model_figure6": models,
            "model_figure7": models,
            "figure8": 1,
            "figure9": 1,
            "model_figure8": models * modes,
            "model_figure9": models * modes,
            "head_importance": tasks * models * seeds,  # importance and attribution, every seed
            "pruning_curve": tasks * models * seeds,
            "importance_summary": tasks * models,  # every seed
            "importance_figures": 1,
            "run_report": 1,  # last: waits for every other target
            "all": 1,
        }
    )
    return +counts  # without the zero counts


@dataclass(frozen=True)
class PlannedJob:
    rule: str
    wildcards: Mapping[str, str] = field(default_factory=dict)


_RULE_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>[\w.-]+):\s*$")
_WILDCARDS_LINE = re.compile(r"^\s+wildcards: (?P<items>.*)$")


def planned_jobs(output: str) -> list[PlannedJob]:
    """Every job a (dry) run printed, with its wildcards, in printed order."""
    jobs: list[tuple[str, dict[str, str]]] = []
    for line in output.splitlines():
        rule = _RULE_LINE.match(line)
        if rule:
            jobs.append((rule["rule"], {}))
            continue
        wildcards = _WILDCARDS_LINE.match(line)
        if wildcards and jobs:
            for item in wildcards["items"].split(", "):
                key, _, value = item.partition("=")
                jobs[-1][1][key.strip()] = value.strip()
    return [PlannedJob(rule, wildcards) for rule, wildcards in jobs]


def planned_counts(run: Run) -> Counter[str]:
    """rule -> jobs a dry run planned; checks the printed jobs against the Job stats table."""
    jobs = Counter(job.rule for job in planned_jobs(run.stdout))
    assert jobs == job_stats(run.stdout), f"printed jobs and Job stats differ\n{run.describe()}"
    return jobs


def hidden_files(folder: Path) -> list[Path]:
    """Files and folders under `folder` whose names start with '.', Snakemake's markers aside."""
    return sorted(path for path in Path(folder).rglob(".*") if path.name not in SNAKEMAKE_MARKERS)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc (Linux)."""
    children = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat_file.read_text()
        except OSError:  # the process ended meanwhile
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(stat_file.parent.name))
    return sorted(children)


def descendant_pids(pid: int) -> list[int]:
    """Every process below `pid` in the process tree."""
    found, todo = [], [pid]
    while todo:
        for child in child_pids(todo.pop()):
            found.append(child)
            todo.append(child)
    return sorted(found)


def command_line(pid: int) -> list[str]:
    """The arguments of process `pid` ([] when it has ended)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
