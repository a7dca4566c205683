"""The paper's claims about where attention goes (Sec. 4.3, 4.4), checked on the attention tables.

Descriptive statistics of the first seed's fine-tuned models: per example the mean over heads
of the attention to [CLS] / [SEP] (rule attention_stats), with a bootstrap over dev examples; and
the per-head cosine between pretrained and fine-tuned attention (rule attention_drift), which
has no interval (one seed's statistic), so its claim is decided by a stated count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from headlab.analysis.claim_rules import INTERVAL_RULE, Unit, claim_row, not_run, with_units

PAIR_TASKS = ("MRPC", "STS-B", "QQP", "RTE", "QNLI", "MNLI")


def _example_bootstrap(
    values: np.ndarray, rng: np.random.Generator, resamples: int, alpha: float
) -> tuple[float, float]:
    """Percentile interval of the mean of per-example values."""
    drawn = rng.integers(0, values.size, size=(resamples, values.size))
    low, high = np.quantile(values[drawn].mean(1), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _layer_profile(table: pl.DataFrame, stat: str) -> np.ndarray:
    """(examples, layers): mean over heads of one statistic per example."""
    rows = table.filter(pl.col("stat") == stat).group_by("example", "layer").agg(pl.col("value").mean())
    wide = rows.sort("layer").pivot(on="layer", index="example", values="value").sort("example")
    return wide.drop("example").to_numpy()


def cls_sep_claim(
    tasks: Sequence[str],
    attention: Mapping[str, pl.DataFrame],
    resamples: int,
    alpha: float,
    rng: np.random.Generator,
) -> dict[str, object]:
    row = claim_row(
        "cls_then_sep",
        "4.4 / Figure 6",
        "earlier layers attend to [CLS], later layers to [SEP], in every task",
        "trend consistent across tasks (no number)",
        "per task and token: mean attention (over heads, then examples) of the first half of the "
        "layers minus the second half (CLS) or the reverse (SEP); " + INTERVAL_RULE.format(side="above"),
    )
    present = [t for t in tasks if t in attention]
    if not present:
        return not_run(row, "no attention statistics of the fine-tuned models in the run")
    units = []
    for task in present:
        for stat, sign in (("cls", 1.0), ("sep", -1.0)):
            profile = _layer_profile(attention[task], stat)  # (examples, layers)
            half = profile.shape[1] // 2
            per_example = sign * (np.nanmean(profile[:, :half], 1) - np.nanmean(profile[:, half:], 1))
            low, high = _example_bootstrap(per_example, rng, resamples, alpha)
            units.append(Unit(f"{task} {stat.upper()}", float(per_example.mean()), low, high))
    return with_units(row, units, +1)


def sst2_sep_claim(
    tasks: Sequence[str],
    attention: Mapping[str, pl.DataFrame],
    resamples: int,
    alpha: float,
    rng: np.random.Generator,
) -> dict[str, object]:
    row = claim_row(
        "sst2_more_sep",
        "4.4 / Figure 6",
        "SST-2 gives [SEP] more attention than the sentence-pair tasks",
        "SST-2's [SEP] weights are the greatest (no number)",
        "mean [SEP] attention (layers, heads, examples) of SST-2 minus each pair task's, "
        "independent bootstraps; " + INTERVAL_RULE.format(side="above").replace("task's", "pair's"),
    )
    pairs = [t for t in tasks if t in PAIR_TASKS and t in attention]
    if "SST-2" not in attention or not pairs:
        return not_run(row, "needs attention statistics of SST-2 and a pair task")

    def per_example(task: str) -> np.ndarray:
        return np.nanmean(_layer_profile(attention[task], "sep"), axis=1)

    sst2 = per_example("SST-2")
    units = []
    for task in pairs:
        other = per_example(task)
        draws_a = sst2[rng.integers(0, sst2.size, (resamples, sst2.size))].mean(1)
        draws_b = other[rng.integers(0, other.size, (resamples, other.size))].mean(1)
        low, high = np.quantile(draws_a - draws_b, [alpha / 2, 1 - alpha / 2])
        units.append(Unit(f"vs {task}", float(sst2.mean() - other.mean()), float(low), float(high)))
    return with_units(row, units, +1)


def drift_claim(tasks: Sequence[str], drift: Mapping[str, pl.DataFrame]) -> dict[str, object]:
    row = claim_row(
        "last_layers_change",
        "4.3 / Figure 5",
        "the last two layers change most in fine-tuning (all tasks but QQP)",
        "all tasks except QQP",
        "per task but QQP: the two layers of lowest mean cosine (pretrained vs fine-tuned attention) "
        "are the last two; supported if in every task, contradicted if in none, else inconclusive "
        "(no interval: one seed's descriptive statistic)",
    )
    present = [t for t in tasks if t in drift and t != "QQP"]
    if not present:
        return not_run(row, "no attention drift tables (tasks other than QQP) in the run")
    holds, texts = [], []
    for task in present:
        layers = drift[task].group_by("layer").agg(pl.col("cosine_mean").mean()).sort("layer")
        lowest = set(layers.sort("cosine_mean")["layer"].to_list()[:2])
        last = set(layers["layer"].to_list()[-2:])
        holds.append(lowest == last)
        texts.append(f"{task}: lowest L{'/L'.join(map(str, sorted(lowest)))}")
    verdict = "supported" if all(holds) else "contradicted" if not any(holds) else "inconclusive"
    share = float(np.mean(holds))
    return {
        **row,
        "ours": "; ".join(texts),
        "estimate": share,
        "ci_low": None,
        "ci_high": None,
        "verdict": verdict,
        "note": "estimate: share of tasks where it holds",
    }
