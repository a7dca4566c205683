"""Disabling sweeps: logits of a model with each of many head masks applied.

Two implementations with the same result:
- `naive_sweep`: one full forward pass per mask and batch (the obvious way, kept as reference
  and for the benchmark);
- `cached_sweep`: one unablated pass per batch records the hidden states entering every layer;
  a mask whose lowest disabled layer is l then runs only layers l..L-1 from the recorded state.
  Masks with the same first layer can be stacked into one larger batch
  (`variants_per_pass`): fewer, larger matrix products, which pays on a GPU; on a small CPU
  one at a time is faster (see benchmarks/ablation_sweep.py).

The tail is run through the model's own forward (the layer list temporarily narrowed to
l..L-1, layer l's input replaced by the recorded state through a pre-hook on that layer), so
masking, pooling and the classification head stay the model's code for every supported family
(`headlab.model.families`).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from headlab.heads import HeadMask
from headlab.model.batching import Batch, restore_order
from headlab.model.engine import Controls, head_count, layer_count, layer_modules, model_family, submodule
from headlab.model.inference import batch_logits, inference_session
from headlab.model.interventions import Intervention
from headlab.model.masks import mask_tensor

Progress = Callable[[int], None]


def _hidden_argument(args: tuple[object, ...], kwargs: dict[str, object]) -> torch.Tensor:
    """The hidden states a layer is called with (first positional argument, or by keyword)."""
    if args:
        return args[0]  # type: ignore[return-value]
    for name in ("hidden_states", "hidden_state", "x"):
        if name in kwargs:
            return kwargs[name]  # type: ignore[return-value]
    raise TypeError("a layer was called without its hidden states")


def _with_hidden(
    args: tuple[object, ...], kwargs: dict[str, object], hidden: torch.Tensor
) -> tuple[tuple[object, ...], dict[str, object]]:
    if args:
        return (hidden, *args[1:]), kwargs
    name = next(n for n in ("hidden_states", "hidden_state", "x") if n in kwargs)
    return args, {**kwargs, name: hidden}


@contextlib.contextmanager
def layer_inputs_recorded(model: PreTrainedModel) -> Iterator[dict[int, torch.Tensor]]:
    """Record the hidden states entering each layer during the next forward pass, by call order
    (ALBERT's shared layer is called once per depth)."""
    states: dict[int, torch.Tensor] = {}
    handles = []

    def record(module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> None:
        states[len(states)] = _hidden_argument(args, kwargs)  # (batch, tokens, hidden)

    for layer in layer_modules(model):
        handles.append(layer.register_forward_pre_hook(record, with_kwargs=True))
    try:
        yield states
    finally:
        for handle in handles:
            handle.remove()


def tail_is_exact(model: PreTrainedModel, start: int) -> bool:
    """Whether a pass from layer `start` with the recorded input equals the full pass: not for
    DeBERTa-v2 with its convolution after layer 0 (conv_kernel_size > 0), which a narrowed layer
    list would apply after layer `start` instead."""
    has_conv = getattr(getattr(model.base_model, "encoder", None), "conv", None) is not None
    return start == 0 or not has_conv


@contextlib.contextmanager
def started_at_layer(model: PreTrainedModel, start: int, hidden: torch.Tensor) -> Iterator[None]:
    """Within the block, a forward pass runs only layers start..L-1, and layer `start` is called
    with `hidden` (batch, tokens, hidden) instead of what reaches it: a pre-hook on that layer, so
    nothing between the embeddings and the first layer (ELECTRA's projection, ALBERT's mapping)
    is applied to the recorded state again. Undone on exit, also after an error."""
    family = model_family(model)
    config = model.config
    replaced = {"done": False}

    def replace(module: nn.Module, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        if replaced["done"]:
            return None
        replaced["done"] = True
        return _with_hidden(args, kwargs, hidden)

    if family.layers is None:  # ALBERT: one shared layer, called num_hidden_layers times
        layer = layer_modules(model)[0]
        full_count = config.num_hidden_layers
        handle = layer.register_forward_pre_hook(replace, with_kwargs=True)
        config.num_hidden_layers = full_count - start
        try:
            yield
        finally:
            config.num_hidden_layers = full_count
            handle.remove()
        return
    owner_path, _, name = family.layers.rpartition(".")
    owner = submodule(model.base_model, owner_path) if owner_path else model.base_model
    full = getattr(owner, name)
    handle = full[start].register_forward_pre_hook(replace, with_kwargs=True)
    setattr(owner, name, nn.ModuleList(list(full)[start:]))
    try:
        yield
    finally:
        setattr(owner, name, full)
        handle.remove()


def _disabled_rows(masks: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(variants, layers, heads) -> (variants * batch, layers, heads), variant-major."""
    variants, layers, heads = masks.shape
    return masks[:, None].expand(variants, batch_size, layers, heads).reshape(-1, layers, heads)


def naive_sweep(
    model: PreTrainedModel,
    batches: Sequence[Batch],
    n_examples: int,
    masks: Sequence[HeadMask],
    mode: str,
    device: torch.device,
    progress: Progress | None = None,
    means: torch.Tensor | None = None,
) -> np.ndarray:
    """Logits (masks, examples, labels): one full forward pass per mask and batch. `means`
    (layers, heads, head_dim): the reference means of mode "mean"."""
    table = mask_tensor(masks, layer_count(model), head_count(model))  # (masks, layers, heads)
    per_mask: list[list[np.ndarray]] = [[] for _ in masks]
    with inference_session(model, device):
        for batch in batches:
            for m in range(len(masks)):
                disabled = _disabled_rows(table[m : m + 1], len(batch.rows))  # (batch, layers, heads)
                controls = Controls(intervention=Intervention(disabled, mode, means))
                per_mask[m].append(batch_logits(model, batch, device, controls))
            if progress:
                progress(1)
    rows = [b.rows for b in batches]
    return np.stack([restore_order(chunks, rows, n_examples) for chunks in per_mask])


def cached_sweep(
    model: PreTrainedModel,
    batches: Sequence[Batch],
    n_examples: int,
    masks: Sequence[HeadMask],
    mode: str,
    device: torch.device,
    variants_per_pass: int = 1,
    progress: Progress | None = None,
    means: torch.Tensor | None = None,
) -> np.ndarray:
    """Logits (masks, examples, labels), reusing the unablated prefix below each mask's first layer
    (`means` as in `naive_sweep`)."""
    if variants_per_pass < 1:
        raise ValueError("variants_per_pass must be >= 1")
    table = mask_tensor(masks, layer_count(model), head_count(model))  # (masks, layers, heads)
    by_first_layer: dict[int, list[int]] = defaultdict(list)
    for m, mask in enumerate(masks):
        if mask.first_layer is not None:
            by_first_layer[mask.first_layer].append(m)
    per_mask: list[list[np.ndarray]] = [[] for _ in masks]
    with inference_session(model, device):
        for batch in batches:
            with layer_inputs_recorded(model) as states:
                baseline = batch_logits(model, batch, device, None)  # (batch, labels)
            for m, mask in enumerate(masks):
                if mask.first_layer is None:
                    per_mask[m].append(baseline)
            for start, members in sorted(by_first_layer.items()):
                for i in range(0, len(members), variants_per_pass):
                    chunk = members[i : i + variants_per_pass]
                    logits = _tail_logits(
                        model, batch, states[start], start, table[chunk], mode, device, means
                    )
                    for m, part in zip(chunk, np.split(logits, len(chunk)), strict=True):
                        per_mask[m].append(part)
            if progress:
                progress(1)
    rows = [b.rows for b in batches]
    return np.stack([restore_order(chunks, rows, n_examples) for chunks in per_mask])


def _tail_logits(
    model: PreTrainedModel,
    batch: Batch,
    hidden: torch.Tensor,
    start: int,
    variants: torch.Tensor,
    mode: str,
    device: torch.device,
    means: torch.Tensor | None = None,
) -> np.ndarray:
    """Logits (variants * batch, labels) of layers start..L-1 with one mask per stacked copy."""
    count = variants.shape[0]
    stacked = batch.repeated(count) if count > 1 else batch
    hidden = hidden.repeat(count, 1, 1) if count > 1 else hidden  # (variants * batch, tokens, hidden)
    disabled = _disabled_rows(variants, len(batch.rows))  # (variants * batch, layers, heads)
    intervention = Intervention(disabled, mode, means)
    if not tail_is_exact(model, start):
        return batch_logits(model, stacked, device, Controls(intervention=intervention))
    controls = Controls(intervention=intervention, first_layer=start)
    with started_at_layer(model, start, hidden):
        return batch_logits(model, stacked, device, controls)
