"""What disabling a head means: the modes, a mask of heads per batch row, attribution patches.

The engine (`headlab.model.engine`) applies these inside attention; this module only says what
each mode replaces a head's probabilities or output with and validates the requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


def uniform_replacement(probs: torch.Tensor, key_is_real: torch.Tensor) -> torch.Tensor:
    """The paper's disabling: every real token gets attention 1/L (L = real length), padding 0."""
    real = key_is_real.to(probs.dtype)  # (batch, key)
    lengths = real.sum(dim=-1, keepdim=True)  # (batch, 1)
    return (real / lengths)[:, None, None, :].expand_as(probs)  # (batch, heads, query, key)


def zero_replacement(probs: torch.Tensor, key_is_real: torch.Tensor) -> torch.Tensor:
    """Michel et al.'s head_mask semantics: the head's attention (and so its output) is zero."""
    return torch.zeros_like(probs)


# A mode maps (probs (batch, heads, query, key), key_is_real (batch, key)) to replacement probs of
# the same shape. Add a mode by adding an entry here; `Intervention` validates against this table.
REPLACEMENTS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "uniform": uniform_replacement,
    "zero": zero_replacement,
}


def mean_replacement(context: torch.Tensor, means: torch.Tensor, query_is_real: torch.Tensor) -> torch.Tensor:
    """Mean ablation: every real query's context vector of the head is its mean over a reference
    sample; padding rows keep theirs. context (batch, heads, query, head_dim), means (heads, head_dim)."""
    fixed = means.to(context.dtype)[None, :, None, :].expand_as(context)  # (batch, heads, query, head_dim)
    return torch.where(query_is_real[:, None, :, None], fixed, context)


# Modes that replace a head's output (its context vector, before the output projection) instead
# of its probabilities. Such a mode needs precomputed statistics (`Intervention.means`: (layers,
# heads, head_dim)), and the context, which the engine forms only for families routed through it.
CONTEXT_REPLACEMENTS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mean_replacement,
}
MODES = (*REPLACEMENTS, *CONTEXT_REPLACEMENTS)


@dataclass(frozen=True)
class Intervention:
    """Which heads of which batch rows are replaced, and how.

    ``disabled`` is a bool tensor (batch, layers, heads): True where that row's head is replaced.
    Different rows may carry different masks, so one forward pass can evaluate many masks.
    """

    disabled: torch.Tensor
    mode: str = "uniform"
    means: torch.Tensor | None = None  # (layers, heads, head_dim): the context modes' statistics

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown disabling mode {self.mode!r}; valid: {sorted(MODES)}")
        if self.disabled.dtype != torch.bool or self.disabled.dim() != 3:
            raise ValueError("Intervention.disabled must be a bool tensor (batch, layers, heads)")
        if self.replaces_context and (self.means is None or self.means.dim() != 3):
            raise ValueError(f"mode {self.mode!r} needs Intervention.means (layers, heads, head_dim)")
        if self.means is not None and self.means.shape[:2] != self.disabled.shape[1:]:
            raise ValueError(
                f"Intervention.means is for {tuple(self.means.shape[:2])} layers x heads, "
                f"the mask for {tuple(self.disabled.shape[1:])}"
            )

    @property
    def replaces_context(self) -> bool:
        return self.mode in CONTEXT_REPLACEMENTS


@dataclass(frozen=True)
class Patches:
    """Attribution patching: per mode, coefficients alpha (batch, layers, heads), 0 and requiring a
    gradient; a head's output becomes out + alpha (replacement - out), so d score / d alpha is the
    first-order estimate of disabling it (probability modes patch the probabilities: the output is
    linear in them). ``means`` (layers, heads, head_dim): mode mean's (`headlab.model.attribution`)."""

    coefficients: dict[str, torch.Tensor]
    means: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if unknown := set(self.coefficients) - set(MODES):
            raise ValueError(f"unknown disabling modes {sorted(unknown)}; valid: {sorted(MODES)}")
        if any(m in CONTEXT_REPLACEMENTS for m in self.coefficients) and self.means is None:
            raise ValueError("attribution of mode 'mean' needs Patches.means (layers, heads, head_dim)")

    @property
    def patches_context(self) -> bool:  # whether a context mode is patched (engine route only)
        return any(mode in CONTEXT_REPLACEMENTS for mode in self.coefficients)

    def patched_probs(self, layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> torch.Tensor:
        """probs (batch, heads, query, key) plus every probability mode's alpha x (replacement - probs)."""
        for mode, alpha in self.coefficients.items():
            if mode in REPLACEMENTS:
                change = REPLACEMENTS[mode](probs, key_is_real) - probs  # (batch, heads, query, key)
                probs = probs + alpha[:, layer, :, None, None] * change
        return probs

    def patched_context(self, layer: int, context: torch.Tensor, key_is_real: torch.Tensor) -> torch.Tensor:
        """context (batch, heads, query, head_dim) plus each context mode's alpha x (replacement - it)."""
        for mode, alpha in self.coefficients.items():
            if mode in CONTEXT_REPLACEMENTS:
                means = self.means[layer].to(context.device)  # type: ignore[index]  # (heads, head_dim)
                change = CONTEXT_REPLACEMENTS[mode](context, means, key_is_real) - context
                context = context + alpha[:, layer, :, None, None] * change  # (batch, heads, query, head_dim)
        return context
