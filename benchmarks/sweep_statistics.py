"""Benchmark: the whole statistics of one sweep (rule sweep_statistics) on synthetic predictions.

A BERT-base-sized sweep (12 x 12 heads + 12 layers + the baseline = 157 masks) over 1000 dev
examples and 3 fine-tuning seeds, B = 1000 resamples, for each metric of the chosen task:
per-seed paired bootstrap intervals and paired permutation tests, the crossed interval across
seeds, BH per family, the random-head null, the best-head estimates and the simultaneous test.
Run from the repository root:

    python benchmarks/sweep_statistics.py --task MRPC --repeats 3

The issue's target: under a minute on a 2-core machine for MRPC (accuracy and F1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.analysis.sweep_statistics import StatisticsSettings, sweep_statistics
from headlab.data.tasks import get_task
from headlab.workflow.defaults import config_defaults


def synthetic_predictions(task_name: str, layers: int, heads: int, examples: int, seeds: int) -> pl.DataFrame:
    """A sweep's predictions: each mask flips a few of the baseline's predictions (or, for a
    regression task, adds noise), every seed its own baseline."""
    task = get_task(task_name)
    rng = np.random.default_rng(0)
    masks = [("baseline", "baseline", None, None)]
    masks += [
        (f"L{layer}-H{head}", "head", layer, head)
        for layer in range(1, layers + 1)
        for head in range(1, heads + 1)
    ]
    masks += [(f"L{layer}", "layer", layer, None) for layer in range(1, layers + 1)]
    frames = []
    for seed in range(seeds):
        if task.is_regression:
            gold = rng.uniform(0, 5, examples)
            base = gold + rng.normal(0, 1, examples)
            pred = base[None] + rng.normal(0, 0.2, (len(masks), examples))
        else:
            gold = rng.integers(0, len(task.labels), examples).astype(float)
            base = np.where(rng.random(examples) < 0.8, gold, 1 - gold)
            flip = rng.random((len(masks), examples)) < 0.03
            pred = np.where(flip, 1 - base[None], base[None])
        pred[0] = base
        frames.append(
            pl.DataFrame(
                {
                    "model": "synthetic",
                    "task": task.name,
                    "seed": seed,
                    "mode": "uniform",
                    "mask": np.repeat([m[0] for m in masks], examples),
                    "kind": np.repeat([m[1] for m in masks], examples),
                    "layer": pl.Series(
                        np.repeat(np.array([m[2] for m in masks], dtype=object), examples).tolist(),
                        dtype=pl.Int32,
                    ),
                    "head": pl.Series(
                        np.repeat(np.array([m[3] for m in masks], dtype=object), examples).tolist(),
                        dtype=pl.Int32,
                    ),
                    "example": np.tile(np.arange(examples, dtype=np.int32), len(masks)),
                    "prediction": pred.reshape(-1),
                    "label": np.tile(gold, len(masks)),
                }
            )
        )
    return pl.concat(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="MRPC")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    task = get_task(args.task)
    predictions = synthetic_predictions(task.name, args.layers, args.heads, args.examples, args.seeds)
    defaults = StatisticsSettings.of(config_defaults("statistics"))
    settings = replace(defaults, resamples=args.resamples)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        table, selection = sweep_statistics(predictions, list(task.metrics), settings)
        times.append(time.perf_counter() - start)
    masks = predictions["mask"].n_unique()
    print(
        f"{task.name} ({', '.join(task.metrics)}): {masks} masks x {args.examples} examples"
        f" x {args.seeds} seeds, B = {args.resamples}: median {statistics.median(times):.1f} s"
        f" over {args.repeats} runs (min {min(times):.1f}, max {max(times):.1f});"
        f" {table.height} statistics rows, {selection.height} estimates"
    )


if __name__ == "__main__":
    main()
