"""Estimate a config's run time from the `.benchmark.tsv` files of a finished run.

Every model job's time is taken as an overhead plus a cost per token of work: training tokens x
epochs (finetune), dev tokens x 3 conditions (evaluate), dev tokens x masks (ablate_sweep,
ablate_mask), sampled dev tokens (attention_stats, attention_drift). The cost per token and the
overhead of each rule are fitted (least squares, overhead >= 0) on the finished run's jobs; the
other rules take their mean time. The target config's work is counted on its own data samples
(the same seeded sampling as prepare_task, tokenised with the model's tokenizer), so tasks
with longer texts cost more. With `--cores 2` and 2 threads per job the jobs run one at a
time, so the estimate is the sum. Run from the repository root, e.g.:

    python benchmarks/estimate_runtime.py --run /tmp/quick --configfile configs/cpu-study.yaml

`--run` is the folder the finished run ran in (its logs/, results/ and resources/).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.data.glue import prepare_split
from headlab.model.batching import encode
from headlab.model.loading import load_encoder
from headlab.model.specs import ModelSpec

REPO = Path(__file__).resolve().parents[1]
MODEL_RULES = ("finetune", "evaluate", "ablate_sweep", "ablate_mask", "attention_stats", "attention_drift")


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


def load_config(path: Path) -> dict:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in yaml.safe_load(path.read_text()).items():
        base[key] = (
            {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return base


def work_of(run: Path, config: dict, tokenizer: object, masks: int) -> dict[str, list[tuple[Path, float]]]:
    """Per model rule, (benchmark file, work) of the finished run's jobs."""
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
                train_tokens * config["finetune"]["epochs"],
            ),
            "evaluate": (f"evaluate/*/{task}/seed-*.benchmark.tsv", 3 * dev_tokens),
            "ablate_sweep": (f"ablate_sweep/*/{task}/seed-*/*.benchmark.tsv", masks * dev_tokens),
            "ablate_mask": (f"ablate_mask/*/{task}/seed-*/*/*.benchmark.tsv", 2 * dev_tokens),
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
            found[rule] += [(path, work) for pattern in patterns for path in logs.glob(pattern)]
    return found


def target_work(config: dict, tokenizer: object, glue_dir: str) -> dict[str, float]:
    """Per model rule, the work of one job unit of the target config summed over its tasks and seeds."""
    length, data = config["max_length"], config["data"]
    seeds, modes = len(config["finetune"]["seeds"]), len(config["ablation"]["modes"])
    named = len(config["ablation"]["masks"])
    total: dict[str, float] = defaultdict(float)
    jobs: dict[str, int] = defaultdict(int)
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
        total["finetune"] += 2 * seeds * train * config["finetune"]["epochs"]
        total["evaluate"] += seeds * 3 * dev
        total["ablate_sweep"] += seeds * modes * dev  # x masks below
        total["ablate_mask"] += seeds * modes * named * 2 * dev
        total["attention_stats"] += (1 + seeds) * sample  # the pretrained encoder once, each seed's
        total["attention_drift"] += seeds * 2 * sample
        if config["framenet"]["corpus_dir"]:
            # the FrameNet heads and the random sets, each run from its lowest layer like a sweep's
            # masks: the sweep's cost per mask and dev token
            sets = config["framenet"].get("random_sets", {}).get("count", 100)
            total["framenet_ablation"] += seeds * modes * (2 + sets) * dev
            jobs["framenet_ablation"] += seeds * modes
        for rule, count in (
            ("finetune", 2 * seeds),
            ("evaluate", seeds),
            ("ablate_sweep", seeds * modes),
            ("ablate_mask", seeds * modes * named),
            ("attention_stats", 1 + seeds),
            ("attention_drift", seeds),
        ):
            jobs[rule] += count
    return {**total, **{f"{rule}#jobs": n for rule, n in jobs.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="the finished run's folder")
    parser.add_argument("--run-config", type=Path, default=REPO / "configs" / "quick.yaml")
    parser.add_argument("--configfile", type=Path, required=True, help="the config to estimate")
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
    print(f"{'rule':<18}{'jobs':>6}{'overhead s':>12}{'s per 1k tokens':>17}{'estimate s':>12}")
    grand = 0.0
    # a framenet_ablation mask costs what a sweep's mask costs (per mask and dev token)
    measured["framenet_ablation"] = measured["ablate_sweep"]
    for rule in (*MODEL_RULES, "framenet_ablation"):
        if f"{rule}#jobs" not in work:
            continue
        points = [(w, seconds(path)) for path, w in measured[rule]]
        if not points:
            print(f"{rule:<18} no benchmark in {args.run}/logs")
            continue
        overhead, rate = fit(points)
        jobs = int(work[f"{rule}#jobs"])
        estimate = jobs * overhead + rate * work[rule]
        grand += estimate
        print(f"{rule:<18}{jobs:>6}{overhead:>12.1f}{1000 * rate:>17.3f}{estimate:>12.0f}")
    others = [
        seconds(p)
        for p in (args.run / "logs").glob("*/**/*.benchmark.tsv")
        if p.relative_to(args.run / "logs").parts[0] not in MODEL_RULES
    ]
    rest = float(np.mean(others)) if others else 0.0
    count = (
        len(target["tasks"]) * (2 + len(target["ablation"]["modes"])) + 8
    )  # prepare, statistics, collecting rules
    grand += rest * count
    print(f"{'other rules':<18}{count:>6}{'':>12}{'':>17}{rest * count:>12.0f}")
    print(f"total: {grand:.0f} s = {grand / 3600:.2f} h (jobs one at a time, as with --cores 2)")


if __name__ == "__main__":
    main()
