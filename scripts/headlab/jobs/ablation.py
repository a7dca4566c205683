"""Jobs of rules/ablation.smk: scores with heads disabled (Sec. 4.6), and the collected tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Ablate:
    model: str
    task: str
    seed: int  # fine-tuning seed of the checkpoint
    mode: str  # uniform | zero
    checkpoint: Path  # fine-tuned from pretrained weights
    dev: Path
    max_length: int
    batch_size: int
    variants_per_pass: int
    device: str
    table: Path
    predictions: Path  # mask x example
    named_mask: tuple[str, list[str]] | None = None  # (name, heads) of ablate_mask; None: the sweep
    mask: str | None = None  # ablate_mask's wildcard: the named mask's name
    log: Path | None = None
    threads: int = 1


def ablate(job: Ablate, logger: logging.Logger) -> None:
    """Rules ablate_sweep (every head, every layer) and ablate_mask (one named mask)."""
    from headlab.analysis.scoring import ablation_table, sweep_predictions_table
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table
    from headlab.model.ablation import cached_sweep
    from headlab.model.batching import encoded_batches
    from headlab.model.engine import head_count, layer_count
    from headlab.model.loading import load_checkpoint, pick_device
    from headlab.model.masks import baseline_mask, parse_named_mask, sweep_masks
    from headlab.runtime import progress_bar

    task = get_task(job.task)
    model, tokenizer = load_checkpoint(job.checkpoint)
    layers, heads = layer_count(model), head_count(model)
    if job.named_mask is None:
        masks = sweep_masks(layers, heads)
    else:
        name, named = job.named_mask
        masks = [baseline_mask(), parse_named_mask(name, list(named), layers, heads, key="ablation.masks")]
    encoded, batches = encoded_batches(tokenizer, job.dev, job.max_length, job.batch_size)
    where = pick_device(job.device)
    logger.info(
        "%s %s mode=%s: %d masks x %d examples (%d layers x %d heads), %d variants per pass, device %s",
        job.model,
        task.name,
        job.mode,
        len(masks),
        len(encoded),
        layers,
        heads,
        job.variants_per_pass,
        where,
    )
    with progress_bar(logger, len(batches), f"ablate {task.name}/{job.mode}") as bar:
        logits = cached_sweep(
            model, batches, len(encoded), masks, job.mode, where, job.variants_per_pass, bar.update
        )
    table = ablation_table(job.model, task, job.seed, job.mode, masks, logits, encoded.labels)
    predictions = sweep_predictions_table(job.model, task, job.seed, job.mode, masks, logits, encoded.labels)
    metadata = {
        "model": job.model,
        "task": task.name,
        "seed": job.seed,
        "mode": job.mode,
        "checkpoint": str(job.checkpoint),
        "max_length": job.max_length,
        "variants_per_pass": job.variants_per_pass,
    }
    write_table(predictions, job.predictions, metadata)
    write_table(table, job.table, metadata)


@dataclass(frozen=True)
class CollectAblation:
    sweeps: list[Path]
    masks: list[Path]
    statistics: list[Path]  # sweep_statistics tables
    selections: list[Path]
    table: Path
    summary: Path
    all_statistics: Path
    all_selections: Path
    log: Path | None = None
    threads: int = 1


def collect_ablation(job: CollectAblation, logger: logging.Logger) -> None:
    """Rule collect_ablation: every sweep and mask row in one table, the per-sweep summary, and
    every sweep's statistics and best-head estimates in one table each."""
    import polars as pl

    from headlab.analysis.ablation_summary import summarise
    from headlab.io.parquet import write_table

    sources = [*job.sweeps, *job.masks]
    rows = pl.concat([pl.read_parquet(path) for path in sources]).unique(maintain_order=True)
    summary = summarise(rows)
    metadata = {"sources": [str(p) for p in sources]}
    write_table(rows.to_arrow(), job.table, metadata)
    write_table(summary.to_arrow(), job.summary, metadata)
    for sources, target in ((job.statistics, job.all_statistics), (job.selections, job.all_selections)):
        collected = pl.concat([pl.read_parquet(path) for path in sources])
        write_table(collected.to_arrow(), target, {"sources": [str(p) for p in sources]})
    for row in summary.iter_rows(named=True):
        logger.info("%s", row)


@dataclass(frozen=True)
class SweepStatistics:
    model: str
    task: str
    mode: str
    sweeps: list[Path]  # per-example predictions of the sweep, one table per seed
    masks: list[Path]  # per-example predictions of the named masks, every seed
    settings: dict[str, Any]  # statistics.* (headlab.analysis.sweep_statistics.StatisticsSettings)
    statistics: Path
    selection: Path
    log: Path | None = None
    threads: int = 1


def sweep_statistics(job: SweepStatistics, logger: logging.Logger) -> None:
    """Rule sweep_statistics: intervals, tests, BH and the best-head estimates of one sweep."""
    import polars as pl

    from headlab.analysis.sweep_statistics import StatisticsSettings
    from headlab.analysis.sweep_statistics import sweep_statistics as compute
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table

    task = get_task(job.task)
    settings = StatisticsSettings(**job.settings)
    sweeps = pl.concat([pl.read_parquet(path) for path in job.sweeps])
    named = [pl.read_parquet(path).filter(pl.col("kind") != "baseline") for path in job.masks]
    predictions = pl.concat([sweeps, *named])
    statistics, selection = compute(predictions, list(task.metrics), settings)
    metadata = {
        "model": job.model,
        "task": task.name,
        "mode": job.mode,
        "settings": vars(settings),
        "sources": [str(p) for p in [*job.sweeps, *job.masks]],
    }
    write_table(statistics.to_arrow(), job.statistics, metadata)
    write_table(selection.to_arrow(), job.selection, metadata)
    pooled = statistics.filter(pl.col("scope") == "pooled")
    for metric in task.metrics:
        rows = pooled.filter((pl.col("metric") == metric) & pl.col("significant"))
        logger.info(
            "%s %s %s %s: %d of %d masks significant after BH (alpha %.2f)",
            job.model,
            task.name,
            job.mode,
            metric,
            rows.height,
            pooled.filter((pl.col("metric") == metric) & (pl.col("kind") != "baseline")).height,
            settings.alpha,
        )
    for row in selection.iter_rows(named=True):
        logger.info("%s", row)
