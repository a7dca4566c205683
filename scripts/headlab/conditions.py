"""The one vocabulary of weights: which model each condition means (no torch).

Rules, jobs, scoring, Table 1 and the figures read these names; each word means one thing. The
paper's Table 1 has three conditions, and the attention analyses (Figures 5-7, the pattern
classes) compare the first and the last:

- ``pretrained``: the paper's "Pre-trained", no fine-tuning: the encoder as published
  (``models[].source``), scored in Table 1 with a fresh, untrained classifier;
- ``scratch``: "Fine-tuned, initialized with normal distr.": rule finetune's checkpoint trained
  from a random initialisation of the encoder's config;
- ``finetuned``: "Fine-tuned, initialized with pre-trained": rule finetune's checkpoint trained
  from the encoder's weights, what the paper calls "the fine-tuned model".
"""

from __future__ import annotations

PRETRAINED = "pretrained"
SCRATCH = "scratch"
FINETUNED = "finetuned"
# Table 1's column order.
CONDITIONS = (PRETRAINED, SCRATCH, FINETUNED)
# The conditions rule finetune trains, one checkpoint per model x task x seed each.
TRAINED = (SCRATCH, FINETUNED)
# Before and after fine-tuning: the conditions of the attention analyses.
ATTENTION_CONDITIONS = (PRETRAINED, FINETUNED)
# What the paper's Table 1 calls each condition.
PAPER_NAMES = {
    PRETRAINED: "Pre-trained",
    SCRATCH: "Fine-tuned, initialized with normal distr.",
    FINETUNED: "Fine-tuned, initialized with pre-trained",
}


def check_condition(condition: str, valid: tuple[str, ...] = CONDITIONS) -> str:
    """`condition` itself, or a ValueError naming the valid ones."""
    if condition not in valid:
        raise ValueError(f"condition {condition!r} is not one of {', '.join(valid)}")
    return condition


def is_trained(condition: str) -> bool:
    """Whether the condition's weights are a checkpoint of rule finetune (else the encoder's)."""
    return check_condition(condition) in TRAINED


def starts_from_encoder(condition: str) -> bool:
    """Whether the condition's model starts from the encoder's weights (else from a random
    initialisation of its config)."""
    return check_condition(condition) != SCRATCH
