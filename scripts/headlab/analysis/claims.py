"""The paper's checkable claims, each with our estimate, its interval and a verdict.

Verdict rule for a claim about a direction in several tasks (`headlab.analysis.claim_rules`):
`supported` when every task's interval lies on the claimed side of 0 with p < alpha,
`contradicted` when some task lies on the other side with p < alpha / (number of tasks), else
`inconclusive`. A claim whose inputs are not in the run (a task not configured, a head the model
does not have) is `not run`, with the reason in `note`; tasks of a claim missing from the run
are named there too. The estimates are in points (percent of the metric) and are means over
fine-tuning seeds: the expected difference over seeds and dev examples like these, with the
crossed t interval of `headlab.analysis.significance` (example and seed parts of the variance)
and p = max(t, joint-swap permutation); the attention claims are descriptive statistics of every
seed's model with the same crossed interval, the drift claim a count.

"Disabling some single head improves every task" is decided by the simultaneous test of the
sweep statistics (`some_head_improves`: one-sided permutation p-values, Bonferroni over the
heads): supported when it rejects in every task, contradicted only when in some task every
head's simultaneous upper bound (Bonferroni over heads x tasks) is below 0. The paper's own
number, the best head scored on the data it was chosen on, is kept as a `description`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from headlab.analysis.attention_claims import cls_sep_claim, drift_claim, sst2_sep_claim
from headlab.analysis.claim_rules import (
    INTERVAL_RULE,
    VERDICTS,
    Unit,
    claim_row,
    inference_unit,
    not_run,
    points,
    with_units,
)
from headlab.analysis.mode_claims import framenet_claim, modes_agree_claim
from headlab.analysis.significance import StatisticsSettings, delta_inference, simultaneous_bounds
from headlab.conditions import FINETUNED, PRETRAINED, SCRATCH
from headlab.data.tasks import get_task

CLAIMS_SCHEMA: dict[str, pl.DataType] = {
    "claim_id": pl.String(),
    "section": pl.String(),
    "claim": pl.String(),
    "paper": pl.String(),
    "ours": pl.String(),
    "estimate": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
    "verdict": pl.String(),
    "rule": pl.String(),
    "note": pl.String(),
}
# Every claim of the table, in its row order.
CLAIM_IDS = (
    "finetuning_helps",
    "pretraining_helps",
    "last_layers_change",
    "cls_then_sep",
    "sst2_more_sep",
    "some_head_helps",
    "some_head_helps_naive",
    "some_head_helps_held_out",
    "random_head_helps",
    "layer1_helps_rte",
    "pair_heads_matter",
    "modes_agree",
    "framenet_heads_harmless",
)


@dataclass(frozen=True)
class ClaimInputs:
    """What the claims read: the run's tables (None or empty: not in the run) and the config's
    claims.* and statistics.* values (their defaults: the config schema)."""

    model: str
    tasks: list[str]
    pair_heads: Sequence[str]  # claims.pair_heads (of this model)
    modes: Sequence[str]  # ablation.modes
    agreement_threshold: float  # claims.agreement_threshold
    no_harm_margin: float  # claims.no_harm_margin
    settings: StatisticsSettings  # statistics.*
    predictions: pl.DataFrame | None = None  # rule evaluate's, every task and seed
    statistics: pl.DataFrame | None = None  # pooled sweep statistics of the first mode, every task
    selection: pl.DataFrame | None = None  # their best-head estimates
    # task -> cls/sep stats of the fine-tuned models, every seed (a `seed` column)
    attention: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    drift: Mapping[str, pl.DataFrame] = field(default_factory=dict)  # task -> per-head cosine, every seed
    agreement: pl.DataFrame | None = None  # rule mode_agreement's, every task
    framenet_effect: pl.DataFrame | None = None  # rule framenet_effect's
    framenet_missing: str | None = None  # why the FrameNet experiment is not in the run


def _condition_delta(
    inputs: ClaimInputs, task: str, better: str, worse: str, rng: np.random.Generator
) -> Unit:
    """Mean over seeds of metric(better) - metric(worse) on the dev set, crossed interval."""
    metric = get_task(task).primary_metric
    rows = inputs.predictions.filter(pl.col("task") == task)  # type: ignore[union-attr]
    pred, base = [], []
    for seed in sorted(rows["seed"].unique().to_list()):
        of_seed = rows.filter(pl.col("seed") == seed)
        a = of_seed.filter(pl.col("condition") == better).sort("example")
        b = of_seed.filter(pl.col("condition") == worse).sort("example")
        gold = a["label"].to_numpy()
        pred.append(a["prediction"].to_numpy()[None])  # (1, n)
        base.append(b["prediction"].to_numpy())
    return inference_unit(
        task, delta_inference(metric, np.stack(pred), np.stack(base), gold, inputs.settings, rng)
    )


def _table1_claim(
    inputs: ClaimInputs, claim_id: str, claim: str, paper: str, better: str, worse: str
) -> dict[str, object]:
    row = claim_row(claim_id, "4.3 / Table 1", claim, paper, INTERVAL_RULE.format(side="above"))
    if inputs.predictions is None or not inputs.tasks:
        return not_run(row, "no evaluation predictions in the run")
    rng = np.random.default_rng([inputs.settings.seed, len(claim_id)])
    units = [_condition_delta(inputs, t, better, worse, rng) for t in inputs.tasks]
    return with_units(row, units, +1, alpha=inputs.settings.alpha)


def _pooled(inputs: ClaimInputs, task: str) -> pl.DataFrame:
    metric = get_task(task).primary_metric
    return inputs.statistics.filter((pl.col("task") == task) & (pl.col("metric") == metric))  # type: ignore[union-attr]


def _mask_unit(inputs: ClaimInputs, task: str, mask: str, name: str | None = None) -> Unit | None:
    rows = _pooled(inputs, task).filter(pl.col("mask") == mask)
    if rows.height == 0:
        return None
    r = rows.row(0, named=True)
    return Unit(name or task, r["delta"], r["ci_low"], r["ci_high"], r.get("p_value", float("nan")))


def _selection_unit(inputs: ClaimInputs, task: str, estimate: str) -> Unit | None:
    metric = get_task(task).primary_metric
    rows = inputs.selection.filter(  # type: ignore[union-attr]
        (pl.col("task") == task) & (pl.col("metric") == metric) & (pl.col("estimate") == estimate)
    )
    if rows.height == 0:
        return None
    r = rows.row(0, named=True)
    label = f"{task} ({r['mask']})" if r["mask"] else task
    return Unit(label, r["delta"], r["ci_low"], r["ci_high"], r.get("p_value", float("nan")))


def _ablation_claim(
    inputs: ClaimInputs,
    row: dict[str, object],
    tasks: Sequence[str],
    unit_of: Callable[[str], Unit | None],
    direction: int,
) -> dict[str, object]:
    if inputs.statistics is None or inputs.selection is None:
        return not_run(row, "no sweep statistics in the run")
    present = [t for t in tasks if t in inputs.tasks]
    missing = [t for t in tasks if t not in inputs.tasks]
    units = [u for u in (unit_of(t) for t in present) if u is not None]
    if not units:
        return not_run(row, f"not in the run: {', '.join(missing) or 'the masks'}")
    return with_units(row, units, direction, missing, inputs.settings.alpha)


def _pair_claim(inputs: ClaimInputs) -> dict[str, object]:
    heads = list(inputs.pair_heads)
    row = claim_row(
        "pair_heads_matter",
        "5",
        f"STS-B and RTE both rely on the same pair of heads ({' + '.join(heads)}): "
        "disabling either hurts both",
        "Figure 8 (no number)",
        INTERVAL_RULE.format(side="below").replace("task's", "task x head's"),
    )
    if inputs.statistics is None:
        return not_run(row, "no sweep statistics in the run")
    present = [t for t in ("STS-B", "RTE") if t in inputs.tasks]
    units = [u for t in present for h in heads if (u := _mask_unit(inputs, t, h, f"{t} {h}")) is not None]
    if not present:
        return not_run(row, "not in the run: STS-B, RTE")
    if len(units) < len(present) * len(heads):
        return not_run(row, f"the model has no head(s) {', '.join(heads)} (claims.pair_heads_by_model)")
    return with_units(
        row, units, -1, [t for t in ("STS-B", "RTE") if t not in inputs.tasks], inputs.settings.alpha
    )


PAPER_BEST_HEAD = "+0.1 (STS-B) to +1.2 (MRPC)"


def _selection_row(inputs: ClaimInputs, task: str, estimate: str) -> dict[str, object] | None:
    metric = get_task(task).primary_metric
    rows = inputs.selection.filter(  # type: ignore[union-attr]
        (pl.col("task") == task) & (pl.col("metric") == metric) & (pl.col("estimate") == estimate)
    )
    return rows.row(0, named=True) if rows.height else None


def _heads_upper(inputs: ClaimInputs, task: str, m: int) -> float:
    """The largest simultaneous upper bound over the task's heads (Bonferroni over m bounds)."""
    heads = _pooled(inputs, task)
    if "kind" in heads.columns:
        heads = heads.filter(pl.col("kind") == "head")
    if heads.height == 0 or "se" not in heads.columns:
        return float("nan")
    _, upper = simultaneous_bounds(
        heads["delta"].to_numpy(), heads["se"].to_numpy(), heads["df"].to_numpy(), inputs.settings.alpha, m
    )
    return float(np.max(upper)) if np.isfinite(upper).all() else float("nan")


def _existence_claim(inputs: ClaimInputs) -> dict[str, object]:
    row = claim_row(
        "some_head_helps",
        "4.6 / Figure 8",
        "disabling some single head improves every task",
        PAPER_BEST_HEAD,
        "simultaneous test over the heads (one-sided joint-swap permutation p-values, Bonferroni): "
        "supported if it rejects in every task; contradicted if in some task every head's "
        "simultaneous upper bound (Bonferroni over heads x tasks) is below 0",
    )
    if inputs.statistics is None or inputs.selection is None:
        return not_run(row, "no sweep statistics in the run")
    present = [t for t in inputs.tasks if _selection_row(inputs, t, "some_head_improves") is not None]
    if not present:
        return not_run(row, "no simultaneous test in the sweep statistics")
    texts, rejected, below = [], [], []
    for task in present:
        r = _selection_row(inputs, task, "some_head_improves")
        pooled = _pooled(inputs, task)
        heads = pooled.filter(pl.col("kind") == "head").height if "kind" in pooled.columns else 1
        upper = _heads_upper(inputs, task, max(heads, 1) * len(present))
        rejected.append(bool(r["p_value"] < inputs.settings.alpha))
        below.append(bool(upper < 0))
        bound = points(upper) if not upper > 1 else "above +100 (few seeds: few degrees of freedom)"
        texts.append(
            f"{task} ({r['mask']}) {points(r['delta'])}, simultaneous p = {r['p_value']:.3g}, "
            f"largest upper bound {bound}"
        )
    verdict = "supported" if all(rejected) else "contradicted" if any(below) else "inconclusive"
    missing = [t for t in inputs.tasks if t not in present]
    return {
        **row,
        "ours": "; ".join(texts),
        "estimate": None,
        "ci_low": None,
        "ci_high": None,
        "verdict": verdict,
        "note": f"not in the run: {', '.join(missing)}" if missing else None,
    }


def _naive_description(inputs: ClaimInputs) -> dict[str, object]:
    row = claim_row(
        "some_head_helps_naive",
        "4.6 / Figure 8",
        "the best single head's gain (chosen and scored on the same dev examples, as the paper)",
        PAPER_BEST_HEAD,
        "a description, not a test: the largest of many noisy deltas is biased upward",
    )
    made = _ablation_claim(
        inputs, row, inputs.tasks, lambda t: _selection_unit(inputs, t, "best_head_naive"), +1
    )
    return made if made["verdict"] == "not run" else {**made, "verdict": "description"}


def _held_out_claim(inputs: ClaimInputs) -> dict[str, object]:
    row = claim_row(
        "some_head_helps_held_out",
        "4.6 / Figure 8",
        "disabling some single head improves every task "
        "(cross-fitted: head chosen on one half of the dev set, scored on the other, both ways)",
        PAPER_BEST_HEAD,
        "supported if every task's interval is above 0 (and p < alpha); never contradicted: a chosen "
        "head that does not replicate does not show that no head helps",
    )
    made = _ablation_claim(
        inputs, row, inputs.tasks, lambda t: _selection_unit(inputs, t, "best_head_split"), +1
    )
    return {**made, "verdict": "inconclusive"} if made["verdict"] == "contradicted" else made


def claims_table(inputs: ClaimInputs) -> pl.DataFrame:
    """One row per claim (CLAIMS_SCHEMA), in the paper's order."""
    rng = np.random.default_rng([inputs.settings.seed, 7])
    tasks = inputs.tasks
    rows = [
        _table1_claim(
            inputs,
            "finetuning_helps",
            "fine-tuning beats no fine-tuning on every task",
            "+35.9 points on average",
            FINETUNED,
            PRETRAINED,
        ),
        _table1_claim(
            inputs,
            "pretraining_helps",
            "fine-tuning from random weights is below fine-tuning from pre-trained weights on every task",
            "lower on every task",
            FINETUNED,
            SCRATCH,
        ),
        drift_claim(tasks, inputs.drift),
        cls_sep_claim(tasks, inputs.attention, inputs.settings.resamples, inputs.settings.alpha, rng),
        sst2_sep_claim(tasks, inputs.attention, inputs.settings.resamples, inputs.settings.alpha, rng),
        _existence_claim(inputs),
        _naive_description(inputs),
        _held_out_claim(inputs),
        _ablation_claim(
            inputs,
            claim_row(
                "random_head_helps",
                "4.6",
                "disabling a random head helps on average for MRPC and RTE",
                "an increase on average (no number)",
                INTERVAL_RULE.format(side="above"),
            ),
            ["MRPC", "RTE"],
            lambda t: _selection_unit(inputs, t, "random_head"),
            +1,
        ),
        _ablation_claim(
            inputs,
            claim_row(
                "layer1_helps_rte",
                "4.6 / Figure 9",
                "disabling the first layer helps RTE",
                "+3.2 points",
                INTERVAL_RULE.format(side="above"),
            ),
            ["RTE"],
            lambda t: _mask_unit(inputs, t, "L1"),
            +1,
        ),
        _pair_claim(inputs),
        modes_agree_claim(inputs.agreement, list(inputs.modes), inputs.agreement_threshold),
        framenet_claim(
            inputs.framenet_effect, inputs.no_harm_margin, inputs.framenet_missing, inputs.settings.alpha
        ),
    ]
    if [r["claim_id"] for r in rows] != list(CLAIM_IDS):
        raise AssertionError("claims_table and CLAIM_IDS list different claims")
    return pl.DataFrame(rows, schema=CLAIMS_SCHEMA)


def claims_markdown(table: pl.DataFrame, model: str) -> str:
    """The claims as a Markdown report card: a count of verdicts, then one table row per claim."""
    counts = {v: n for v in VERDICTS if (n := table.filter(pl.col("verdict") == v).height)}
    lines = [
        f"# The paper's claims, checked on {model}",
        "",
        ", ".join(f"{n} {v}" for v, n in counts.items()) + f" (of {table.height} claims).",
        "",
        "Estimates in points, means over fine-tuning seeds, with 95 % intervals in brackets. "
        "Each claim's verdict follows its rule.",
        "",
        "| section | claim | paper | ours | verdict | rule | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in table.iter_rows(named=True):
        cells = [
            r["section"],
            r["claim"],
            r["paper"],
            r["ours"],
            f"**{r['verdict']}**",
            r["rule"],
            r["note"] or "",
        ]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
