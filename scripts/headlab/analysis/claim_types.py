"""The vocabulary of the claims registry: a claim (`Claim`), the paper's number (`PaperNumber`) and
the card's groups. `headlab.analysis.claim_registry` holds the entries."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from headlab.analysis.claim_inputs import ClaimInputs

GROUPS = {"paper": "The paper's claims", "headlab": "headlab's own questions"}


@dataclass(frozen=True)
class PaperNumber:
    """The paper's number for a claim and where it comes from."""

    text: str  # as the paper gives it
    source: str  # "text, Sec. 4.6", "Table 1", "read off Figure 8 (±0.1 point)"
    value: float | None = None  # points: against our interval (the mean of the tasks' when `average`)
    per_task: Mapping[str, float] = field(default_factory=dict)  # points, against each task's unit
    average: bool = False
    tolerance: float = 0.0  # points: the uncertainty of reading the number


@dataclass(frozen=True)
class Claim:
    claim_id: str
    group: str  # a key of GROUPS
    section: str
    claim: str  # the paper's sentence, short (or headlab's question)
    paper: PaperNumber
    quantity: str  # what we measure
    rule: str  # the verdict rule
    needs: str  # what the run needs
    compute: Callable[[ClaimInputs], dict[str, object]]
    # whether it reads fine-tuned models: then only on the tasks they learn (headlab.analysis.claim_gate)
    needs_learning: bool = True
