"""Disabling sweeps: logits of a model with each of many head masks applied.

Two implementations with the same result:
- `naive_sweep`: one full forward pass per mask and batch (the obvious way, kept as reference
  and for the benchmark);
- `cached_sweep`: one unablated pass per batch records the hidden states entering every layer;
  a mask whose lowest disabled layer is l then runs only layers l..L-1 from the recorded state.
  Masks with the same first layer can be stacked into one larger batch
  (`variants_per_pass`): fewer, larger matrix products, which pays on a GPU; on a small CPU
  one at a time is faster (see benchmarks/ablation_sweep.py).

The tail is run through the model's own forward (embeddings output replaced by the recorded
state, encoder layers temporarily narrowed to l..L-1), so masking, pooling and the
classification head stay the model's code for any BERT-family architecture.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from headlab.model.batching import Batch, restore_order
from headlab.model.engine import Controls, Intervention, head_count, layer_count
from headlab.model.inference import batch_logits, inference_session
from headlab.model.masks import HeadMask, mask_tensor

Progress = Callable[[int], None]


def encoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The encoder's layer list (BERT, RoBERTa, ELECTRA, ... keep it at base_model.encoder.layer)."""
    encoder = getattr(model.base_model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError(
            f"{type(model).__name__} has no base_model.encoder.layer list; not a BERT-family encoder"
        )
    return layers


@contextlib.contextmanager
def layer_inputs_recorded(model: PreTrainedModel) -> Iterator[dict[int, torch.Tensor]]:
    """Record the hidden states entering each encoder layer during the next forward pass."""
    states: dict[int, torch.Tensor] = {}
    handles = []
    for index, layer in enumerate(encoder_layers(model)):

        def record(module: nn.Module, args: tuple[torch.Tensor, ...], index: int = index) -> None:
            states[index] = args[0]  # (batch, tokens, hidden)

        handles.append(layer.register_forward_pre_hook(record))
    try:
        yield states
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def started_at_layer(model: PreTrainedModel, start: int, hidden: torch.Tensor) -> Iterator[None]:
    """Within the block, a forward pass skips layers 0..start-1 and begins from `hidden`.

    The embeddings' output is replaced by `hidden` (batch, tokens, hidden) and the encoder runs
    only its layers start..L-1. Both changes are undone on exit, also after an error.
    """
    base = model.base_model
    full = encoder_layers(model)
    handle = base.embeddings.register_forward_hook(lambda module, args, output: hidden)
    base.encoder.layer = nn.ModuleList(list(full)[start:])
    try:
        yield
    finally:
        base.encoder.layer = full
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
) -> np.ndarray:
    """Logits (masks, examples, labels): one full forward pass per mask and batch."""
    table = mask_tensor(masks, layer_count(model), head_count(model))  # (masks, layers, heads)
    per_mask: list[list[np.ndarray]] = [[] for _ in masks]
    with inference_session(model, device):
        for batch in batches:
            for m in range(len(masks)):
                disabled = _disabled_rows(table[m : m + 1], len(batch.rows))  # (batch, layers, heads)
                controls = Controls(intervention=Intervention(disabled, mode))
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
) -> np.ndarray:
    """Logits (masks, examples, labels), reusing the unablated prefix below each mask's first layer."""
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
                    logits = _tail_logits(model, batch, states[start], start, table[chunk], mode, device)
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
) -> np.ndarray:
    """Logits (variants * batch, labels) of layers start..L-1 with one mask per stacked copy."""
    count = variants.shape[0]
    stacked = batch.repeated(count) if count > 1 else batch
    hidden = hidden.repeat(count, 1, 1) if count > 1 else hidden  # (variants * batch, tokens, hidden)
    controls = Controls(intervention=Intervention(_disabled_rows(variants, len(batch.rows)), mode))
    with started_at_layer(model, start, hidden):
        return batch_logits(model, stacked, device, controls)
