"""One function per workflow job. The Snakemake scripts only unpack their arguments and call these."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from headlab.ablation import cached_sweep
from headlab.batching import Batch, Encoded, encode, eval_batches
from headlab.engine import head_count, layer_count
from headlab.finetune import LogRow, TrainingSettings, finetune, save_checkpoint
from headlab.inference import predict_logits
from headlab.masks import baseline_mask, parse_named_mask, sweep_masks
from headlab.model_specs import ModelSpec
from headlab.models import load_checkpoint, load_for_task, pick_device
from headlab.parquet_io import write_table
from headlab.runtime import progress_bar
from headlab.scoring import ablation_table, score, scores_table
from headlab.tasks import get_task

TRAINING_LOG_SCHEMA = pa.schema(
    [("step", pa.int64()), ("epoch", pa.int32()), ("loss", pa.float64()), ("learning_rate", pa.float64())]
)


def _encoded_batches(
    tokenizer: PreTrainedTokenizerBase, table_path: str | Path, max_length: int, batch_size: int
) -> tuple[Encoded, list[Batch]]:
    encoded = encode(tokenizer, pl.read_parquet(table_path), max_length)
    return encoded, eval_batches(encoded, batch_size, tokenizer.pad_token_id)


def finetune_job(
    model_alias: str,
    model_entry: Mapping[str, Any],
    task_name: str,
    init: str,
    train_path: str | Path,
    settings: TrainingSettings,
    max_length: int,
    device: str,
    checkpoint_dir: str | Path,
    training_log_path: str | Path,
    logger: logging.Logger,
) -> list[LogRow]:
    task = get_task(task_name)
    spec = ModelSpec.from_config(model_alias, dict(model_entry))
    model, tokenizer = load_for_task(spec, task, init, settings.seed)
    train = encode(tokenizer, pl.read_parquet(train_path), max_length)
    where = pick_device(device)
    logger.info(
        "fine-tuning %s (%s init) on %s: %d examples, %s, device %s",
        model_alias,
        init,
        task.name,
        len(train),
        settings,
        where,
    )
    steps = int(np.ceil(settings.epochs * np.ceil(len(train) / settings.batch_size)))
    with progress_bar(logger, steps, f"finetune {task.name}/{init}") as bar:

        def on_step(row: LogRow) -> None:
            bar.set_postfix(loss=f"{row.loss:.4f}", refresh=False)
            bar.update(1)

        log = finetune(model, train, tokenizer.pad_token_id, settings, where, on_step)
    logger.info("final loss %.4f after %d steps", log[-1].loss, len(log))
    rows = [vars(r) for r in log]
    metadata = {
        "model": model_alias,
        "model_source": spec.location,
        "revision": spec.revision,
        "task": task.name,
        "init": init,
        "settings": vars(settings),
        "max_length": max_length,
        "n_train": len(train),
    }
    write_table(pa.Table.from_pylist(rows, schema=TRAINING_LOG_SCHEMA), training_log_path, metadata)
    save_checkpoint(model, tokenizer, checkpoint_dir)
    return log


def evaluate_job(
    model_alias: str,
    model_entry: Mapping[str, Any],
    task_name: str,
    dev_path: str | Path,
    checkpoints: Mapping[str, str | Path],
    max_length: int,
    batch_size: int,
    device: str,
    seed: int,
    output: str | Path,
    logger: logging.Logger,
) -> pa.Table:
    """Table 1 scores: the pretrained encoder with a fresh head, and each fine-tuned checkpoint."""
    task = get_task(task_name)
    spec = ModelSpec.from_config(model_alias, dict(model_entry))
    where = pick_device(device)
    models: dict[str, tuple[PreTrainedModel, PreTrainedTokenizerBase]] = {
        "pretrained": load_for_task(spec, task, "pretrained", seed)
    }
    for condition, folder in checkpoints.items():
        models[condition] = load_checkpoint(folder)
    scores: dict[str, dict[str, float]] = {}
    n = 0
    for condition, (model, tokenizer) in models.items():
        encoded, batches = _encoded_batches(tokenizer, dev_path, max_length, batch_size)
        n = len(encoded)
        scores[condition] = score(task, predict_logits(model, batches, n, where), encoded.labels)
        logger.info("%s %s %s: %s", model_alias, task.name, condition, scores[condition])
    table = scores_table(model_alias, task, scores, n)
    write_table(
        table, output, {"model": model_alias, "task": task.name, "seed": seed, "max_length": max_length}
    )
    return table


def ablate_job(
    model_alias: str,
    task_name: str,
    checkpoint: str | Path,
    dev_path: str | Path,
    mode: str,
    named_mask: tuple[str, Sequence[str]] | None,
    max_length: int,
    batch_size: int,
    variants_per_pass: int,
    device: str,
    output: str | Path,
    logger: logging.Logger,
) -> pa.Table:
    """Score the fine-tuned model with heads disabled: the full sweep, or one named mask."""
    task = get_task(task_name)
    model, tokenizer = load_checkpoint(checkpoint)
    layers, heads = layer_count(model), head_count(model)
    if named_mask is None:
        masks = sweep_masks(layers, heads)
    else:
        name, heads_named = named_mask
        masks = [baseline_mask(), parse_named_mask(name, heads_named, layers, heads, key="ablation.masks")]
    encoded, batches = _encoded_batches(tokenizer, dev_path, max_length, batch_size)
    where = pick_device(device)
    logger.info(
        "%s %s mode=%s: %d masks x %d examples (%d layers x %d heads), %d variants per pass, device %s",
        model_alias,
        task.name,
        mode,
        len(masks),
        len(encoded),
        layers,
        heads,
        variants_per_pass,
        where,
    )
    with progress_bar(logger, len(batches), f"ablate {task.name}/{mode}") as bar:
        logits = cached_sweep(model, batches, len(encoded), masks, mode, where, variants_per_pass, bar.update)
    table = ablation_table(model_alias, task, mode, masks, logits, encoded.labels)
    write_table(
        table,
        output,
        {
            "model": model_alias,
            "task": task.name,
            "mode": mode,
            "checkpoint": str(checkpoint),
            "max_length": max_length,
            "variants_per_pass": variants_per_pass,
        },
    )
    return table
