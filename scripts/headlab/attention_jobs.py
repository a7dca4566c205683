"""The attention jobs (rules attention_stats and attention_drift); the Snakemake scripts only unpack
their arguments and call these.

Variants: ``pretrained`` is the encoder with no fine-tuning (loaded as in Table 1, with a seeded
classification head that attention never reads); ``finetuned`` is the checkpoint fine-tuned from
the pretrained weights (``results/{model}/{task}/finetuned-pretrained``). Both read the same seeded
sample of at most ``max_examples`` rows of the dev Parquet (`headlab.glue_data.sample_rows`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from headlab.attention_drift import drift_pass, drift_table
from headlab.attention_stats import (
    LEVELS,
    STATS,
    STATS_SCHEMA,
    VARIANTS,
    statistics_chunks,
    statistics_pass,
    tokenize_table,
    write_table_chunks,
)
from headlab.batching import encode, eval_batches
from headlab.engine import head_count, layer_count
from headlab.glue_data import read_sample
from headlab.model_specs import ModelSpec
from headlab.models import load_checkpoint, load_for_task, pick_device
from headlab.parquet_io import write_table
from headlab.runtime import progress_bar
from headlab.tasks import get_task


def load_variant(
    model_alias: str,
    model_entry: Mapping[str, Any],
    task_name: str,
    variant: str,
    checkpoint: str | Path | None,
    seed: int,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """The model of a variant, its tokenizer, and where its weights came from."""
    if variant not in VARIANTS:
        raise ValueError(f"variant is {variant!r}; valid: {', '.join(VARIANTS)}")
    if variant == "finetuned":
        if checkpoint is None:
            raise ValueError("variant 'finetuned' needs the fine-tuned checkpoint folder")
        model, tokenizer = load_checkpoint(checkpoint)
        return model, tokenizer, str(checkpoint)
    spec = ModelSpec.from_config(model_alias, dict(model_entry))
    model, tokenizer = load_for_task(spec, get_task(task_name), "pretrained", seed)
    return model, tokenizer, spec.location


def attention_stats_job(
    model_alias: str,
    model_entry: Mapping[str, Any],
    task_name: str,
    variant: str,
    dev_path: str | Path,
    checkpoint: str | Path | None,
    max_examples: int | None,
    seed: int,
    batch_size: int,
    level: str,
    max_length: int,
    device: str,
    output: str | Path,
    logger: logging.Logger,
) -> dict[str, Any]:
    """Per example, layer and head the statistics of `headlab.attention_stats`; returns the metadata."""
    if level not in LEVELS:
        raise ValueError(f"attention.level is {level!r}; valid: {', '.join(LEVELS)}")
    task = get_task(task_name)
    model, tokenizer, source = load_variant(model_alias, model_entry, task.name, variant, checkpoint, seed)
    table = read_sample(dev_path, max_examples, seed)
    tokens = tokenize_table(tokenizer, table, max_length, with_words=level == "word")
    where = pick_device(device)
    n = table.height
    n_layers, n_heads = layer_count(model), head_count(model)
    logger.info(
        "%s %s %s: %d examples, %d layers x %d heads, level %s, device %s",
        model_alias,
        task.name,
        variant,
        n,
        n_layers,
        n_heads,
        level,
        where,
    )
    with progress_bar(logger, math.ceil(n / batch_size), f"attention {task.name}/{variant}") as bar:
        values = statistics_pass(model, tokens, batch_size, where, level, tokenizer.pad_token_id, bar.update)
    metadata = {
        "model": model_alias,
        "model_source": source,
        "revision": model_entry.get("revision"),
        "task": task.name,
        "variant": variant,
        "dev": str(dev_path),
        "n_examples": n,
        "max_examples": max_examples,
        "level": level,
        "seed": seed,
        "max_length": max_length,
        "stats": list(STATS),
        "device": str(where),
    }
    examples = table["row"].to_numpy().astype(np.int64)
    chunks = statistics_chunks(model_alias, task.name, variant, examples, values)
    write_table_chunks(chunks, STATS_SCHEMA, output, metadata)
    means = np.nanmean(values, axis=(0, 1, 2))  # (stats,)
    logger.info(
        "mean over examples, layers, heads: %s",
        {s: round(float(m), 4) for s, m in zip(STATS, means, strict=True)},
    )
    return metadata


def attention_drift_job(
    model_alias: str,
    model_entry: Mapping[str, Any],
    task_name: str,
    dev_path: str | Path,
    checkpoint: str | Path,
    max_examples: int | None,
    seed: int,
    batch_size: int,
    max_length: int,
    device: str,
    output: str | Path,
    logger: logging.Logger,
) -> pa.Table:
    """Figure 5's numbers: per head, the cosine between pretrained and fine-tuned attention maps."""
    task = get_task(task_name)
    pretrained, pretrained_tokenizer, source = load_variant(
        model_alias, model_entry, task.name, "pretrained", None, seed
    )
    finetuned, tokenizer, _ = load_variant(model_alias, model_entry, task.name, "finetuned", checkpoint, seed)
    if pretrained_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"the checkpoint {checkpoint} has another vocabulary than model {model_alias!r}")
    table = read_sample(dev_path, max_examples, seed)
    encoded = encode(tokenizer, table, max_length)
    batches = eval_batches(encoded, batch_size, tokenizer.pad_token_id)
    where = pick_device(device)
    logger.info("%s %s: drift over %d examples, device %s", model_alias, task.name, len(encoded), where)
    with progress_bar(logger, len(batches), f"drift {task.name}") as bar:
        cosines = drift_pass(pretrained, finetuned, batches, len(encoded), where, bar.update)
    result = drift_table(model_alias, task.name, cosines)
    metadata = {
        "model": model_alias,
        "model_source": source,
        "revision": model_entry.get("revision"),
        "task": task.name,
        "checkpoint": str(checkpoint),
        "dev": str(dev_path),
        "n_examples": len(encoded),
        "max_examples": max_examples,
        "seed": seed,
        "max_length": max_length,
        "device": str(where),
    }
    write_table(result, output, metadata)
    lowest = pl.from_arrow(result).sort("cosine_mean").head(5)
    for row in lowest.iter_rows(named=True):
        logger.info(
            "L%d-H%d cosine %.4f ± %.4f", row["layer"], row["head"], row["cosine_mean"], row["cosine_std"]
        )
    return result
