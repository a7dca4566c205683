"""Fine-tuning for sequence classification and regression (Devlin et al.'s recipe).

AdamW with linear warm-up then linear decay to zero, seeded batches that depend only on (seed,
epoch), grouped by length unless ``group_by_length`` is off (`headlab.model.batching.train_order`:
chunks of ``length_chunk`` batches sorted by length, then the batches shuffled; off: today's plain
shuffle), dynamic padding, bf16 autocast on CUDA. Training uses transformers' SDPA attention
(fastest); the saved checkpoint records nothing about it, and evaluation goes through the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from headlab.io.atomic import atomic_paths
from headlab.model.batching import Batch, Encoded, train_batches
from headlab.model.inference import autocast_for, inputs_for


@dataclass(frozen=True)
class TrainingSettings:
    """The config's ``finetune.*`` (defaults: the schema) and the run's seed."""

    epochs: float
    batch_size: int
    learning_rate: float
    warmup_ratio: float
    weight_decay: float
    group_by_length: bool  # batches of similar lengths (less padding); False: plain shuffle
    length_chunk: int  # batches per length-sorted chunk when group_by_length
    seed: int
    max_grad_norm: float = 1.0  # the gradient clip of BERT's recipe; not a config key


@dataclass(frozen=True)
class LogRow:
    step: int
    epoch: int
    loss: float
    learning_rate: float


def optimizer_for(model: PreTrainedModel, settings: TrainingSettings) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and LayerNorm weights, as in BERT. The fused kernel where
    torch has one for the parameters' device (CPU and CUDA): the same update as the per-parameter
    loop (torch's default on CPU) up to rounding (tests/model/test_finetune.py), several times
    faster (benchmarks/finetune.py)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    devices = {parameter.device.type for parameter in model.parameters()}
    fused = devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in model.parameters())
    return torch.optim.AdamW(groups, lr=settings.learning_rate, fused=fused or None)


def training_steps(examples: int, settings: TrainingSettings) -> int:
    """Optimiser steps of a run: `epochs` (may be fractional) passes of batches, at least one."""
    return max(1, math.ceil(settings.epochs * math.ceil(examples / settings.batch_size)))


def training_step(
    model: PreTrainedModel,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    max_grad_norm: float,
    schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    """One optimiser step on `batch` (forward, backward, gradient clip, AdamW, the schedule's step
    when given); returns the batch's loss."""
    with autocast_for(device):
        outputs = model(**inputs_for(model, batch, device), labels=batch.labels.to(device))
    outputs.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if schedule is not None:
        schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return float(outputs.loss.detach())


def finetune(
    model: PreTrainedModel,
    train: Encoded,
    pad_id: int,
    settings: TrainingSettings,
    device: torch.device,
    on_step: Callable[[LogRow], None] | None = None,
) -> list[LogRow]:
    """Train in place; returns the per-step log. `epochs` may be fractional (a last partial epoch)."""
    torch.manual_seed(settings.seed)
    total_steps = training_steps(len(train), settings)
    optimizer = optimizer_for(model, settings)
    schedule = get_linear_schedule_with_warmup(
        optimizer, round(settings.warmup_ratio * total_steps), total_steps
    )
    model.set_attn_implementation("sdpa")
    model.to(device).train()
    log: list[LogRow] = []
    epoch = 0
    while len(log) < total_steps:
        chunk = settings.length_chunk if settings.group_by_length else None
        for batch in train_batches(train, settings.batch_size, pad_id, settings.seed, epoch, chunk):
            rate = schedule.get_last_lr()[0]  # the rate this step uses
            loss = training_step(model, batch, optimizer, device, settings.max_grad_norm, schedule)
            row = LogRow(len(log) + 1, epoch + 1, loss, rate)
            log.append(row)
            if on_step:
                on_step(row)
            if len(log) >= total_steps:
                break
        epoch += 1
    model.eval()
    return log


def save_checkpoint(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: str | Path) -> Path:
    """Save in Hugging Face format, atomically: written to a hidden sibling folder, then renamed."""
    with atomic_paths(folder, folders=True) as (staging,):
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return Path(folder)
