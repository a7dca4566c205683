"""The paper's checkable claims, each with our estimate, its interval and a verdict.

Verdict rule for a claim about a direction in several tasks (every interval is 95 %, or
1 - statistics.alpha): `supported` when every task's interval lies on the claimed side of 0,
`contradicted` when some task's interval lies on the other side, else `inconclusive`. A claim
whose inputs are not in the run (a task not configured, a head the model does not have) is
`not run`, with the reason in `note`; tasks of a claim missing from the run are named there too.
The estimates are in points (percent of the metric) and are means over fine-tuning seeds with
two-level bootstrap intervals (seeds, then dev examples); the attention claims are descriptive
statistics of every seed's model with the same two-level bootstrap, the drift claim a count.
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
    not_run,
    with_units,
)
from headlab.analysis.mode_claims import framenet_claim, modes_agree_claim
from headlab.analysis.significance import paired_deltas, percentile_interval, subset_deltas, two_level
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
    model: str
    tasks: list[str]
    predictions: pl.DataFrame | None = None  # rule evaluate's, every task and seed
    statistics: pl.DataFrame | None = None  # pooled sweep statistics of the first mode, every task
    selection: pl.DataFrame | None = None  # their best-head estimates
    # task -> cls/sep stats of the fine-tuned models, every seed (a `seed` column)
    attention: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    drift: Mapping[str, pl.DataFrame] = field(default_factory=dict)  # task -> per-head cosine, every seed
    pair_heads: Sequence[str] = ("L2-H12", "L4-H1")
    agreement: pl.DataFrame | None = None  # rule mode_agreement's, every task
    modes: Sequence[str] = ("uniform",)
    framenet_effect: pl.DataFrame | None = None  # rule framenet_effect's
    framenet_missing: str | None = None  # why the FrameNet experiment is not in the run
    agreement_threshold: float = 0.5
    no_harm_margin: float = 0.01
    resamples: int = 1000
    alpha: float = 0.05
    seed: int = 0


def _condition_delta(
    inputs: ClaimInputs, task: str, better: str, worse: str, rng: np.random.Generator
) -> Unit:
    """Mean over seeds of metric(better) - metric(worse) on the dev set, two-level interval."""
    spec = get_task(task)
    metric = spec.primary_metric
    rows = inputs.predictions.filter(pl.col("task") == task)  # type: ignore[union-attr]
    deltas, replicates = [], []
    for seed in sorted(rows["seed"].unique().to_list()):
        of_seed = rows.filter(pl.col("seed") == seed)
        a = of_seed.filter(pl.col("condition") == better).sort("example")
        b = of_seed.filter(pl.col("condition") == worse).sort("example")
        gold = a["label"].to_numpy()
        pred, base = a["prediction"].to_numpy()[None], b["prediction"].to_numpy()  # (1, n), (n,)
        replicates.append(paired_deltas(metric, pred, base, gold, inputs.resamples, rng))
        deltas.append(subset_deltas(metric, pred, base, gold, np.arange(gold.size))[0])
    low, high = percentile_interval(two_level(np.stack(replicates), rng), inputs.alpha)
    return Unit(task, float(np.mean(deltas)), float(low[0]), float(high[0]))


def _table1_claim(
    inputs: ClaimInputs, claim_id: str, claim: str, paper: str, better: str, worse: str
) -> dict[str, object]:
    row = claim_row(claim_id, "4.3 / Table 1", claim, paper, INTERVAL_RULE.format(side="above"))
    if inputs.predictions is None or not inputs.tasks:
        return not_run(row, "no evaluation predictions in the run")
    rng = np.random.default_rng([inputs.seed, len(claim_id)])
    return with_units(row, [_condition_delta(inputs, t, better, worse, rng) for t in inputs.tasks], +1)


def _pooled(inputs: ClaimInputs, task: str) -> pl.DataFrame:
    metric = get_task(task).primary_metric
    return inputs.statistics.filter((pl.col("task") == task) & (pl.col("metric") == metric))  # type: ignore[union-attr]


def _mask_unit(inputs: ClaimInputs, task: str, mask: str, name: str | None = None) -> Unit | None:
    rows = _pooled(inputs, task).filter(pl.col("mask") == mask)
    if rows.height == 0:
        return None
    r = rows.row(0, named=True)
    return Unit(name or task, r["delta"], r["ci_low"], r["ci_high"])


def _selection_unit(inputs: ClaimInputs, task: str, estimate: str) -> Unit | None:
    metric = get_task(task).primary_metric
    rows = inputs.selection.filter(  # type: ignore[union-attr]
        (pl.col("task") == task) & (pl.col("metric") == metric) & (pl.col("estimate") == estimate)
    )
    if rows.height == 0:
        return None
    r = rows.row(0, named=True)
    label = f"{task} ({r['mask']})" if r["mask"] else task
    return Unit(label, r["delta"], r["ci_low"], r["ci_high"])


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
    return with_units(row, units, direction, missing)


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
    return with_units(row, units, -1, [t for t in ("STS-B", "RTE") if t not in inputs.tasks])


def claims_table(inputs: ClaimInputs) -> pl.DataFrame:
    """One row per claim (CLAIMS_SCHEMA), in the paper's order."""
    rng = np.random.default_rng([inputs.seed, 7])
    tasks = inputs.tasks
    rows = [
        _table1_claim(
            inputs,
            "finetuning_helps",
            "fine-tuning beats no fine-tuning on every task",
            "+35.9 points on average",
            "finetuned-pretrained",
            "pretrained",
        ),
        _table1_claim(
            inputs,
            "pretraining_helps",
            "fine-tuning from random weights is below fine-tuning from pre-trained weights on every task",
            "lower on every task",
            "finetuned-pretrained",
            "finetuned-random",
        ),
        drift_claim(tasks, inputs.drift),
        cls_sep_claim(tasks, inputs.attention, inputs.resamples, inputs.alpha, rng),
        sst2_sep_claim(tasks, inputs.attention, inputs.resamples, inputs.alpha, rng),
        _ablation_claim(
            inputs,
            claim_row(
                "some_head_helps_naive",
                "4.6 / Figure 8",
                "disabling some single head improves every task (best head, scored where chosen)",
                "+0.1 (STS-B) to +1.2 (MRPC)",
                INTERVAL_RULE.format(side="above"),
            ),
            tasks,
            lambda t: _selection_unit(inputs, t, "best_head_naive"),
            +1,
        ),
        _ablation_claim(
            inputs,
            claim_row(
                "some_head_helps_held_out",
                "4.6 / Figure 8",
                "disabling some single head improves every task "
                "(head chosen on half of the dev set, scored on the other half)",
                "+0.1 (STS-B) to +1.2 (MRPC)",
                INTERVAL_RULE.format(side="above"),
            ),
            tasks,
            lambda t: _selection_unit(inputs, t, "best_head_split"),
            +1,
        ),
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
        framenet_claim(inputs.framenet_effect, inputs.no_harm_margin, inputs.framenet_missing),
    ]
    if [r["claim_id"] for r in rows] != list(CLAIM_IDS):
        raise AssertionError("claims_table and CLAIM_IDS list different claims")
    return pl.DataFrame(rows, schema=CLAIMS_SCHEMA)


def claims_markdown(table: pl.DataFrame, model: str) -> str:
    """The claims as a Markdown report card: a count of verdicts, then one table row per claim."""
    counts = {v: table.filter(pl.col("verdict") == v).height for v in VERDICTS}
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
