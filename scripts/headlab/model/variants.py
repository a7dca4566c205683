"""Which weights a model variant means: the one table that rules, jobs and loaders read (no torch).

``pretrained`` is the encoder itself (the alias's ``models[].source``: hub, local folder or
embedded package), with no checkpoint; every other variant is the checkpoint that rule
finetune wrote for one init (``results/{model}/{task}/finetuned-{init}``).
"""

from __future__ import annotations

# variant -> the fine-tuning init whose checkpoint holds its weights (None: the encoder itself).
VARIANT_CHECKPOINT_INIT: dict[str, str | None] = {
    "pretrained": None,
    "finetuned": "pretrained",  # the paper's fine-tuned model: fine-tuned from pretrained weights
    "finetuned-pretrained": "pretrained",
    "finetuned-random": "random",
}
# The variants of the attention analyses (Figures 5, 6, 7): before and after fine-tuning.
ANALYSIS_VARIANTS = ("pretrained", "finetuned")


def checkpoint_init(variant: str) -> str | None:
    """The fine-tuning init (pretrained | random) whose checkpoint has `variant`'s weights; None for
    the pretrained encoder. An unknown variant is an error naming the valid ones."""
    if variant not in VARIANT_CHECKPOINT_INIT:
        valid = ", ".join(VARIANT_CHECKPOINT_INIT)
        raise ValueError(f"model variant {variant!r} has no known weights; valid: {valid}")
    return VARIANT_CHECKPOINT_INIT[variant]
