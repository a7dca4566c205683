"""Jobs of rules/attention.smk: attention statistics per condition, drift after fine-tuning, Figure 5.

Conditions (`headlab.conditions`): ``pretrained`` is the encoder with no fine-tuning,
``finetuned`` the checkpoint fine-tuned from the pretrained weights. Both read the same seeded
sample of at most ``max_examples`` rows of the dev Parquet (`headlab.data.glue.read_sample`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AttentionStats:
    model: str
    task: str
    condition: str
    model_entry: dict[str, Any]
    dev: Path
    max_examples: int | None
    sample_seed: int  # of the dev sample (attention.seed)
    batch_size: int
    level: str  # piece | word
    max_length: int
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    table: Path
    checkpoint: Path | None = None  # none for the pretrained condition
    seed: int | None = None  # fine-tuning seed of the checkpoint; none for the pretrained condition
    log: Path | None = None
    threads: int = 1


def attention_stats(job: AttentionStats, logger: logging.Logger) -> dict[str, Any]:
    """Rule attention_stats: per example, layer and head the statistics of
    `headlab.measure.attention_stats`; returns the table's metadata."""
    import math

    import numpy as np

    from headlab.data.glue import read_sample
    from headlab.io.parquet import write_table_chunks
    from headlab.measure.attention_stats import (
        STATS,
        STATS_SCHEMA,
        statistics_chunks,
        statistics_pass,
        tokenize_table,
    )
    from headlab.model.engine import head_count, layer_count
    from headlab.model.loading import load_for_job
    from headlab.runtime import progress_bar

    loaded = load_for_job(
        job.model, job.model_entry, job.condition, job.checkpoint, job.device, job.precision
    )
    model, tokenizer, source, spec, where = (
        loaded.model,
        loaded.tokenizer,
        loaded.source,
        loaded.spec,
        loaded.device,
    )
    table = read_sample(job.dev, job.max_examples, job.sample_seed)
    tokens = tokenize_table(tokenizer, table, job.max_length, with_words=job.level == "word")
    n = table.height
    logger.info(
        "%s %s %s: %d examples, %d layers x %d heads, level %s, device %s",
        job.model,
        job.task,
        job.condition,
        n,
        layer_count(model),
        head_count(model),
        job.level,
        where,
    )
    with progress_bar(logger, math.ceil(n / job.batch_size), f"attention {job.task}/{job.condition}") as bar:
        values = statistics_pass(
            model, tokens, job.batch_size, where, job.level, tokenizer.pad_token_id, bar.update
        )
    metadata = {
        "model": job.model,
        "model_source": source,
        "revision": spec.revision,
        "task": job.task,
        "condition": job.condition,
        "dev": str(job.dev),
        "n_examples": n,
        "max_examples": job.max_examples,
        "level": job.level,
        "sample_seed": job.sample_seed,
        "finetune_seed": job.seed,
        "max_length": job.max_length,
        "stats": list(STATS),
        "device": str(where),
    }
    examples = table["row"].to_numpy().astype(np.int64)
    chunks = statistics_chunks(job.model, job.task, job.condition, examples, values)
    write_table_chunks(chunks, STATS_SCHEMA, job.table, metadata)
    means = np.nanmean(values, axis=(0, 1, 2))  # (stats,)
    logger.info(
        "mean over examples, layers, heads: %s",
        {s: round(float(m), 4) for s, m in zip(STATS, means, strict=True)},
    )
    return metadata


@dataclass(frozen=True)
class AttentionDrift:
    model: str
    task: str
    model_entry: dict[str, Any]
    dev: Path
    checkpoint: Path  # fine-tuned from pretrained weights
    seed: int  # its fine-tuning seed
    max_examples: int | None
    sample_seed: int  # of the dev sample (attention.seed)
    batch_size: int
    max_length: int
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    table: Path
    log: Path | None = None
    threads: int = 1


def attention_drift(job: AttentionDrift, logger: logging.Logger) -> None:
    """Rule attention_drift: per head, the cosine between pretrained and fine-tuned attention maps."""
    import polars as pl

    from headlab.conditions import FINETUNED, PRETRAINED
    from headlab.data.glue import read_sample
    from headlab.io.parquet import write_table
    from headlab.measure.drift import drift_pass, drift_table
    from headlab.model.batching import encode, eval_batches
    from headlab.model.loading import load_for_job
    from headlab.runtime import progress_bar

    before = load_for_job(job.model, job.model_entry, PRETRAINED, None, job.device, job.precision)
    after = load_for_job(job.model, job.model_entry, FINETUNED, job.checkpoint, job.device, job.precision)
    pretrained, finetuned, tokenizer = before.model, after.model, after.tokenizer
    source, spec, where = before.source, before.spec, before.device
    if before.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"the checkpoint {job.checkpoint} has another vocabulary than model {job.model!r}")
    table = read_sample(job.dev, job.max_examples, job.sample_seed)
    encoded = encode(tokenizer, table, job.max_length)
    batches = eval_batches(encoded, job.batch_size, tokenizer.pad_token_id)
    logger.info("%s %s: drift over %d examples, device %s", job.model, job.task, len(encoded), where)
    with progress_bar(logger, len(batches), f"drift {job.task}") as bar:
        cosines = drift_pass(pretrained, finetuned, batches, len(encoded), where, bar.update)
    result = drift_table(job.model, job.task, cosines)
    metadata = {
        "model": job.model,
        "model_source": source,
        "revision": spec.revision,
        "task": job.task,
        "checkpoint": str(job.checkpoint),
        "dev": str(job.dev),
        "n_examples": len(encoded),
        "max_examples": job.max_examples,
        "sample_seed": job.sample_seed,
        "finetune_seed": job.seed,
        "max_length": job.max_length,
        "device": str(where),
    }
    write_table(result, job.table, metadata)
    lowest = pl.from_arrow(result).sort("cosine_mean").head(5)
    for row in lowest.iter_rows(named=True):
        logger.info(
            "L%d-H%d cosine %.4f ± %.4f", row["layer"], row["head"], row["cosine_mean"], row["cosine_std"]
        )


@dataclass(frozen=True)
class PlotDrift:
    tables: list[Path]
    pdf: Path
    log: Path | None = None
    threads: int = 1


def plot_drift(job: PlotDrift, logger: logging.Logger) -> None:
    """Rules figure5 and model_figure5: Figure 5 from the drift tables."""
    import polars as pl

    from headlab.heads import head_name
    from headlab.plots.drift import plot_drift as draw

    drift = pl.concat([pl.read_parquet(path) for path in job.tables])
    draw(drift, job.pdf)
    lowest = drift.sort("cosine_mean").head(5)
    shown = ", ".join(
        f"{r['task']} {head_name(r['layer'], r['head'])} ({r['cosine_mean']:.3f})"
        for r in lowest.iter_rows(named=True)
    )
    logger.info("plotted %d drift tables into %s; most changed heads: %s", len(job.tables), job.pdf, shown)
