"""The claims table: one row per claim whatever is in the run; the verdict rule on hand-made
intervals and p-values (supported: every interval on the claimed side and p < alpha;
contradicted: one on the other side with p < alpha / m, Bonferroni over the m units; a NaN
p-value: the interval alone); the Table 1 claims on synthetic predictions whose answer is known
(a condition that is right on every example where the other is wrong: supported; identical ones:
inconclusive); the head-selection claims on hand-made sweep statistics: the simultaneous
existence test `some_head_helps` (supported when its p-value is below alpha in every task,
contradicted only when every head's simultaneous upper bound, Bonferroni over heads x tasks, is
below 0 in some task), the naive best head as a `description`, the cross-fitted head never
contradicted; a claim whose inputs are missing is `not run` with the reason; the Markdown has a
row per claim and counts the verdicts."""

from __future__ import annotations

import math
from dataclasses import replace

import polars as pl
import pytest
from scipy import stats

from claim_helpers import (
    AROUND_ZERO,
    HURTING,
    claim_inputs,
    evaluation_predictions,
    selection_inputs,
    selection_row,
)
from headlab.analysis.claim_registry import REGISTRY
from headlab.analysis.claim_rules import VERDICTS, Unit, interval_verdict, with_units
from headlab.analysis.claim_types import PaperNumber
from headlab.analysis.claims import (
    CLAIM_IDS,
    CLAIMS_SCHEMA,
    ClaimInputs,
    claim_size,
    claims_markdown,
    claims_table,
)
from headlab.heads import parse_name


def test_every_claim_has_a_row_even_with_nothing_in_the_run() -> None:
    table = claims_table(claim_inputs(model="m", tasks=[]))
    assert table["claim_id"].to_list() == list(CLAIM_IDS)
    assert dict(table.schema) == CLAIMS_SCHEMA
    assert set(table["verdict"]) == {"not run"}
    assert table["note"].null_count() == 0  # every "not run" says why


@pytest.mark.parametrize(
    ("units", "direction", "expected"),
    [
        ([Unit("a", 0.02, 0.01, 0.03), Unit("b", 0.05, 0.001, 0.1)], +1, "supported"),
        ([Unit("a", 0.02, 0.01, 0.03), Unit("b", 0.0, -0.01, 0.01)], +1, "inconclusive"),
        ([Unit("a", 0.02, 0.01, 0.03), Unit("b", -0.05, -0.1, -0.01)], +1, "contradicted"),
        ([Unit("a", -0.02, -0.03, -0.01)], -1, "supported"),
        ([Unit("a", 0.02, 0.01, 0.03)], -1, "contradicted"),
        ([Unit("a", float("nan"), float("nan"), float("nan"))], +1, "inconclusive"),
    ],
)
def test_interval_verdict(units: list[Unit], direction: int, expected: str) -> None:
    # no p-value (NaN): the interval alone decides
    assert interval_verdict(units, direction) == expected


ABOVE = Unit("a", 0.02, 0.01, 0.03, 0.001)  # above 0, significant
BELOW = (-0.05, -0.1, -0.01)  # an estimate and interval below 0


@pytest.mark.parametrize(
    ("units", "direction", "alpha", "expected"),
    [
        ([ABOVE], +1, 0.05, "supported"),
        # the interval excludes 0 but p >= alpha: not supported (and not contradicted)
        ([Unit("a", 0.02, 0.01, 0.03, 0.2)], +1, 0.05, "inconclusive"),
        ([Unit("a", 0.02, 0.01, 0.03, 0.05)], +1, 0.05, "inconclusive"),  # p must be below alpha
        ([ABOVE, Unit("b", 0.02, 0.01, 0.03, 0.06)], +1, 0.05, "inconclusive"),  # every unit
        ([ABOVE, Unit("b", 0.02, 0.01, 0.03)], +1, 0.05, "supported"),  # b: NaN p, interval alone
        # Bonferroni: m = 2 units, so the other side needs p < 0.05 / 2 = 0.025
        ([ABOVE, Unit("b", *BELOW, 0.03)], +1, 0.05, "inconclusive"),
        ([ABOVE, Unit("b", *BELOW, 0.025)], +1, 0.05, "inconclusive"),
        ([ABOVE, Unit("b", *BELOW, 0.01)], +1, 0.05, "contradicted"),
        ([Unit("b", *BELOW, 0.03)], +1, 0.05, "contradicted"),  # m = 1: 0.03 < 0.05
        ([ABOVE, Unit("b", *BELOW, 0.03)], +1, 0.1, "contradicted"),  # alpha 0.1: 0.03 < 0.05
        ([ABOVE, Unit("b", *BELOW, 0.03)], -1, 0.05, "contradicted"),  # claimed < 0: a is on the other side
        ([Unit("a", 0.02, 0.01, 0.03, 0.03), Unit("b", *BELOW, 0.001)], -1, 0.05, "inconclusive"),
        ([Unit("a", *BELOW, 0.001), Unit("b", *BELOW, 0.04)], -1, 0.05, "supported"),
    ],
)
def test_interval_verdict_with_p_values(
    units: list[Unit], direction: int, alpha: float, expected: str
) -> None:
    assert interval_verdict(units, direction, alpha) == expected


def test_with_units_passes_alpha_and_names_nan_intervals() -> None:
    row: dict[str, object] = {}
    unit = Unit("MRPC", 0.02, 0.01, 0.03, 0.03)
    assert with_units(row, [unit], +1)["verdict"] == "supported"  # default alpha 0.05
    assert with_units(row, [unit], +1, alpha=0.01)["verdict"] == "inconclusive"
    made = with_units(row, [unit, Unit("RTE", 0.01, float("nan"), float("nan"), 0.001)], +1)
    # a NaN interval: the span is NaN (never silently the other unit's) and the note says whose
    assert math.isnan(made["ci_low"]) and math.isnan(made["ci_high"])
    assert "no interval for: RTE" in made["note"]
    assert made["verdict"] == "inconclusive"
    assert made["estimate"] == pytest.approx(1.5)


def test_table1_claims_on_known_predictions() -> None:
    # SST-2: its primary metric is accuracy.
    strong = evaluation_predictions("SST-2", better_share=1.0, seeds=[1, 2])
    table = claims_table(claim_inputs(model="m", tasks=["SST-2"], predictions=strong, resamples=300))
    row = table.filter(pl.col("claim_id") == "finetuning_helps").row(0, named=True)
    # always right vs always 0 on alternating gold: +50 points on every resample
    assert row["estimate"] == pytest.approx(50.0, rel=1e-12)
    assert row["ci_low"] == pytest.approx(row["ci_high"], abs=15.0) and row["ci_low"] > 0
    assert row["verdict"] == "supported"
    same = evaluation_predictions("SST-2", better_share=0.0, seeds=[1, 2])
    table = claims_table(claim_inputs(model="m", tasks=["SST-2"], predictions=same, resamples=300))
    row = table.filter(pl.col("claim_id") == "pretraining_helps").row(0, named=True)
    assert row["estimate"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0
    assert row["verdict"] == "inconclusive"


def test_table1_claims_use_the_seeds_that_have_scratch_when_scratch_seeds_are_fewer() -> None:
    full = evaluation_predictions("SST-2", better_share=1.0, seeds=[1, 2])
    fewer = full.filter(~((pl.col("seed") == 2) & (pl.col("condition") == "scratch")))
    rows = {}
    for name, predictions in (("full", full), ("fewer", fewer)):
        table = claims_table(claim_inputs(model="m", tasks=["SST-2"], predictions=predictions))
        rows[name] = {r["claim_id"]: r for r in table.iter_rows(named=True)}
    # finetuned - scratch reads seed 1 only; finetuned - pretrained still reads both seeds
    assert rows["fewer"]["pretraining_helps"]["verdict"] == rows["full"]["pretraining_helps"]["verdict"]
    assert rows["fewer"]["pretraining_helps"]["estimate"] == pytest.approx(
        rows["full"]["pretraining_helps"]["estimate"], rel=1e-12
    )
    assert rows["fewer"]["finetuning_helps"]["estimate"] == pytest.approx(50.0, rel=1e-12)


def mask_keys(mask: str) -> dict[str, object]:
    """kind, layer and head of a mask name, as the sweep statistics carry them."""
    layer, head = parse_name(mask)
    return {"kind": "layer" if head is None else "head", "layer": layer, "head": head}


def pooled_statistics(task: str, masks: dict[str, tuple[float, float, float]]) -> pl.DataFrame:
    """Pooled sweep-statistics rows: mask -> (delta, ci_low, ci_high) for the task's primary metric."""
    return pl.DataFrame(
        [
            {
                "task": task,
                "metric": "accuracy",
                "mask": m,
                **mask_keys(m),
                "delta": d,
                "se": float("nan"),
                "df": float("nan"),
                "ci_low": lo,
                "ci_high": hi,
                "p_value": float("nan"),
                "q_value": float("nan"),
            }
            for m, (d, lo, hi) in masks.items()
        ]
    )


def test_table1_claim_needs_the_permutation_test_too() -> None:
    """The condition is right on only the first 10 of 200 examples in both seeds: 5 more right
    answers (the odd ones, gold 1), +2.5 points. The seeds agree, so the variance is the example
    part alone, about (sqrt(5) / 200)^2: z ~ 2.2, a t p-value ~ 0.025 < alpha. But the joint-swap
    permutation test of 5 concordant examples gives p = 2 / 32 ~ 0.06 (only all-unswapped and
    all-swapped are as extreme), and p = max(t, permutation) >= alpha: not supported."""
    weak = evaluation_predictions("SST-2", better_share=0.05, seeds=[1, 2])
    table = claims_table(
        claim_inputs(model="m", tasks=["SST-2"], predictions=weak, resamples=300, permutations=2000)
    )
    row = table.filter(pl.col("claim_id") == "finetuning_helps").row(0, named=True)
    assert row["estimate"] == pytest.approx(2.5, rel=1e-9)
    assert row["verdict"] == "inconclusive"


def test_missing_heads_and_tasks_are_not_run_with_the_reason() -> None:
    statistics = pooled_statistics("RTE", {"L1": (0.03, 0.01, 0.05), "L1-H1": (-0.01, -0.02, 0.0)})
    selection = pl.DataFrame(
        schema={
            "task": pl.String,
            "metric": pl.String,
            "estimate": pl.String,
            "mask": pl.String,
            "delta": pl.Float64,
            "ci_low": pl.Float64,
            "ci_high": pl.Float64,
        }
    )
    inputs = claim_inputs(
        model="m",
        tasks=["RTE"],
        statistics=statistics,
        selection=selection,
        pair_heads=["L9-H9"],
        pair_heads_named=True,
    )
    table = claims_table(inputs)
    layer1 = table.filter(pl.col("claim_id") == "layer1_helps_rte").row(0, named=True)
    assert layer1["verdict"] == "supported" and layer1["estimate"] == pytest.approx(3.0)
    pair = table.filter(pl.col("claim_id") == "pair_heads_matter").row(0, named=True)
    assert pair["verdict"] == "not run" and "L9-H9" in pair["note"]
    random_head = table.filter(pl.col("claim_id") == "random_head_helps").row(0, named=True)
    assert random_head["verdict"] == "not run"


def test_markdown_has_one_row_per_claim_and_the_counts() -> None:
    table = claims_table(claim_inputs(model="m", tasks=[]))
    text = claims_markdown(table, "m")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "**" in line]
    assert len(rows) == len(CLAIM_IDS)
    groups = table.group_by("group").len()
    for group, n in groups.iter_rows():
        assert f": {n} not run (of {n})." in text, group
    assert sum(n for _, n in groups.iter_rows()) == len(CLAIM_IDS)
    assert all(f"### {claim_id}" in text for claim_id in CLAIM_IDS)  # each claim's detail
    assert all(v in VERDICTS for v in table["verdict"])


def test_missing_framenet_folder_is_named_in_the_not_run_note() -> None:
    why = "framenet.corpus_dir ../shared/data/framenet_v15 is not a folder (from /somewhere)"
    table = claims_table(claim_inputs(model="m", tasks=["SST-2"], framenet_missing=why))
    row = table.filter(pl.col("claim_id") == "framenet_heads_together").row(0, named=True)
    assert row["verdict"] == "not run" and why in row["note"]


# --- the head-selection claims on hand-made sweep statistics -------------------------------------


def claim(inputs: ClaimInputs, claim_id: str) -> dict[str, object]:
    return claims_table(inputs).filter(pl.col("claim_id") == claim_id).row(0, named=True)


@pytest.mark.parametrize(
    ("heads", "existence_p", "verdict"),
    [
        ({"MRPC": AROUND_ZERO, "RTE": AROUND_ZERO}, {"MRPC": 0.001, "RTE": 0.001}, "supported"),
        ({"MRPC": AROUND_ZERO, "RTE": AROUND_ZERO}, {"MRPC": 0.2, "RTE": 0.2}, "inconclusive"),
        # rejected in one task only: "every task" is not shown
        ({"MRPC": AROUND_ZERO, "RTE": AROUND_ZERO}, {"MRPC": 0.001, "RTE": 0.2}, "inconclusive"),
        # in RTE every head's simultaneous upper bound is below 0: no head improves RTE
        ({"MRPC": AROUND_ZERO, "RTE": HURTING}, {"MRPC": 0.2, "RTE": 1.0}, "contradicted"),
        ({"MRPC": HURTING, "RTE": HURTING}, {"MRPC": 1.0, "RTE": 1.0}, "contradicted"),
        # one head of RTE that may help (upper bound above 0) keeps it from contradiction
        (
            {"MRPC": AROUND_ZERO, "RTE": [*HURTING[1:], (0.0, 0.01, 50.0)]},
            {"MRPC": 0.2, "RTE": 1.0},
            "inconclusive",
        ),
    ],
)
def test_some_head_helps_is_the_simultaneous_test(
    heads: dict[str, list[tuple[float, float, float]]], existence_p: dict[str, float], verdict: str
) -> None:
    row = claim(selection_inputs(heads, existence_p), "some_head_helps")
    assert row["verdict"] == verdict
    for task, p in existence_p.items():
        assert f"{task} (L1-H1) +1.0, simultaneous p = {p:.3g}" in row["ours"]


def test_some_head_helps_bonferroni_is_over_heads_and_tasks() -> None:
    """RTE's best head sits at -c se with c between the one-sided t quantiles of alpha / 12 and
    alpha / 24 (50 df): its upper bound is below 0 over the 12 heads of one task, above 0 over
    the 24 bounds of two tasks. So RTE alone contradicts the claim; RTE with MRPC does not."""
    se, df, alpha = 0.005, 50.0, 0.05
    q12, q24 = stats.t.ppf(1 - alpha / 12, df), stats.t.ppf(1 - alpha / 24, df)  # 2.75, 3.03
    best = -0.5 * (q12 + q24) * se
    rte = [*HURTING[1:], (best, se, df)]
    alone = claim(selection_inputs({"RTE": rte}, {"RTE": 1.0}), "some_head_helps")
    assert alone["verdict"] == "contradicted"
    upper_alone = best + q12 * se
    assert upper_alone < 0 and f"largest upper bound {100 * upper_alone:+.1f}" in alone["ours"]
    # the same RTE beside MRPC (whose heads may help): 24 bounds, RTE's best above 0
    both = claim(
        selection_inputs({"MRPC": AROUND_ZERO, "RTE": rte}, {"MRPC": 1.0, "RTE": 1.0}), "some_head_helps"
    )
    assert both["verdict"] == "inconclusive"
    upper_both = best + q24 * se
    assert upper_both > 0 and f"largest upper bound {100 * upper_both:+.1f}" in both["ours"]
    # MRPC: every head at 0 with se 1 point: upper bound 3.03 points (RTE's layer L1 at +20 is
    # not a head and does not count)
    assert (
        f"MRPC (L1-H1) +1.0, simultaneous p = 1, largest upper bound {100 * q24 * 0.01:+.1f}" in both["ours"]
    )


def test_some_head_helps_needs_the_simultaneous_test() -> None:
    inputs = selection_inputs({"RTE": AROUND_ZERO}, {})
    row = claim(inputs, "some_head_helps")
    assert row["verdict"] == "not run" and "no simultaneous test" in row["note"]
    no_statistics = claim(claim_inputs(model="m", tasks=["RTE"]), "some_head_helps")
    assert no_statistics["verdict"] == "not run" and "no sweep statistics" in no_statistics["note"]


def test_naive_best_head_is_a_description_and_counted_in_the_markdown() -> None:
    naive = [
        selection_row("MRPC", "best_head_naive", "L1-H3", 0.012, 0.004, 0.02, 0.001),
        selection_row("RTE", "best_head_naive", "L1-H5", -0.01, -0.02, -0.005, 0.001),
    ]
    inputs = selection_inputs({"MRPC": AROUND_ZERO, "RTE": AROUND_ZERO}, {"MRPC": 0.2, "RTE": 0.2}, naive)
    table = claims_table(inputs)
    row = table.filter(pl.col("claim_id") == "some_head_helps_naive").row(0, named=True)
    # an interval below 0 (RTE) would contradict a test; a description is neither
    assert row["verdict"] == "description"
    assert row["estimate"] == pytest.approx(0.1) and row["ci_low"] == pytest.approx(-2.0)
    assert "MRPC (L1-H3) +1.2 [+0.4, +2.0]" in row["ours"]
    assert table.filter(pl.col("verdict") == "description").height == 1
    text = claims_markdown(table, "m")
    counts = next(line for line in text.splitlines() if line.startswith("**headlab's own questions**"))
    assert "1 description" in counts
    assert "| **description** |" in text


def test_held_out_best_head_is_never_contradicted() -> None:
    def held_out(p: float, interval: tuple[float, float, float]) -> str:
        split = [selection_row(t, "best_head_split", "L1-H1/L1-H2", *interval, p) for t in ("MRPC", "RTE")]
        inputs = selection_inputs({"MRPC": AROUND_ZERO, "RTE": AROUND_ZERO}, {"MRPC": 0.2, "RTE": 0.2}, split)
        return claim(inputs, "some_head_helps_held_out")["verdict"]

    # wholly below 0 with p far below alpha / 2: a chosen head that does not replicate does not
    # show that no head helps, so not contradicted
    assert held_out(1e-4, (-0.03, -0.05, -0.01)) == "inconclusive"
    assert held_out(1e-4, (0.02, 0.01, 0.03)) == "supported"
    assert held_out(0.2, (0.02, 0.01, 0.03)) == "inconclusive"  # interval above 0, p >= alpha


def test_selection_claims_read_the_p_values() -> None:
    """random_head_helps and layer1_helps_rte: an interval above 0 with p >= alpha is not
    supported; with p < alpha it is; a wholly negative one with p < alpha / m contradicts."""

    def verdicts(
        p_random: float, p_layer: float, random_interval: tuple[float, float, float]
    ) -> tuple[str, str]:
        extra = [selection_row(t, "random_head", "", *random_interval, p_random) for t in ("MRPC", "RTE")]
        inputs = selection_inputs({"MRPC": AROUND_ZERO, "RTE": AROUND_ZERO}, {"MRPC": 0.2, "RTE": 0.2}, extra)
        statistics = inputs.statistics.with_columns(
            pl.when(pl.col("mask") == "L1").then(p_layer).otherwise(pl.col("p_value")).alias("p_value")
        )
        table = claims_table(replace(inputs, statistics=statistics))

        def verdict(claim_id: str) -> str:
            return table.filter(pl.col("claim_id") == claim_id)["verdict"][0]

        return verdict("random_head_helps"), verdict("layer1_helps_rte")

    assert verdicts(0.001, 0.001, (0.01, 0.005, 0.015)) == ("supported", "supported")
    assert verdicts(0.2, 0.2, (0.01, 0.005, 0.015)) == ("inconclusive", "inconclusive")
    assert verdicts(0.03, 0.001, (-0.01, -0.015, -0.005))[0] == "inconclusive"  # 0.03 > 0.05 / 2
    assert verdicts(0.01, 0.001, (-0.01, -0.015, -0.005))[0] == "contradicted"


# --- the registry -------------------------------------------------------------------------------

PAPER_CLAIMS = {
    "patterns_repeat": "4.1",
    "heterogeneous_share": "4.1",
    "framenet_heads": "4.2",
    "finetuning_helps": "4.3",
    "pretraining_helps": "4.3",
    "scratch_below_pretrained": "4.3",
    "last_layers_change": "4.3",
    "cls_then_sep": "4.4",
    "sst2_more_sep": "4.4",
    "features_negligible": "4.4",
    "relation_heads_diagonal": "4.5",
    "cls_final_sep": "4.5",
    "some_head_helps": "4.6",
    "random_head_helps": "4.6",
    "layer_helps": "4.6",
    "layer1_helps_rte": "4.6",
    "layer_cost_small": "4.6",
    "framenet_either_head": "5",
    "pair_heads_matter": "5",
    "pair_heads_overlap": "5",
    "heads_impact_differs": "abstract",
}


def test_registry_holds_the_papers_claims_then_headlabs_questions() -> None:
    papers = [c for c in REGISTRY if c.group == "paper"]
    assert {c.claim_id: c.section.split(" ")[0] for c in papers} == PAPER_CLAIMS
    assert [c.group for c in REGISTRY] == sorted((c.group for c in REGISTRY), key=["paper", "headlab"].index)
    assert {c.claim_id for c in REGISTRY if c.group == "headlab"} == {
        "some_head_helps_naive",
        "some_head_helps_held_out",
        "modes_agree",
        "framenet_heads_together",
        "disabling_replicates",
        "importance_agrees_with_delta",
        "prunable_share",
    }
    for claim in REGISTRY:
        assert claim.paper.source and claim.quantity and claim.rule and claim.needs, claim.claim_id
        assert set(claim.paper.per_task) <= {"MRPC", "STS-B", "SST-2", "QQP", "RTE", "QNLI", "MNLI"}


@pytest.mark.parametrize(
    ("paper", "units", "expected"),
    [
        (PaperNumber("+35.9", "text", value=35.9, average=True), [(0.30, 0.40), (0.32, 0.38)], "consistent"),
        (PaperNumber("+35.9", "text", value=35.9, average=True), [(0.10, 0.20), (0.20, 0.30)], "smaller"),
        (PaperNumber("+3.2", "text", value=3.2), [(0.04, 0.06)], "larger"),
        (PaperNumber("-0.2", "text", value=-0.2, tolerance=0.1), [(-0.0015, -0.001)], "consistent"),
        (
            PaperNumber("0.1 / 1.2", "text", per_task={"STS-B": 0.1, "MRPC": 1.2}),
            [(0.0, 0.002), (0.02, 0.03)],
            "STS-B: consistent; MRPC (L1-H1): larger",
        ),
    ],
)
def test_size_is_where_the_papers_number_lies_against_our_interval(
    paper: PaperNumber, units: list[tuple[float, float]], expected: str
) -> None:
    names = ["STS-B", "MRPC (L1-H1)"][: len(units)]
    made_units = [Unit(n, (lo + hi) / 2, lo, hi) for n, (lo, hi) in zip(names, units, strict=True)]
    made = {
        "verdict": "supported",
        "ci_low": 100 * min(lo for lo, _ in units),
        "ci_high": 100 * max(hi for _, hi in units),
    }
    assert claim_size(paper, made, made_units) == expected
    assert claim_size(paper, {**made, "verdict": "not run"}, made_units) is None


def test_finetuning_size_on_the_average_over_tasks() -> None:
    """Two tasks, fine-tuning right on every example where no fine-tuning is right on half: +50
    points each (the paper says +35.9 on average): the average interval lies above it: `larger`."""
    predictions = pl.concat(
        [evaluation_predictions(task, better_share=1.0, seeds=[1, 2]) for task in ("SST-2", "RTE")]
    )
    row = claims_table(
        claim_inputs(model="m", tasks=["SST-2", "RTE"], predictions=predictions, resamples=300)
    )
    finetuning = row.filter(pl.col("claim_id") == "finetuning_helps").row(0, named=True)
    assert finetuning["verdict"] == "supported"
    assert finetuning["estimate"] == pytest.approx(50.0)
    assert finetuning["size"] == "larger"
