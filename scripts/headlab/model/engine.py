"""The attention engine: one attention function that can disable heads and feed observers.

transformers 5 dropped ``head_mask`` (and ignores it silently), so head interventions go
through the public registry of attention functions instead. This module registers the
function ``headlab`` with ``transformers.AttentionInterface`` and the eager (additive, float)
mask builder under the same key with ``AttentionMaskInterface``; without that second
registration the model would look up a mask builder for "headlab", find none, and padding
would be silently unmasked.

Per-call controls travel as one keyword argument of the model's forward,
``headlab=Controls(...)``, which transformers passes down unchanged to every attention call.
Nothing is stored on the model or in module state between calls.

With no intervention and no observer the arithmetic is exactly that of transformers'
``eager_attention_forward`` (same operations in the same order), so outputs are bit-identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, eager_mask

ENGINE_KEY = "headlab"


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


@dataclass(frozen=True)
class Intervention:
    """Which heads of which batch rows are replaced, and how.

    ``disabled`` is a bool tensor (batch, layers, heads): True where that row's head is replaced.
    Different rows may carry different masks, so one forward pass can evaluate many masks.
    """

    disabled: torch.Tensor
    mode: str = "uniform"

    def __post_init__(self) -> None:
        if self.mode not in REPLACEMENTS:
            raise ValueError(f"unknown disabling mode {self.mode!r}; valid: {sorted(REPLACEMENTS)}")
        if self.disabled.dtype != torch.bool or self.disabled.dim() != 3:
            raise ValueError("Intervention.disabled must be a bool tensor (batch, layers, heads)")


# An observer receives (layer index, attention probs (batch, heads, query, key), key_is_real
# (batch, key)) and reduces them on the fly; it must not keep the full tensor alive.
Observer = Callable[[int, torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class Controls:
    """Everything one forward call asks of the engine."""

    intervention: Intervention | None = None
    observers: Sequence[Observer] = field(default_factory=tuple)


def key_padding_from_mask(
    attention_mask: torch.Tensor | None, batch: int, keys: int, device: torch.device
) -> torch.Tensor:
    """Which key positions are real tokens, from transformers' additive eager mask."""
    if attention_mask is None:  # transformers skips the mask when no row has padding
        return torch.ones(batch, keys, dtype=torch.bool, device=device)
    # (batch, 1, query, key) additive mask: 0 where allowed, dtype-min where masked.
    # Query row 0 is [CLS], a real token, so its row is the key padding mask of the example.
    return (attention_mask[:, 0, 0, :] == 0).expand(batch, keys)  # (batch, key)


def headlab_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    headlab: Controls | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention, plus head replacement and observers when ``headlab`` controls are given."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    # Same operations, same order as transformers' eager_attention_forward.
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (batch, heads, query, key)
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)

    if headlab is not None and (headlab.intervention is not None or headlab.observers):
        layer = module.layer_idx
        batch, _, _, keys = attn_weights.shape
        key_is_real = key_padding_from_mask(attention_mask, batch, keys, attn_weights.device)
        intervention = headlab.intervention
        if intervention is not None:
            if intervention.disabled.shape[0] != batch:
                raise ValueError(
                    f"intervention has {intervention.disabled.shape[0]} rows but the batch has {batch}"
                )
            replaced = intervention.disabled[:, layer, :].to(attn_weights.device)  # (batch, heads)
            if bool(replaced.any()):
                replacement = REPLACEMENTS[intervention.mode](attn_weights, key_is_real)
                attn_weights = torch.where(replaced[:, :, None, None], replacement, attn_weights)
        for observe in headlab.observers:
            observe(layer, attn_weights, key_is_real)

    attn_output = torch.matmul(attn_weights, value)  # (batch, heads, query, head_dim)
    attn_output = attn_output.transpose(1, 2).contiguous()  # (batch, query, heads, head_dim)
    return attn_output, attn_weights


def register() -> None:
    """Register the engine under ENGINE_KEY in both registries (idempotent)."""
    AttentionInterface.register(ENGINE_KEY, headlab_attention_forward)
    AttentionMaskInterface.register(ENGINE_KEY, eager_mask)


register()


@contextlib.contextmanager
def engine_attached(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """Route the model's attention through the engine; restore the previous implementation after."""
    previous = model.config._attn_implementation
    model.set_attn_implementation(ENGINE_KEY)
    try:
        yield model
    finally:
        model.set_attn_implementation(previous)


def layer_count(model: PreTrainedModel) -> int:
    return int(model.config.num_hidden_layers)


def head_count(model: PreTrainedModel) -> int:
    return int(model.config.num_attention_heads)
