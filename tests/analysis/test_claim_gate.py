"""The learning gate of the claims card: a claim on fine-tuned models is decided on the tasks whose
models learn, on predictions and sweep statistics whose answer is known.

RTE's fine-tuned model answers the majority class on every example (it learned nothing: the
learning check's difference is 0 on every example) and MRPC's is right everywhere. A sweep on RTE
then may say anything: here its heads would decide `some_head_helps` (inconclusive or
contradicted), and the gate makes MRPC decide it alone, naming RTE in the note. The Table 1
claims, which measure learning themselves, keep RTE; a claim that needs RTE only is
`inconclusive`, not `not run`; nothing changes when every task learns."""

from __future__ import annotations

import polars as pl
import pytest

from claim_helpers import (
    AROUND_ZERO,
    HURTING,
    claim_inputs,
    evaluation_predictions,
    selection_inputs,
)
from headlab.analysis.claim_gate import unlearned_tasks, without_tasks
from headlab.analysis.claim_types import Claim, PaperNumber
from headlab.analysis.claims import ClaimInputs, claim_row, claims_markdown, claims_table

SEEDS = [1, 2, 3]


def predictions(learned: dict[str, float]) -> pl.DataFrame:
    """Rule evaluate's table: per task, the fine-tuned model right on that share of the examples
    (1.0: every one; 0.0: the majority class everywhere, nothing learned)."""
    return pl.concat([evaluation_predictions(task, share, SEEDS) for task, share in learned.items()])


def verdict(inputs: ClaimInputs, claim_id: str) -> dict[str, object]:
    return claims_table(inputs).filter(pl.col("claim_id") == claim_id).row(0, named=True)


def test_a_task_whose_models_answer_the_majority_class_is_unlearned_with_its_counts() -> None:
    inputs = claim_inputs(tasks=["MRPC", "RTE"], predictions=predictions({"MRPC": 1.0, "RTE": 0.0}))
    assert unlearned_tasks(inputs) == {
        "RTE": "0 of 3 seeds beat the best constant, 0 of 3 the pre-trained encoder"
    }
    # one seed that learns is not enough: every seed must beat both references
    mixed = pl.concat([evaluation_predictions("RTE", 1.0, [1]), evaluation_predictions("RTE", 0.0, [2, 3])])
    assert unlearned_tasks(claim_inputs(tasks=["RTE"], predictions=mixed)) == {
        "RTE": "1 of 3 seeds beat the best constant, 1 of 3 the pre-trained encoder"
    }
    # a regression task is checked on the squared error: predicting the gold scores learns it
    stsb = evaluation_predictions("STS-B", 1.0, SEEDS).with_columns(pl.col("label") * 5)
    stsb = stsb.with_columns(
        prediction=pl.when(pl.col("condition") == "finetuned").then(pl.col("label")).otherwise(0.0)
    )
    assert unlearned_tasks(claim_inputs(tasks=["STS-B"], predictions=stsb)) == {}
    # without predictions there is nothing to gate; a run task without them stops, named
    assert unlearned_tasks(claim_inputs(tasks=["RTE"])) == {}
    with pytest.raises(ValueError, match="no predictions of RTE"):
        unlearned_tasks(claim_inputs(tasks=["MRPC", "RTE"], predictions=predictions({"MRPC": 1.0})))


def test_without_tasks_removes_a_task_from_every_table_and_mapping() -> None:
    frame = pl.DataFrame({"task": ["MRPC", "RTE"], "value": [1.0, 2.0]})
    heads = pl.DataFrame({"layer": [1], "head": [1], "score": [0.2]})  # no task column: kept whole
    inputs = claim_inputs(
        tasks=["MRPC", "RTE"],
        predictions=predictions({"MRPC": 1.0, "RTE": 0.0}),
        statistics=frame,
        prunable=frame,
        attention={"MRPC": frame, "RTE": frame},
        patterns={"RTE": frame},
        framenet_heads=heads,
    )
    kept = without_tasks(inputs, {"RTE"})
    assert kept.tasks == ["MRPC"]
    assert kept.statistics is not None and kept.statistics["task"].to_list() == ["MRPC"]
    assert kept.prunable is not None and kept.prunable["task"].to_list() == ["MRPC"]
    assert kept.predictions is not None and set(kept.predictions["task"]) == {"MRPC"}
    assert list(kept.attention) == ["MRPC"] and dict(kept.patterns) == {}
    assert kept.framenet_heads is heads
    assert without_tasks(inputs, set()) is inputs


@pytest.mark.parametrize(
    ("rte_heads", "rte_p", "ungated"),
    [
        (AROUND_ZERO, 0.2, "inconclusive"),  # RTE's sweep finds nothing
        (HURTING, 1.0, "contradicted"),  # every RTE head hurts
    ],
)
def test_a_sweep_on_a_task_that_did_not_learn_does_not_decide_the_claim(
    rte_heads: list[tuple[float, float, float]], rte_p: float, ungated: str
) -> None:
    heads = {"MRPC": AROUND_ZERO, "RTE": rte_heads}
    existence = {"MRPC": 0.001, "RTE": rte_p}
    learned = selection_inputs(heads, existence, predictions=predictions({"MRPC": 1.0, "RTE": 1.0}))
    assert verdict(learned, "some_head_helps")["verdict"] == ungated
    assert "left out" not in (verdict(learned, "some_head_helps")["note"] or "")
    unlearned = selection_inputs(heads, existence, predictions=predictions({"MRPC": 1.0, "RTE": 0.0}))
    row = verdict(unlearned, "some_head_helps")
    # MRPC alone: its existence test rejects at p = 0.001
    assert row["verdict"] == "supported"
    assert "RTE" not in row["ours"] and "MRPC (L1-H1)" in row["ours"]
    assert row["note"].startswith("RTE left out, the fine-tuned models do not clearly learn it (RTE: 0 of 3")
    # what MRPC alone gives, without any gate
    alone = selection_inputs({"MRPC": AROUND_ZERO}, {"MRPC": 0.001})
    assert verdict(alone, "some_head_helps")["ours"] == row["ours"]


def test_table1_claims_keep_the_task_that_did_not_learn() -> None:
    inputs = claim_inputs(tasks=["MRPC", "RTE"], predictions=predictions({"MRPC": 1.0, "RTE": 0.0}))
    row = verdict(inputs, "finetuning_helps")
    assert "RTE" in row["ours"] and "left out" not in (row["note"] or "")
    assert row["verdict"] == "inconclusive"  # RTE's fine-tuned model equals the pre-trained one


def needs_rte(inputs: ClaimInputs) -> dict[str, object]:
    """A claim on RTE alone: not run without it, supported with it."""
    if "RTE" not in inputs.tasks:
        return {"verdict": "not run", "ours": "–", "note": "add RTE to tasks"}
    return {"verdict": "supported", "ours": "RTE +1.0", "estimate": 0.01, "ci_low": 0.0, "ci_high": 0.02}


def test_a_claim_that_needs_only_an_unlearned_task_is_inconclusive_not_not_run() -> None:
    claim = Claim(
        "rte_only", "paper", "4.6", "c", PaperNumber("1 point", "text", value=1.0), "q", "r", "n", needs_rte
    )
    learned = claim_inputs(tasks=["MRPC", "RTE"], predictions=predictions({"MRPC": 1.0, "RTE": 1.0}))
    unlearned = claim_inputs(tasks=["MRPC", "RTE"], predictions=predictions({"MRPC": 1.0, "RTE": 0.0}))
    assert claim_row(claim, learned, unlearned_tasks(learned))["verdict"] == "supported"
    row = claim_row(claim, unlearned, unlearned_tasks(unlearned))
    assert row["verdict"] == "inconclusive" and row["size"] is None and row["estimate"] is None
    assert row["note"].endswith("without it the claim cannot be decided")
    # without RTE in the run it stays `not run`, with what to add
    absent = claim_inputs(tasks=["MRPC"], predictions=predictions({"MRPC": 1.0}))
    assert claim_row(claim, absent, unlearned_tasks(absent))["note"] == "add RTE to tasks"
    # a claim that does not read fine-tuned models is never gated
    plain = Claim("rte_plain", "paper", "4.6", "c", PaperNumber("x", "t"), "q", "r", "n", needs_rte, False)
    assert claim_row(plain, unlearned, unlearned_tasks(unlearned))["verdict"] == "supported"


def test_the_card_says_which_tasks_its_claims_leave_out() -> None:
    inputs = claim_inputs(tasks=["MRPC", "RTE"], predictions=predictions({"MRPC": 1.0, "RTE": 0.0}))
    text = claims_markdown(claims_table(inputs), "m", unlearned_tasks(inputs))
    assert (
        "The claims on fine-tuned models leave out RTE: the fine-tuned models do not clearly learn it" in text
    )
    assert "leave out" not in claims_markdown(claims_table(inputs), "m", {})
