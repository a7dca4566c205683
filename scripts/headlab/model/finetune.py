"""Fine-tuning for sequence classification and regression (Devlin et al.'s recipe).

AdamW with linear warm-up then linear decay to zero, seeded shuffles, dynamic padding, bf16
autocast on CUDA. Training uses transformers' SDPA attention (fastest); the saved checkpoint
records nothing about it, and evaluation goes through the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from headlab.io.atomic import atomic_paths
from headlab.model.batching import Encoded, train_batches
from headlab.model.inference import autocast_for, inputs_for


@dataclass(frozen=True)
class TrainingSettings:
    """The config's ``finetune.*`` (defaults: the schema) and the run's seed."""

    epochs: float
    batch_size: int
    learning_rate: float
    warmup_ratio: float
    weight_decay: float
    seed: int
    max_grad_norm: float = 1.0  # the gradient clip of BERT's recipe; not a config key


@dataclass(frozen=True)
class LogRow:
    step: int
    epoch: int
    loss: float
    learning_rate: float


def _optimizer(model: PreTrainedModel, settings: TrainingSettings) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and LayerNorm weights, as in BERT."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        (no_decay if parameter.ndim < 2 or "LayerNorm" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=settings.learning_rate)


def training_steps(examples: int, settings: TrainingSettings) -> int:
    """Optimiser steps of a run: `epochs` (may be fractional) passes of batches, at least one."""
    return max(1, math.ceil(settings.epochs * math.ceil(examples / settings.batch_size)))


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
    optimizer = _optimizer(model, settings)
    schedule = get_linear_schedule_with_warmup(
        optimizer, round(settings.warmup_ratio * total_steps), total_steps
    )
    model.set_attn_implementation("sdpa")
    model.to(device).train()
    log: list[LogRow] = []
    epoch = 0
    while len(log) < total_steps:
        for batch in train_batches(train, settings.batch_size, pad_id, settings.seed, epoch):
            with autocast_for(device):
                outputs = model(**inputs_for(model, batch, device), labels=batch.labels.to(device))
            outputs.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            row = LogRow(len(log) + 1, epoch + 1, float(outputs.loss.detach()), schedule.get_last_lr()[0])
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
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
