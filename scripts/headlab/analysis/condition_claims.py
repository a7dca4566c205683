"""The claims of Sec. 4.3 / Table 1: one condition against another (`headlab.conditions`).

Each task's unit is the mean over fine-tuning seeds of metric(better) - metric(worse) on the
dev set, with the crossed interval and test of `headlab.analysis.significance` (example and
seed parts of the variance; p = max(t, joint-swap permutation)), in the paper's metric.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.claim_rules import Unit, inference_unit, not_run, with_units
from headlab.analysis.significance import delta_inference


def condition_unit(inputs: ClaimInputs, task: str, better: str, worse: str, rng: np.random.Generator) -> Unit:
    """Mean over the seeds that have both conditions (finetune.scratch_seeds may leave a seed
    without scratch) of metric(better) - metric(worse) on the task's dev set, crossed interval."""
    rows = inputs.predictions.filter(pl.col("task") == task)  # type: ignore[union-attr]
    pred, base = [], []
    gold = np.empty(0)
    for seed in sorted(rows["seed"].unique().to_list()):
        of_seed = rows.filter(pl.col("seed") == seed)
        a = of_seed.filter(pl.col("condition") == better).sort("example")
        b = of_seed.filter(pl.col("condition") == worse).sort("example")
        if a.height == 0 or b.height == 0:
            continue
        gold = a["label"].to_numpy()
        pred.append(a["prediction"].to_numpy()[None])  # (1, n)
        base.append(b["prediction"].to_numpy())
    if not pred:
        raise ValueError(f"{task}: no seed has predictions of both {better} and {worse}")
    inference = delta_inference(
        inputs.metric(task), np.stack(pred), np.stack(base), gold, inputs.settings, rng
    )
    return inference_unit(task, inference)


def condition_claim(
    inputs: ClaimInputs,
    better: str,
    worse: str,
    direction: int,
    tasks: Sequence[str] | None = None,
    key: int = 0,
) -> dict[str, object]:
    """`better` - `worse` in every one of `tasks` (default: the run's) on the claimed side
    (`direction` +1: above 0, -1: below); tasks of the claim missing from the run are named."""
    if inputs.predictions is None or not inputs.tasks:
        return not_run({}, "no evaluation predictions in the run (rule evaluate)")
    wanted = list(tasks) if tasks is not None else list(inputs.tasks)
    present = [t for t in wanted if t in inputs.tasks]
    missing = [t for t in wanted if t not in inputs.tasks]
    if not present:
        return not_run({}, f"needs tasks {', '.join(wanted)} (config key tasks)")
    rng = np.random.default_rng([inputs.settings.seed, 11, key])
    units = [condition_unit(inputs, t, better, worse, rng) for t in present]
    return with_units({}, units, direction, missing, inputs.settings.alpha)
