"""Jobs of rules/finetune.smk: fine-tuning one model x task x condition, and the Table 1 scores.

The conditions and their weights are `headlab.conditions`. The scratch condition may be trained
for fewer seeds than the finetuned one (finetune.scratch_seeds): rule evaluate then passes no
scratch checkpoint, and its tables have pretrained and finetuned rows only."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Finetune:
    model: str  # the alias
    task: str
    condition: str  # a trained condition of headlab.conditions: scratch | finetuned
    seed: int  # one of finetune.seeds (of finetune.scratch_seeds for condition scratch)
    model_entry: dict[str, Any]
    train: Path
    # finetune.* but the seed lists: headlab.model.finetune.TrainingSettings, and pooling
    # (headlab.model.pooling: the readout the classifier reads)
    settings: dict[str, Any]
    max_length: int
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    checkpoint: Path
    training_log: Path
    log: Path | None = None
    threads: int = 1


def finetune(job: Finetune, logger: logging.Logger) -> None:
    """Rule finetune: the model with a fresh seeded head, trained, its log table and checkpoint."""
    import polars as pl
    import pyarrow as pa

    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table
    from headlab.io.schemas import TRAINING_LOG_SCHEMA
    from headlab.model.batching import encode
    from headlab.model.finetune import LogRow, TrainingSettings, save_checkpoint, training_steps
    from headlab.model.finetune import finetune as train
    from headlab.model.loading import load_for_task, pick_device
    from headlab.model.specs import ModelSpec
    from headlab.runtime import progress_bar

    task = get_task(job.task)
    training = dict(job.settings)
    pooling = training.pop("pooling", "cls")
    settings = TrainingSettings(**training, seed=job.seed)
    spec = ModelSpec.from_config(job.model, job.model_entry)
    model, tokenizer = load_for_task(spec, task, job.condition, settings.seed, pooling)
    examples = encode(tokenizer, pl.read_parquet(job.train), job.max_length)
    where = pick_device(job.device, job.precision)
    logger.info(
        "fine-tuning %s (%s) on %s: %d examples, %s, pooling %s, device %s",
        job.model,
        job.condition,
        task.name,
        len(examples),
        settings,
        pooling,
        where,
    )
    steps = training_steps(len(examples), settings)
    with progress_bar(logger, steps, f"finetune {task.name}/{job.condition}") as bar:

        def on_step(row: LogRow) -> None:
            bar.set_postfix(loss=f"{row.loss:.4f}", refresh=False)
            bar.update(1)

        log = train(model, examples, tokenizer.pad_token_id, settings, where, on_step)
    logger.info("final loss %.4f after %d steps", log[-1].loss, len(log))
    metadata = {
        "model": job.model,
        "model_source": spec.location,
        "revision": spec.revision,
        "task": task.name,
        "condition": job.condition,
        "seed": job.seed,
        "settings": vars(settings),
        "pooling": pooling,
        "max_length": job.max_length,
        "n_train": len(examples),
    }
    rows = [vars(r) for r in log]
    write_table(pa.Table.from_pylist(rows, schema=TRAINING_LOG_SCHEMA), job.training_log, metadata)
    save_checkpoint(model, tokenizer, job.checkpoint)


@dataclass(frozen=True)
class Evaluate:
    model: str
    task: str
    model_entry: dict[str, Any]
    dev: Path
    # the checkpoint of condition scratch (fine-tuned from random weights); None when the seed is
    # not one of finetune.scratch_seeds (no scratch rows)
    scratch: Path | None
    finetuned: Path  # the checkpoint of condition finetuned (fine-tuned from pretrained weights)
    seed: int  # the checkpoints' fine-tuning seed; also seeds the "pretrained" condition's fresh head
    max_length: int
    batch_size: int
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    scores: Path
    predictions: Path  # condition x example
    pooling: str = "cls"  # the pretrained condition's readout: the fine-tuning's (finetune.pooling)
    log: Path | None = None
    threads: int = 1


def evaluate(job: Evaluate, logger: logging.Logger) -> None:
    """Rule evaluate: Table 1 scores, the pretrained encoder with a fresh head and each checkpoint
    (no scratch rows without a scratch checkpoint)."""
    import numpy as np

    from headlab.analysis.scoring import predictions_table, score, scores_table
    from headlab.conditions import FINETUNED, PRETRAINED, SCRATCH
    from headlab.data.glue_table import example_keys
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table
    from headlab.model.batching import encoded_batches
    from headlab.model.inference import predict_logits
    from headlab.model.loading import check_same_family, load_checkpoint, load_for_task, pick_device
    from headlab.model.specs import ModelSpec

    task = get_task(job.task)
    spec = ModelSpec.from_config(job.model, job.model_entry)
    where = pick_device(job.device, job.precision)
    # CONDITIONS order; the checkpoints read the pooling their configs record
    models = {PRETRAINED: load_for_task(spec, task, PRETRAINED, job.seed, job.pooling)}
    if job.scratch is not None:
        models[SCRATCH] = load_checkpoint(job.scratch)
    else:
        logger.info("seed %d is not one of finetune.scratch_seeds: no %s scores", job.seed, SCRATCH)
    models[FINETUNED] = load_checkpoint(job.finetuned)
    for condition in (SCRATCH, FINETUNED):
        if condition in models:
            check_same_family(spec, models[condition][0])
    scores: dict[str, dict[str, float]] = {}
    logits: dict[str, np.ndarray] = {}  # condition -> (examples, labels)
    gold = np.empty(0)
    for condition, (model, tokenizer) in models.items():
        encoded, batches = encoded_batches(tokenizer, job.dev, job.max_length, job.batch_size)
        gold = encoded.labels
        logits[condition] = predict_logits(model, batches, len(encoded), where)
        scores[condition] = score(task, logits[condition], gold)
        logger.info("%s %s seed %d %s: %s", job.model, task.name, job.seed, condition, scores[condition])
    table = scores_table(job.model, task, job.seed, scores, len(gold))
    metadata = {
        "model": job.model,
        "task": task.name,
        "seed": job.seed,
        "max_length": job.max_length,
        "precision": job.precision,
    }
    examples = example_keys(job.dev)
    predictions = predictions_table(job.model, task, job.seed, logits, gold, examples)
    write_table(predictions, job.predictions, metadata)
    write_table(table, job.scores, metadata)
