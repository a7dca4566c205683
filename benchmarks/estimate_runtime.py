"""Estimate a config's run time from the `.benchmark.tsv` files of a finished run.

Every model job's time is taken as an overhead plus a cost per token of work: training tokens x
epochs (finetune), dev tokens x conditions (evaluate), dev tokens x masks (ablate_sweep,
ablate_mask), sampled dev tokens (attention_stats, attention_drift). The cost per token and the
overhead of each rule are fitted (least squares, overhead >= 0) on the finished run's jobs; the
other rules take their mean time. Fine-tuning is the exception: a task the finished run trained
takes that task's own seconds per training token (through the origin), because a task's cost per
token grows with its padded length and a fit across two tasks puts that difference into the
overhead (the fit across MRPC and RTE gave 290 s of overhead a job, so an added epoch counted for
a quarter of its cost); a task the finished run did not train takes the fit. The target config's
work is counted on its own data samples (the same seeded sampling as prepare_task, tokenised with
the model's tokenizer), so tasks with longer texts cost more. With `--cores 2` and 2 threads per
job the jobs run one at a time, so the estimate is the sum. Run from the repository root, e.g.:

    python benchmarks/estimate_runtime.py --run /tmp/quick --configfile configs/cpu-study.yaml

`--run` is the folder the finished run ran in (its logs/, results/ and resources/). The target
config's jobs per rule come from a dry run of its targets (`--targets`, default the CPU study's) in
that folder with every job forced; a rule with no per-token model (pruning curves, head
importance, the tables) takes its mean job time in the finished run, a pruning curve's scaled by
its dev-set passes (levels x orders) in the two configs.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.data.glue import prepare_split
from headlab.model.batching import encode
from headlab.model.loading import load_encoder
from headlab.model.pruning_curve import pruning_levels
from headlab.model.specs import ModelSpec
from headlab.workflow.job_stats import job_stats

REPO = Path(__file__).resolve().parents[1]
MODEL_RULES = ("finetune", "evaluate", "ablate_sweep", "ablate_mask", "attention_stats", "attention_drift")
# The study's command (README, "The CPU study").
STUDY_TARGETS = (
    "results/claims.md",
    "results/figure8.pdf",
    "results/figure9.pdf",
    "results/table1.csv",
    "results/report/README.md",
)


def epochs_of(config: dict, task: str) -> float:
    """The task's fine-tuning epochs: its finetune.by_task entry, else finetune.epochs."""
    return (config["finetune"].get("by_task") or {}).get(task, {}).get("epochs", config["finetune"]["epochs"])


def trained_seeds(config: dict) -> int:
    """Fine-tuning runs per task: every seed from pretrained weights, the scratch seeds from random."""
    finetune = config["finetune"]
    return len(finetune["seeds"]) + len(finetune.get("scratch_seeds") or finetune["seeds"])


def planned_jobs(run: Path, configfile: Path, targets: list[str]) -> Counter[str]:
    """rule -> jobs of `targets` under `configfile`: a dry run in the finished run's folder with every
    job forced (its relative data paths resolve there as in the run)."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    command += ["--directory", str(run), "--configfile", str(configfile.resolve()), "--cores", "2"]
    command += ["--dry-run", "--forceall", "--", *targets]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the dry run of {configfile} in {run} failed:\n{done.stderr[-3000:]}")
    return job_stats(done.stdout)


def framenet_masks(config: dict) -> int:
    """Masks of one framenet_ablation job: the two FrameNet heads and the random sets."""
    return 2 + (config["framenet"].get("random_sets") or {}).get("count", 100)


def pruning_passes(config: dict, heads: int) -> int:
    """Dev-set passes of one pruning curve: its levels (level 0 included) x its orders (importance,
    delta, delta_heldout and the random draws; the importance order's re-estimation and the
    held-out order's two halves ride on the same levels)."""
    pruning = config["pruning"]
    levels = pruning_levels(heads, pruning["step"], pruning["of"], pruning["max_share"])
    return len(levels) * (3 + int(pruning["random_draws"]))


def seconds(path: Path) -> float:
    with open(path) as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


def tokens(tokenizer: object, table: pl.DataFrame, max_length: int, cap: int | None = None) -> int:
    """Word pieces of the first `cap` rows of a task table (every row when None)."""
    rows = table if cap is None else table.head(cap)
    return int(sum(len(ids) for ids in encode(tokenizer, rows, max_length).input_ids))


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(overhead, seconds per unit of work) through (work, seconds) points; overhead >= 0."""
    work = np.array([w for w, _ in points])
    time = np.array([t for _, t in points])
    if len(points) >= 2 and np.ptp(work) > 0:
        slope, intercept = np.polyfit(work, time, 1)
        if intercept >= 0 and slope > 0:
            return float(intercept), float(slope)
    return 0.0, float(time.sum() / work.sum())


def finetune_estimate(
    measured: dict, work: dict[str, float], fitted: tuple[float, float], jobs: int
) -> float:
    """Seconds of the target's fine-tuning: per task, the finished run's seconds per training token
    of that task times the target's tokens (tokens x epochs x runs); a task the finished run did not
    train takes the fit across tasks, with its overhead per job."""
    overhead, rate = fitted
    total, fitted_work = 0.0, 0.0
    tasks = [key.removeprefix("finetune ") for key in work if key.startswith("finetune ")]
    for task in tasks:
        points = measured.get(f"finetune {task}") or []
        if points:
            total += (
                sum(seconds(path) for path, _ in points)
                / sum(w for _, w in points)
                * work[f"finetune {task}"]
            )
        else:
            fitted_work += work[f"finetune {task}"]
    if fitted_work:
        share = fitted_work / work["finetune"]
        total += share * jobs * overhead + rate * fitted_work
    return total


def load_config(path: Path) -> dict:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in yaml.safe_load(path.read_text()).items():
        base[key] = (
            {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return base


def work_of(run: Path, config: dict, tokenizer: object, masks: int) -> dict[str, list[tuple[Path, float]]]:
    """Per model rule, (benchmark file, work) of the finished run's jobs; fine-tuning also per task,
    under "finetune TASK"."""
    length = config["max_length"]
    found: dict[str, list[tuple[Path, float]]] = defaultdict(list)
    for task in config["tasks"]:
        train = pl.read_parquet(run / "resources" / "glue" / task / "train.parquet")
        dev = pl.read_parquet(run / "resources" / "glue" / task / "dev.parquet")
        train_tokens, dev_tokens = tokens(tokenizer, train, length), tokens(tokenizer, dev, length)
        sample = tokens(tokenizer, dev, length, config["attention"]["max_examples"])
        logs = run / "logs"
        per_rule = {
            "finetune": (
                f"finetune/*/{task}/seed-*/*.benchmark.tsv",
                train_tokens * epochs_of(config, task),
            ),
            "ablate_sweep": (f"ablate_sweep/*/{task}/seed-*/*.benchmark.tsv", masks * dev_tokens),
            "ablate_mask": (f"ablate_mask/*/{task}/seed-*/*/*.benchmark.tsv", 2 * dev_tokens),
            "framenet_ablation": (
                f"framenet_ablation/*/{task}/seed-*/*.benchmark.tsv",
                framenet_masks(config) * dev_tokens,
            ),
            # the pretrained encoder's statistics cost as much per token as a fine-tuned one's
            "attention_stats": (
                f"attention_stats/*/{task}/**/*.benchmark.tsv",
                f"pretrained_attention_stats/*/{task}.benchmark.tsv",
                sample,
            ),
            "attention_drift": (  # per seed; a run from before seeds were its wildcard: per task
                f"attention_drift/*/{task}/seed-*.benchmark.tsv",
                f"attention_drift/*/{task}.benchmark.tsv",
                2 * sample,
            ),
        }
        for rule, (*patterns, work) in per_rule.items():
            jobs = [(path, work) for pattern in patterns for path in logs.glob(pattern)]
            found[rule] += jobs
            if rule == "finetune":
                found[f"finetune {task}"] = jobs
        # the pretrained encoder and each checkpoint of the seed (scratch: of finetune.scratch_seeds)
        finetune = config["finetune"]
        scratch = {str(seed) for seed in finetune.get("scratch_seeds") or finetune["seeds"]}
        for path in logs.glob(f"evaluate/*/{task}/seed-*.benchmark.tsv"):
            seed = path.name.removeprefix("seed-").removesuffix(".benchmark.tsv")
            found["evaluate"].append((path, (2 + (seed in scratch)) * dev_tokens))
    return found


def target_work(config: dict, tokenizer: object, glue_dir: str) -> dict[str, float]:
    """Per model rule, the work of one job unit of the target config summed over its tasks and seeds;
    fine-tuning also per task, under "finetune TASK"."""
    length, data = config["max_length"], config["data"]
    seeds, modes = len(config["finetune"]["seeds"]), len(config["ablation"]["modes"])
    named = len(config["ablation"]["masks"])
    total: dict[str, float] = defaultdict(float)
    for task in config["tasks"]:
        tables = {}
        for split, cap in (("train", data["max_train_examples"]), ("dev", data["max_eval_examples"])):
            cap = cap.get(task) if isinstance(cap, dict) else cap  # a per-task mapping
            table, _ = prepare_split(
                task, split, "local", glue_dir, data["files"].get(task), cap, data["seed"], None
            )
            tables[split] = pl.from_arrow(table)
        train, dev = tokens(tokenizer, tables["train"], length), tokens(tokenizer, tables["dev"], length)
        sample = tokens(tokenizer, tables["dev"], length, config["attention"]["max_examples"])
        total[f"finetune {task}"] = trained_seeds(config) * train * epochs_of(config, task)
        total["finetune"] += total[f"finetune {task}"]
        total["evaluate"] += (seeds + trained_seeds(config)) * dev  # pretrained and each checkpoint
        total["ablate_sweep"] += seeds * modes * dev  # x masks below
        total["ablate_mask"] += seeds * modes * named * 2 * dev
        total["attention_stats"] += seeds * sample  # the pretrained encoder's: its own rule, a mean
        total["attention_drift"] += seeds * 2 * sample
        if config["framenet"]["corpus_dir"]:
            # the FrameNet heads and the random sets: fitted on the finished run's own jobs
            total["framenet_ablation"] += seeds * modes * framenet_masks(config) * dev
    return dict(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the finished run's folder")
    parser.add_argument("--run-config", type=Path, default=REPO / "configs" / "quick.yaml")
    parser.add_argument("--configfile", type=Path, required=True, help="the config to estimate")
    parser.add_argument("--targets", nargs="+", default=list(STUDY_TARGETS), help="the run's targets")
    parser.add_argument("--glue-dir", default=str(REPO.parent / "shared" / "data" / "glue"))
    args = parser.parse_args()
    finished, target = load_config(args.run_config), load_config(args.configfile)
    entry = target["models"][0]
    encoder, tokenizer = load_encoder(ModelSpec.from_config(entry["alias"], entry))
    layers, heads = encoder.config.num_hidden_layers, encoder.config.num_attention_heads
    masks = 1 + layers * heads + layers
    measured = work_of(args.run, finished, tokenizer, masks)
    work = target_work(target, tokenizer, args.glue_dir)
    work["ablate_sweep"] *= masks
    jobs = planned_jobs(args.run, args.configfile, args.targets)
    print(f"{'rule':<18}{'jobs':>6}{'overhead s':>12}{'s per 1k tokens':>17}{'estimate s':>12}")
    grand = 0.0
    if not measured["framenet_ablation"]:  # a run without FrameNet: a sweep's cost per mask and token
        measured["framenet_ablation"] = measured["ablate_sweep"]
    for rule, count in sorted(jobs.items()):
        if rule in (*MODEL_RULES, "framenet_ablation"):
            points = [(w, seconds(path)) for path, w in measured[rule]]
            if not points:
                print(f"{rule:<18}{count:>6}  no benchmark in {args.run}/logs")
                continue
            overhead, rate = fit(points)
            if rule == "finetune":
                estimate = finetune_estimate(measured, work, (overhead, rate), count)
            else:
                estimate = count * overhead + rate * work[rule]
            print(f"{rule:<18}{count:>6}{overhead:>12.1f}{1000 * rate:>17.3f}{estimate:>12.0f}")
        else:  # its mean job time in the finished run (a pruning curve's: per dev pass)
            times = [seconds(path) for path in (args.run / "logs" / rule).glob("**/*.benchmark.tsv")]
            if not times:
                continue  # a local rule: no benchmark file, seconds at most
            scale = 1.0
            if rule == "pruning_curve":
                scale = pruning_passes(target, layers * heads) / pruning_passes(finished, layers * heads)
            estimate = count * float(np.mean(times)) * scale
            kind = "mean" if scale == 1.0 else f"mean x{scale:.2f}"
            print(f"{rule:<18}{count:>6}{kind:>12}{'':>17}{estimate:>12.0f}")
        grand += estimate
    print(f"total: {grand:.0f} s = {grand / 3600:.2f} h (jobs one at a time, as with --cores 2)")


if __name__ == "__main__":
    main()
