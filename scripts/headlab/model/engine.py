"""The attention engine: head interventions and observers for every supported encoder family.

transformers 5 dropped ``head_mask`` (and ignores it silently), so head interventions go
through the public registry of attention functions instead. This module registers the
function ``headlab`` with ``transformers.AttentionInterface`` and the eager (additive, float)
mask builder under the same key with ``AttentionMaskInterface``; without that second
registration the model would look up a mask builder for "headlab", find none, and padding
would be silently unmasked. Families that form their probabilities themselves (DeBERTa-v2/v3,
MPNet; `headlab.model.families`) get the same `Controls` through a forward hook on the module
whose output is the probabilities, on the unmodified model.

Per-call controls travel as one keyword argument of the model's forward,
``headlab=Controls(...)``. `engine_attached` routes a model through the engine for a block and
hooks its forward: a layer's index is the position of its attention call within the forward
pass (so ALBERT's one shared layer gets indices 0..L-1), cross-checked against the module's own
``layer_idx`` where it has one, and **every forward with active controls must reach each of its
layers exactly once** or it raises an error naming the model type (a family that ignores the
engine can never return a plausible, unchanged score). Nothing is stored between calls.

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

from headlab.model.families import Family, check_config_supported
from headlab.model.interventions import CONTEXT_REPLACEMENTS, REPLACEMENTS, Intervention, Patches

ENGINE_KEY = "headlab"


# An observer receives (layer index, attention probs (batch, heads, query, key), key_is_real
# (batch, key)) and reduces them on the fly; it must not keep the full tensor alive. A context
# observer receives (layer, context (batch, heads, query, head_dim), key_is_real) likewise.
Observer = Callable[[int, torch.Tensor, torch.Tensor], None]


class EngineError(RuntimeError):
    """A forward pass whose controls did not reach every layer of the model exactly once."""


@dataclass
class LayerCalls:
    """The attention calls of one forward pass: which layer each is, and how many there were."""

    first: int = 0  # the index of the first layer this pass runs (a sweep's tail starts later)
    count: int = 0
    model_type: str = "?"

    def begin(self, first: int, model_type: str) -> None:
        self.first, self.count, self.model_type = first, 0, model_type

    def next_layer(self, module_layer: int | None) -> int:
        """The index of the layer whose attention is being computed now (its call's position)."""
        layer = self.first + self.count
        self.count += 1
        if module_layer is not None and int(module_layer) != layer:
            raise EngineError(
                f"model type {self.model_type!r}: attention call {self.count} of this pass is layer "
                f"{module_layer} by the module but {layer} by the call order"
            )
        return layer


@dataclass(frozen=True)
class Controls:
    """Everything one forward call asks of the engine.

    ``first_layer``: the first layer the pass runs (a cached sweep's tail runs layers
    first_layer..L-1); the engine expects exactly that many attention calls.
    """

    intervention: Intervention | None = None
    observers: Sequence[Observer] = field(default_factory=tuple)
    first_layer: int = 0
    calls: LayerCalls = field(default_factory=LayerCalls, compare=False, repr=False)
    context_observers: Sequence[Observer] = field(default_factory=tuple)
    patches: Patches | None = None

    @property
    def active(self) -> bool:
        observes = bool(self.observers) or bool(self.context_observers)
        return self.intervention is not None or observes or self.patches is not None

    @property
    def needs_context(self) -> bool:
        """Whether the head's context vector is replaced or observed (engine route only)."""
        replaces = self.intervention is not None and self.intervention.replaces_context
        patches = self.patches is not None and self.patches.patches_context
        return replaces or patches or bool(self.context_observers)


def key_padding_from_mask(
    attention_mask: torch.Tensor | None, batch: int, keys: int, device: torch.device
) -> torch.Tensor:
    """Which key positions are real tokens, from transformers' additive eager mask."""
    if attention_mask is None:  # transformers skips the mask when no row has padding
        return torch.ones(batch, keys, dtype=torch.bool, device=device)
    # (batch, 1, query, key) additive mask: 0 where allowed, dtype-min where masked. A real
    # token may always attend to itself, a padding key never, so the diagonal is the key padding
    # mask, also on sliding-window layers (ModernBERT) whose rows see only a window of keys.
    if attention_mask.shape[-2] == 1:  # (batch, 1, 1, key): one row for every query
        return (attention_mask[:, 0, 0, :] == 0).expand(batch, keys)  # (batch, key)
    return (torch.diagonal(attention_mask[:, 0], dim1=-2, dim2=-1) == 0).expand(batch, keys)  # (batch, key)


def apply_controls(
    controls: Controls, layer: int, probs: torch.Tensor, key_is_real: torch.Tensor
) -> torch.Tensor:
    """The intervention's replacement of probs (batch, heads, query, key) at `layer`, then the
    observers; returns the probabilities the head goes on with."""
    intervention = controls.intervention
    batch = probs.shape[0]
    if intervention is not None and not intervention.replaces_context:
        if intervention.disabled.shape[0] != batch:
            raise ValueError(
                f"intervention has {intervention.disabled.shape[0]} rows but the batch has {batch}"
            )
        replaced = intervention.disabled[:, layer, :].to(probs.device)  # (batch, heads)
        if bool(replaced.any()):
            replacement = REPLACEMENTS[intervention.mode](probs, key_is_real)
            probs = torch.where(replaced[:, :, None, None], replacement, probs)
    if controls.patches is not None:
        probs = controls.patches.patched_probs(layer, probs, key_is_real)
    for observe in controls.observers:
        observe(layer, probs, key_is_real)
    return probs


def apply_context_controls(
    controls: Controls, layer: int, context: torch.Tensor, key_is_real: torch.Tensor
) -> torch.Tensor:
    """A context mode's replacement of the head outputs context (batch, heads, query, head_dim)
    at `layer`, then the context observers; returns the context the layer goes on with."""
    intervention = controls.intervention
    if intervention is not None and intervention.replaces_context:
        if intervention.disabled.shape[0] != context.shape[0]:
            raise ValueError(
                f"intervention has {intervention.disabled.shape[0]} rows but the batch has {context.shape[0]}"
            )
        replaced = intervention.disabled[:, layer, :].to(context.device)  # (batch, heads)
        if bool(replaced.any()):
            means = intervention.means[layer].to(context.device)  # type: ignore[index]  # (heads, head_dim)
            replacement = CONTEXT_REPLACEMENTS[intervention.mode](context, means, key_is_real)
            context = torch.where(replaced[:, :, None, None], replacement, context)
    if controls.patches is not None:
        context = controls.patches.patched_context(layer, context, key_is_real)
    for observe in controls.context_observers:
        observe(layer, context, key_is_real)
    return context


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

    layer, key_is_real = None, None
    if headlab is not None and headlab.active:
        layer = headlab.calls.next_layer(getattr(module, "layer_idx", None))
        batch, _, _, keys = attn_weights.shape
        key_is_real = key_padding_from_mask(attention_mask, batch, keys, attn_weights.device)
        attn_weights = apply_controls(headlab, layer, attn_weights, key_is_real)

    attn_output = torch.matmul(attn_weights, value)  # (batch, heads, query, head_dim)
    if headlab is not None and headlab.needs_context and layer is not None:
        attn_output = apply_context_controls(headlab, layer, attn_output, key_is_real)  # type: ignore[arg-type]
    attn_output = attn_output.transpose(1, 2).contiguous()  # (batch, query, heads, head_dim)
    return attn_output, attn_weights


def register() -> None:
    """Register the engine under ENGINE_KEY in both registries (idempotent)."""
    AttentionInterface.register(ENGINE_KEY, headlab_attention_forward)
    AttentionMaskInterface.register(ENGINE_KEY, eager_mask)


register()


def submodule(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)  # type: ignore[index]
    return module


def model_family(model: PreTrainedModel) -> Family:
    """The model's family (`headlab.model.families`); an error naming its type if unsupported."""
    return check_config_supported(model.config)


def layer_modules(model: PreTrainedModel) -> list[nn.Module]:
    """The model's layer modules in order (ALBERT: its one shared layer, once)."""
    family = model_family(model)
    if family.layers is None:
        return [submodule(model.base_model, str(family.shared_layer))]
    return list(submodule(model.base_model, family.layers))  # type: ignore[arg-type]


class _Session:
    """The hooks of one `engine_attached` block: each forward's controls, the layer-call guard,
    and (hook-route families) the probability hooks."""

    def __init__(self, model: PreTrainedModel, family: Family) -> None:
        self.model, self.family = model, family
        self.n_layers = family.layer_count(model.config)
        self.model_type = str(model.config.model_type)
        self.current: Controls | None = None
        self.key_is_real: torch.Tensor | None = None  # (batch, tokens), from the call's attention_mask
        self.handles: list[torch.utils.hooks.RemovableHandle] = []

    def attach(self) -> None:
        self.handles.append(self.model.register_forward_pre_hook(self._begin, with_kwargs=True))
        self.handles.append(self.model.register_forward_hook(self._end, with_kwargs=True))
        if self.family.route == "hooks":
            for layer in layer_modules(self.model):
                probs = submodule(layer, str(self.family.probs_module))
                self.handles.append(probs.register_forward_hook(self._probs))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.current = None

    def _begin(self, module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        controls = kwargs.get(ENGINE_KEY)
        self.current = controls if isinstance(controls, Controls) and controls.active else None
        if self.current is not None and self.current.needs_context and self.family.route == "hooks":
            raise EngineError(
                f"model type {self.model_type!r} forms its attention itself (headlab reaches only its "
                "probabilities), so a head's context vector cannot be replaced or observed: mean "
                "ablation is not available for this family (nor its attribution); use modes uniform or zero"
            )
        if self.current is not None:
            self.current.calls.begin(self.current.first_layer, self.model_type)
            mask = kwargs.get("attention_mask")
            self.key_is_real = mask.bool() if isinstance(mask, torch.Tensor) else None

    def _end(self, module: nn.Module, args: object, kwargs: object, output: object) -> None:
        controls, self.current = self.current, None
        if controls is None:
            return
        expected = self.n_layers - controls.first_layer
        if controls.calls.count != expected:
            raise EngineError(
                f"model type {self.model_type!r}: the intervention reached {controls.calls.count} "
                f"attention calls in a pass that runs {expected} layers; this model's attention does not "
                "go through headlab's engine, so its scores would be the unchanged model's"
            )

    def _probs(self, module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        """Forward hook on a hook-route family's attention dropout: output (batch, heads, query, key)."""
        controls = self.current
        if controls is None:
            return output
        layer = controls.calls.next_layer(None)
        batch, _, _, keys = output.shape
        if self.key_is_real is None:
            key_is_real = torch.ones(batch, keys, dtype=torch.bool, device=output.device)  # (batch, key)
        else:
            key_is_real = self.key_is_real.to(output.device)  # (batch, key)
        return apply_controls(controls, layer, output, key_is_real)


@contextlib.contextmanager
def engine_attached(model: PreTrainedModel) -> Iterator[PreTrainedModel]:
    """Route the model's attention through the engine (or, for hook-route families, its probability
    hooks) and guard every forward pass; restore the previous state after, also after an error."""
    family = model_family(model)
    previous = model.config._attn_implementation
    session = _Session(model, family)
    if family.route == "engine":
        model.set_attn_implementation(ENGINE_KEY)
    try:
        session.attach()
        yield model
    finally:
        session.detach()
        if family.route == "engine":
            model.set_attn_implementation(previous)


def layer_count(model: PreTrainedModel) -> int:
    """The number of layers, under the family's config name."""
    return model_family(model).layer_count(model.config)


def head_count(model: PreTrainedModel) -> int:
    """The number of heads per layer, under the family's config name."""
    return model_family(model).head_count(model.config)
