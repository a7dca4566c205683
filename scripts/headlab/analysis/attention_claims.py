"""The paper's claims about where attention goes (Sec. 4.3, 4.4), checked on the attention tables.

Descriptive statistics of the fine-tuned models of every fine-tuning seed (each table has a
``seed`` column): per example the mean over heads of the attention to [CLS] / [SEP] (rule
attention_stats; for SST-2's claim, as the paper measures a feature, the maximum over the [SEP]
tokens, not their sum), with the crossed interval of `headlab.analysis.significance` (every seed's
model reads the same dev examples: one example resample for every seed, plus the seeds' spread
on S - 1 degrees of freedom; one seed: examples only); and the per-head cosine between
pretrained and fine-tuned attention (rule attention_drift), which has no interval, so its
claim is decided by a stated count over tasks and seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.claim_rules import inference_unit, not_run, with_units
from headlab.analysis.significance import Inference, pooled_inference, t_bounds, t_pvalues
from headlab.data.tasks import get_task
from headlab.heads import parse_name


def _crossed(
    per_seed: Sequence[np.ndarray], rng: np.random.Generator, resamples: int, alpha: float
) -> Inference:
    """The mean over seeds of each seed's mean of per-example values (examples,), every seed on
    the same examples (one resample of them for every seed)."""
    values = np.stack(per_seed)  # (S, n): an error if the seeds read different numbers of examples
    drawn = rng.integers(0, values.shape[1], size=(resamples, values.shape[1]))  # (B, n)
    replicates = values[:, drawn].mean(axis=2).T  # (S, B, n) -> (B, S)
    observed = values.mean(axis=1)[:, None]  # (S, 1)
    return pooled_inference(observed, replicates[:, :, None], alpha)


def _seeds(table: pl.DataFrame) -> list[int]:
    return sorted(table["seed"].unique().to_list())


# Attention to a feature with several tokens is the maximum over its tokens (the paper, Sec. 4.4):
# for [SEP], the larger of the first and the second (a single sentence has one).
SEP_MAX = "sep_max"


def _head_values(table: pl.DataFrame, stat: str) -> pl.DataFrame:
    """example, layer, head, value of one statistic; `SEP_MAX` is the per-head maximum of
    sep_first and sep_second (NaN ones left out: a single sentence has no second [SEP])."""
    if stat != SEP_MAX:
        return table.filter(pl.col("stat") == stat)
    parts = table.filter(pl.col("stat").is_in(["sep_first", "sep_second"])).with_columns(
        pl.col("value").fill_nan(None)
    )
    return parts.group_by("example", "layer", "head").agg(pl.col("value").max())


def _layer_profile(table: pl.DataFrame, stat: str) -> np.ndarray:
    """(examples, layers): mean over heads of one statistic per example (one seed's table)."""
    rows = _head_values(table, stat).group_by("example", "layer").agg(pl.col("value").mean())
    wide = rows.sort("layer").pivot(on="layer", index="example", values="value").sort("example")
    return wide.drop("example").to_numpy()


def _per_seed(table: pl.DataFrame, values: Callable[[pl.DataFrame], np.ndarray]) -> list[np.ndarray]:
    """values(one seed's rows) for every seed of the table, in seed order."""
    return [values(table.filter(pl.col("seed") == seed)) for seed in _seeds(table)]


def cls_sep_claim(
    tasks: Sequence[str],
    attention: Mapping[str, pl.DataFrame],
    resamples: int,
    alpha: float,
    rng: np.random.Generator,
) -> dict[str, object]:
    present = [t for t in tasks if t in attention]
    if not present:
        return not_run({}, "no attention statistics of the fine-tuned models in the run")
    units = []
    for task in present:
        for stat, sign in (("cls", 1.0), ("sep", -1.0)):

            def halves(table: pl.DataFrame, stat: str = stat, sign: float = sign) -> np.ndarray:
                profile = _layer_profile(table, stat)  # (examples, layers)
                half = profile.shape[1] // 2
                return sign * (np.nanmean(profile[:, :half], 1) - np.nanmean(profile[:, half:], 1))

            inference = _crossed(_per_seed(attention[task], halves), rng, resamples, alpha)
            units.append(inference_unit(f"{task} {stat.upper()}", inference))
    return with_units({}, units, +1, alpha=alpha)


def sst2_sep_claim(
    tasks: Sequence[str],
    attention: Mapping[str, pl.DataFrame],
    resamples: int,
    alpha: float,
    rng: np.random.Generator,
) -> dict[str, object]:
    pairs = [t for t in tasks if get_task(t).is_pair and t in attention]
    if "SST-2" not in attention or not pairs:
        return not_run({}, "needs attention statistics of SST-2 and a pair task")

    def sep(table: pl.DataFrame) -> np.ndarray:
        return np.nanmean(_layer_profile(table, SEP_MAX), axis=1)  # (examples,)

    sst2 = _crossed(_per_seed(attention["SST-2"], sep), rng, resamples, alpha)
    units = []
    for task in pairs:
        other = _crossed(_per_seed(attention[task], sep), rng, resamples, alpha)
        units.append(inference_unit(f"vs {task}", _difference(sst2, other, alpha)))
    return with_units({}, units, +1, alpha=alpha)


def _difference(a: Inference, b: Inference, alpha: float) -> Inference:
    """a - b of two independent estimates (other tasks, other examples): variances add, with
    Satterthwaite's degrees of freedom."""
    va, vb = a.se**2, b.se**2
    se = np.sqrt(va + vb)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (va + vb) ** 2 / (va**2 / a.df + vb**2 / b.df)
    df = np.where(np.isfinite(df), df, np.inf)
    estimate = a.estimate - b.estimate
    low, high = t_bounds(estimate, se, df, 1 - alpha)
    return Inference(estimate, se, df, low, high, t_pvalues(estimate, se, df))


def drift_claim(tasks: Sequence[str], drift: Mapping[str, pl.DataFrame]) -> dict[str, object]:
    present = [t for t in tasks if t in drift and t != "QQP"]
    if not present:
        return not_run({}, "no attention drift tables (tasks other than QQP) in the run")
    holds, texts = [], []
    for task in present:
        table = drift[task]
        seeds = _seeds(table)
        kept = 0
        lowest_of_seeds = []
        for seed in seeds:
            layers = (
                table.filter(pl.col("seed") == seed)
                .group_by("layer")
                .agg(pl.col("cosine_mean").mean())
                .sort("layer")
            )
            lowest = set(layers.sort("cosine_mean")["layer"].to_list()[:2])
            is_last = lowest == set(layers["layer"].to_list()[-2:])
            kept += is_last
            holds.append(is_last)
            lowest_of_seeds.append("L" + "/L".join(map(str, sorted(lowest))))
        texts.append(f"{task}: lowest {', '.join(lowest_of_seeds)} (last two in {kept}/{len(seeds)} seeds)")
    verdict = "supported" if all(holds) else "contradicted" if not any(holds) else "inconclusive"
    return {
        "ours": "; ".join(texts),
        "estimate": float(np.mean(holds)),
        "ci_low": None,
        "ci_high": None,
        "verdict": verdict,
        "note": "estimate: share of task x seed pairs where it holds",
    }


def pair_overlap_claim(inputs: ClaimInputs) -> dict[str, object]:
    """Sec. 5: the STS-B/RTE pair of heads attends to words that occur in both sentences. Per
    task and pair head, per example: the head's `overlap` (attention from one sentence to the
    other sentence's shared words, rule attention_stats) minus the mean over every head of the
    model; the crossed interval over seeds and examples (direction +1)."""
    problem = inputs.pair_heads_problem()
    if problem is not None:
        return not_run({}, problem)
    present = [t for t in ("STS-B", "RTE") if t in inputs.tasks and t in inputs.attention]
    if not present:
        return not_run({}, "needs the attention statistics of STS-B or RTE (config key tasks)")
    if not all("overlap" in set(inputs.attention[t]["stat"].unique().to_list()) for t in present):
        return not_run({}, "the attention tables have no overlap statistic (rerun rule attention_stats)")
    rng = np.random.default_rng([inputs.settings.seed, 9])
    units = []
    for task in present:
        for name in inputs.pair_heads:
            layer, head = parse_name(name)

            def excess(table: pl.DataFrame, layer: int = layer, head: int | None = head) -> np.ndarray:
                rows = table.filter(pl.col("stat") == "overlap")
                every = rows.group_by("example").agg(pl.col("value").mean()).sort("example")  # (examples,)
                own = rows.filter((pl.col("layer") == layer) & (pl.col("head") == head)).sort("example")
                return own["value"].to_numpy() - every["value"].to_numpy()  # (examples,)

            inference = _crossed(
                _per_seed(inputs.attention[task], excess),
                rng,
                inputs.settings.resamples,
                inputs.settings.alpha,
            )
            units.append(inference_unit(f"{task} {name}", inference))
    missing = [t for t in ("STS-B", "RTE") if t not in present]
    return with_units({}, units, +1, missing, inputs.settings.alpha)
