"""The learning gate of the claims card: a claim about fine-tuned models is checked only on the
tasks whose fine-tuned models learn.

A disabling sweep, an attention pattern or a layer's drift measured on a model that did not learn
its task says nothing about a fine-tuned BERT, and its verdict would stand beside the others as if
it did. So before a claim that reads fine-tuned models (`Claim.needs_learning`) is computed, the
tasks whose models fail `headlab.analysis.learning_check` (a task learns when every seed beats
the best constant and the pre-trained encoder by more than two paired standard errors) are
removed from its inputs (`without_tasks`): from `tasks`, from every table with a `task` column
and from every per-task mapping. Its note names the tasks left out and why. A claim that needs
only left-out tasks (say, STS-B and RTE's pair of heads when RTE does not learn) is
`inconclusive`, not `not run`: the run has its inputs, its model did not learn. The Table 1
claims compare the conditions themselves (whether fine-tuning helps is what they measure) and are
not gated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace

import polars as pl

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.learning_check import learning_check, task_verdicts
from headlab.data.tasks import get_task


def unlearned_tasks(inputs: ClaimInputs) -> dict[str, str]:
    """task -> why its fine-tuned models do not count as learning it ("1 of 3 seeds beat the best
    constant, 3 of 3 the pre-trained encoder"), for the run's tasks whose models fail the
    learning check. Empty without predictions (no gate can be applied: rule claims always has
    them) and when every task learns. A run task without predictions stops with its name."""
    if inputs.predictions is None:
        return {}
    predictions = inputs.predictions.filter(pl.col("task").is_in(list(inputs.tasks)))
    absent = sorted(set(inputs.tasks) - set(predictions["task"].unique().to_list()))
    if absent:
        raise ValueError(f"no predictions of {', '.join(absent)}: the learning gate cannot tell if it learns")
    if predictions.is_empty():
        return {}
    regression = frozenset(t for t in inputs.tasks if get_task(t).is_regression)
    verdicts = task_verdicts(learning_check(predictions, regression))
    return {
        row["task"]: (
            f"{row['beat_majority']} of {row['seeds']} seeds beat the best constant, "
            f"{row['beat_pretrained']} of {row['seeds']} the pre-trained encoder"
        )
        for row in verdicts.iter_rows(named=True)
        if not row["learns"]
    }


def without_tasks(inputs: ClaimInputs, left_out: set[str] | frozenset[str]) -> ClaimInputs:
    """`inputs` without the tasks `left_out`: removed from `tasks`, from the rows of every table
    with a `task` column and from the keys of every per-task mapping."""
    if not left_out:
        return inputs
    changes: dict[str, object] = {"tasks": [t for t in inputs.tasks if t not in left_out]}
    for field in fields(inputs):
        value = getattr(inputs, field.name)
        if isinstance(value, pl.DataFrame) and "task" in value.columns:
            changes[field.name] = value.filter(~pl.col("task").is_in(sorted(left_out)))
        elif isinstance(value, Mapping) and set(value) & set(left_out):
            changes[field.name] = {k: v for k, v in value.items() if k not in left_out}
    return replace(inputs, **changes)  # type: ignore[arg-type]


def left_out_reasons(left_out: Mapping[str, str]) -> str:
    """Why the tasks are left out: "the fine-tuned models do not clearly learn it (RTE: ...)"."""
    reasons = "; ".join(f"{task}: {left_out[task]}" for task in sorted(left_out))
    return f"the fine-tuned models do not clearly learn it ({reasons})"


def left_out_note(left_out: Mapping[str, str]) -> str:
    """The note of a gated claim: which tasks it leaves out and why."""
    return f"{' and '.join(sorted(left_out))} left out, {left_out_reasons(left_out)}"
