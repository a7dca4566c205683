"""Physical head pruning: a pruned head's weights are removed, so the model computes less.

Definitions:

- pruning head h of layer l (0-based pairs (l, h), as the engine counts) removes that head's rows
  of the layer's query, key and value projections (rows h * d .. (h + 1) * d - 1 of each, d the
  head size) and the same columns of the attention output projection (BERT's
  ``attention.output.dense``, DistilBERT's ``out_lin``); the bias of the output projection stays.
  This is exactly the engine's ``zero`` mode (Michel et al.'s head mask: a zero head contributes
  nothing to the output projection), computed without the head: the pruned model's scores equal
  the masked model's up to float summation order (tests/model/test_pruning.py: rtol 1e-5,
  atol 1e-6);
- a layer with every head pruned keeps 0-row projections, which transformers' ``view(..., -1,
  head_size)`` cannot reshape, so its self-attention module is replaced by `EmptySelfAttention`:
  a context of width 0, through which the output projection adds only its bias, which is what
  zero-mode masking of all of the layer's heads gives;
- the pruned heads are recorded in the model's config under ``headlab_pruned_heads`` (sorted
  [layer, head] pairs of the original numbering); pruning again prunes more heads of the same
  original numbering (already pruned heads are skipped).

Families: those the engine routes with a standard layout (one query, key and value Linear per
layer and one output projection): bert; roberta, xlm-roberta, camembert; electra; distilbert
(q_lin, k_lin, v_lin, out_lin). Every other model type is refused by name: ALBERT shares one
layer across depths (pruning it prunes every depth), ModernBERT fuses q, k and v into one Linear,
DeBERTa-v2 and MPNet form their attention themselves.

The engine on a pruned model: forward passes through `headlab.model.inference` without controls
work (the engine's attention function with no controls is eager attention, and the head count
comes from the tensors). Per-head interventions and observers index heads (batch, layers, heads)
of the unpruned layout, which a pruned layer no longer has (and a fully pruned layer has no
attention call for the engine's layer guard to count), so a pruned model refuses every forward
with active ``headlab`` controls (`PrunedModelError`). The pruned model is for inference speed;
with ``output_attentions`` (eager) a pruned layer's probabilities have only its kept heads, and a
fully pruned layer has none (the tuple is shorter than the layer count).

Checkpoints: `save_pruned` writes an ordinary ``save_pretrained`` folder, the pruned heads in its
config.json. transformers 5 cannot load it: it has no ``pruned_heads`` and no ``prune_heads`` any
more, builds every layer with ``num_attention_heads`` heads, and so plain
``from_pretrained(folder)`` raises a RuntimeError over the size mismatch, and with
``ignore_mismatched_sizes=True`` silently re-initialises the pruned layers' projections (the
scores are then a random model's); tests/model/test_pruning.py documents both. `load_pruned`
is the way: the model from its config, pruned, then the saved weights loaded strictly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, PreTrainedModel, PreTrainedTokenizerBase

from headlab.model.engine import (
    ENGINE_KEY,
    Controls,
    head_count,
    layer_count,
    layer_modules,
    model_family,
    submodule,
)
from headlab.model.pooling import restore_pooling

CONFIG_KEY = "headlab_pruned_heads"


class PruningError(ValueError):
    """A model headlab cannot prune physically, a head it does not have, or a bad checkpoint."""


class PrunedModelError(RuntimeError):
    """An engine intervention or observer asked of a physically pruned model."""


@dataclass(frozen=True)
class Layout:
    """Where one layer's attention weights are, relative to the layer module."""

    attention: str  # the self-attention module (holds the projections)
    projections: tuple[str, str, str]  # query, key, value Linear attributes of that module
    output: str  # the output projection Linear, from the layer
    head_attribute: str  # the self-attention module's head count attribute
    width_attribute: str | None  # its attribute for heads x head size, where it has one
    output_inside: bool  # whether the self-attention module applies the output projection itself


BERT_LAYOUT = Layout(
    "attention.self",
    ("query", "key", "value"),
    "attention.output.dense",
    "num_attention_heads",
    "all_head_size",
    False,
)
LAYOUTS: dict[str, Layout] = {
    "bert": BERT_LAYOUT,
    "roberta": BERT_LAYOUT,
    "electra": BERT_LAYOUT,
    "distilbert": Layout(
        "attention", ("q_lin", "k_lin", "v_lin"), "attention.out_lin", "n_heads", None, True
    ),
}
REFUSED_REASONS = {
    "albert": "its one layer is shared by every depth, so pruning a head would prune it at every depth",
    "modernbert": "its query, key and value share one fused Linear (Wqkv)",
    "deberta-v2": "it forms its attention itself (relative-position terms), outside headlab's engine",
    "mpnet": "it forms its attention itself (relative-position bias), outside headlab's engine",
}


def layout_of(model: PreTrainedModel) -> Layout:
    """The model's attention layout; an error naming its type where physical pruning is not supported."""
    family = model_family(model)  # an error naming the type where headlab has no such family
    if family.name not in LAYOUTS:
        reason = REFUSED_REASONS.get(family.name, "its attention layout is not one headlab can slice")
        raise PruningError(
            f"model type {model.config.model_type!r} cannot be pruned physically: {reason}; "
            f"prunable families: {', '.join(sorted(LAYOUTS))}"
        )
    return LAYOUTS[family.name]


class EmptySelfAttention(nn.Module):
    """A layer's self-attention with every head pruned: the 0-row projections are kept (so the
    checkpoint has the same keys), the context has width 0, and where the module applies the
    output projection itself (DistilBERT) that projection of the empty context is its bias."""

    def __init__(self, original: nn.Module, layout: Layout) -> None:
        super().__init__()
        self.layout = layout
        for name in layout.projections:
            setattr(self, name, getattr(original, name))
        self.attention_head_size = original.attention_head_size
        setattr(self, layout.head_attribute, 0)
        if layout.width_attribute is not None:
            setattr(self, layout.width_attribute, 0)
        if layout.output_inside:
            self.output_name = layout.output.rpartition(".")[2]
            setattr(self, self.output_name, getattr(original, self.output_name))

    def forward(
        self, hidden_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, None]:
        context = hidden_states.new_zeros(*hidden_states.shape[:-1], 0)  # (batch, tokens, 0)
        if self.layout.output_inside:
            return getattr(self, self.output_name)(context), None  # (batch, tokens, hidden): the bias
        return context, None


def pruned_heads(model: PreTrainedModel) -> set[tuple[int, int]]:
    """The (layer, head) pairs already pruned from the model (its config's record)."""
    return {(int(layer), int(head)) for layer, head in getattr(model.config, CONFIG_KEY, None) or ()}


def _slice_linear(linear: nn.Linear, keep: torch.Tensor, dim: int) -> None:
    """Keep only the rows (dim 0) or columns (dim 1) `keep` of a Linear, in place."""
    weight = linear.weight.detach().index_select(dim, keep.to(linear.weight.device)).clone()
    linear.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
    if dim == 0:
        if linear.bias is not None:
            bias = linear.bias.detach().index_select(0, keep.to(linear.bias.device)).clone()
            linear.bias = nn.Parameter(bias, requires_grad=linear.bias.requires_grad)
        linear.out_features = len(keep)
    else:
        linear.in_features = len(keep)


def _check_heads(heads: Iterable[tuple[int, int]], layers: int, per_layer: int) -> set[tuple[int, int]]:
    chosen = set()
    for pair in heads:
        layer, head = (int(x) for x in pair)
        if not (0 <= layer < layers and 0 <= head < per_layer):
            raise PruningError(
                f"head (layer {layer}, head {head}) does not exist: the model has layers 0..{layers - 1} "
                f"and heads 0..{per_layer - 1} (0-based)"
            )
        chosen.add((layer, head))
    return chosen


def _refuse_controls(module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    controls = kwargs.get(ENGINE_KEY)
    if isinstance(controls, Controls) and controls.active:
        raise PrunedModelError(
            f"model type {module.config.model_type!r} was pruned physically (heads "  # type: ignore[union-attr]
            f"{sorted(pruned_heads(module))}): engine interventions and observers index the heads of "  # type: ignore[arg-type]
            "the unpruned layout, which its pruned layers no longer have; use the unpruned model with "
            "ablation mode 'zero' instead"
        )


def prune_heads(model: PreTrainedModel, heads: Iterable[tuple[int, int]]) -> PreTrainedModel:
    """Remove the (layer, head) pairs (0-based, original numbering) from the model, in place; returns it."""
    layout = layout_of(model)
    layers, per_layer = layer_count(model), head_count(model)
    chosen = _check_heads(heads, layers, per_layer)
    before = pruned_heads(model)
    modules = layer_modules(model)
    for layer, module in enumerate(modules):
        gone = {h for lay, h in before if lay == layer}
        attention = submodule(module, layout.attention)
        if getattr(attention, layout.head_attribute) != per_layer - len(gone):
            raise PruningError(
                f"layer {layer} has {getattr(attention, layout.head_attribute)} heads but the config's "
                f"{CONFIG_KEY} leaves {per_layer - len(gone)}: the record does not describe these weights"
            )
    for layer, module in enumerate(modules):
        gone = {h for lay, h in before if lay == layer}
        remove = {h for lay, h in chosen if lay == layer} - gone
        if remove:
            _prune_layer(module, layout, per_layer, gone, remove)
    if chosen - before and not hasattr(model, "_headlab_pruning_guard"):
        model._headlab_pruning_guard = model.register_forward_pre_hook(_refuse_controls, with_kwargs=True)
    model.config.update({CONFIG_KEY: [list(pair) for pair in sorted(before | chosen)]})
    return model


def _prune_layer(module: nn.Module, layout: Layout, per_layer: int, gone: set[int], remove: set[int]) -> None:
    """Slice one layer's projections from its current heads (all but `gone`) to all but gone | remove."""
    attention = submodule(module, layout.attention)
    size = int(attention.attention_head_size)
    current = [h for h in range(per_layer) if h not in gone]  # the heads the weights hold now, in order
    kept = [i for i, h in enumerate(current) if h not in remove]  # their positions among the current
    keep = torch.tensor(
        [i * size + d for i in kept for d in range(size)], dtype=torch.long
    )  # (kept heads * head size,) rows of q, k, v; columns of the output projection
    for name in layout.projections:
        _slice_linear(getattr(attention, name), keep, dim=0)
    _slice_linear(submodule(module, layout.output), keep, dim=1)
    setattr(attention, layout.head_attribute, len(kept))
    if layout.width_attribute is not None:
        setattr(attention, layout.width_attribute, len(kept) * size)
    if not kept and not isinstance(attention, EmptySelfAttention):
        owner_path, _, name = layout.attention.rpartition(".")
        owner = submodule(module, owner_path) if owner_path else module
        setattr(owner, name, EmptySelfAttention(attention, layout))


def save_pruned(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    folder: str | Path,
    heads: Iterable[tuple[int, int]],
) -> Path:
    """An ordinary ``save_pretrained`` folder of the model with `heads` pruned (pruned here, in place,
    where the model is not yet; an error where it was pruned with other heads), the pruned heads
    in config.json under ``headlab_pruned_heads``, and the tokenizer's files (unless None)."""
    wanted = _check_heads(heads, layer_count(model), head_count(model))
    done = pruned_heads(model)
    if not done:
        prune_heads(model, wanted)
    elif done != wanted:
        raise PruningError(
            f"the model was pruned of {sorted(done)}, not the {sorted(wanted)} asked to be saved"
        )
    folder = Path(folder)
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


def _saved_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The state dict of a safetensors checkpoint, single file or sharded."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return load_file(single)
    if index.is_file():
        files = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return {key: value for name in files for key, value in load_file(folder / name).items()}
    raise PruningError(f"{folder} has no model.safetensors (or its index): not a save_pruned checkpoint")


def load_pruned(folder: str | Path) -> PreTrainedModel:
    """The model `save_pruned` wrote: its class (config ``architectures``) built from the config,
    pruned as the config records, and the saved weights loaded strictly (only keys tied to a
    loaded one may be absent); reading the pooling its config records
    (`headlab.model.pooling`); in eval mode."""
    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder)
    heads = getattr(config, CONFIG_KEY, None)
    if heads is None:
        raise PruningError(
            f"{folder}/config.json has no {CONFIG_KEY}: not a pruned checkpoint (use from_pretrained)"
        )
    architectures = getattr(config, "architectures", None) or []
    model_class = getattr(transformers, architectures[0], None) if architectures else None
    if model_class is None:
        raise PruningError(
            f"{folder}/config.json names no transformers model class (architectures: {architectures})"
        )
    config.update({CONFIG_KEY: []})  # the freshly built model has every head
    model = model_class(config)
    prune_heads(model, [tuple(pair) for pair in heads])
    state = _saved_weights(folder)
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    if len(dtypes) == 1:
        model.to(dtypes.pop())
    missing, unexpected = model.load_state_dict(state, strict=False)
    current = model.state_dict()
    loaded = {current[key].data_ptr() for key in state if current[key].numel()}
    untied = [key for key in missing if not current[key].numel() or current[key].data_ptr() not in loaded]
    if unexpected or untied:
        raise PruningError(
            f"{folder}: the pruned model's weights do not match the checkpoint "
            f"(missing: {untied[:5]}, unexpected: {unexpected[:5]})"
        )
    return restore_pooling(model).eval()
