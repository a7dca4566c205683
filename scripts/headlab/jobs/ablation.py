"""Jobs of rules/ablation.smk: scores with heads disabled (Sec. 4.6), and the collected tables."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headlab.analysis.significance import StatisticsSettings


@dataclass(frozen=True)
class Ablate:
    model: str
    task: str
    seed: int  # fine-tuning seed of the checkpoint
    mode: str  # uniform | zero | mean (headlab.model.engine)
    checkpoint: Path  # fine-tuned from pretrained weights
    dev: Path
    max_length: int
    batch_size: int
    variants_per_pass: int
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    table: Path
    predictions: Path  # mask x example
    named_mask: tuple[str, list[str]] | None = None  # (name, heads) of ablate_mask; None: the sweep
    means: Path | None = None  # mode "mean": the head_means table of this checkpoint
    framenet: Path | None = None  # framenet_ablation: the model's framenet.parquet (its top heads)
    random_sets: dict[str, Any] | None = None  # framenet_ablation: {count, seed} of the random head sets
    log: Path | None = None
    threads: int = 1


def ablate(job: Ablate, logger: logging.Logger) -> None:
    """Rules ablate_sweep (every head, every layer) and ablate_mask (one named mask)."""
    from headlab.analysis.scoring import ablation_table, sweep_predictions_table
    from headlab.data.glue_table import example_keys
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table
    from headlab.model.ablation import cached_sweep
    from headlab.model.batching import encoded_batches
    from headlab.model.engine import head_count, layer_count
    from headlab.model.loading import load_checkpoint, pick_device
    from headlab.model.masks import baseline_mask, framenet_masks, parse_named_mask, sweep_masks
    from headlab.runtime import progress_bar

    task = get_task(job.task)
    model, tokenizer = load_checkpoint(job.checkpoint)
    layers, heads = layer_count(model), head_count(model)
    if job.framenet is not None:
        import polars as pl

        from headlab.heads import marked_heads

        if job.random_sets is None:
            raise ValueError("framenet_ablation needs framenet.random_sets (count, seed)")
        top = marked_heads(pl.read_parquet(job.framenet))
        sets = job.random_sets
        masks = framenet_masks(top, layers, heads, int(sets["count"]), int(sets["seed"]))
    elif job.named_mask is None:
        masks = sweep_masks(layers, heads)
    else:
        name, named = job.named_mask
        masks = [baseline_mask(), parse_named_mask(name, list(named), layers, heads, key="ablation.masks")]
    encoded, batches = encoded_batches(tokenizer, job.dev, job.max_length, job.batch_size)
    where = pick_device(job.device, job.precision)
    means = None
    if job.mode == "mean":
        if job.means is None:
            raise ValueError("mode 'mean' needs the head_means table of the checkpoint (input means)")
        import pyarrow.parquet as pq

        from headlab.model.head_means import read_means

        means = read_means(pq.read_table(job.means), model)  # (layers, heads, head_dim)
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
            model, batches, len(encoded), masks, job.mode, where, job.variants_per_pass, bar.update, means
        )
    table = ablation_table(job.model, task, job.seed, job.mode, masks, logits, encoded.labels)
    examples = example_keys(job.dev)
    predictions = sweep_predictions_table(
        job.model, task, job.seed, job.mode, masks, logits, encoded.labels, examples
    )
    metadata = {
        "model": job.model,
        "task": task.name,
        "seed": job.seed,
        "mode": job.mode,
        "checkpoint": str(job.checkpoint),
        "max_length": job.max_length,
        "variants_per_pass": job.variants_per_pass,
        "precision": job.precision,
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
    statistics = pl.concat([pl.read_parquet(path) for path in job.statistics])
    summary = summarise(rows, statistics)
    metadata = {"sources": [str(p) for p in sources]}
    write_table(rows.to_arrow(), job.table, metadata)
    write_table(summary.to_arrow(), job.summary, metadata)
    write_table(statistics.to_arrow(), job.all_statistics, {"sources": [str(p) for p in job.statistics]})
    selections = pl.concat([pl.read_parquet(path) for path in job.selections])
    write_table(selections.to_arrow(), job.all_selections, {"sources": [str(p) for p in job.selections]})
    for row in summary.iter_rows(named=True):
        logger.info("%s", row)


@dataclass(frozen=True)
class HeadMeans:
    model: str
    task: str
    seed: int
    checkpoint: Path  # fine-tuned from pretrained weights
    reference: Path  # the split the means are taken over
    settings: dict[str, Any]  # ablation.mean_reference: split, size, seed
    max_length: int
    batch_size: int
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    table: Path
    log: Path | None = None
    threads: int = 1


def head_means(job: HeadMeans, logger: logging.Logger) -> None:
    """Rule head_means: each head's mean context vector over the reference sample (mode mean)."""
    from headlab.data.glue import read_sample
    from headlab.io.parquet import write_table
    from headlab.model.batching import encode, eval_batches
    from headlab.model.head_means import means_table, reference_means
    from headlab.model.loading import load_checkpoint, pick_device
    from headlab.runtime import progress_bar

    model, tokenizer = load_checkpoint(job.checkpoint)
    sample = read_sample(job.reference, job.settings["size"], job.settings["seed"])
    encoded = encode(tokenizer, sample, job.max_length)
    batches = eval_batches(encoded, job.batch_size, tokenizer.pad_token_id)
    where = pick_device(job.device, job.precision)
    logger.info(
        "%s %s seed %d: means over %d %s examples",
        job.model,
        job.task,
        job.seed,
        len(encoded),
        job.settings["split"],
    )
    with progress_bar(logger, len(batches), f"head means {job.task}") as bar:
        means, tokens = reference_means(model, batches, where, bar.update)
    table = means_table(job.model, job.task, job.seed, means, tokens, len(encoded))
    metadata = {
        "model": job.model,
        "task": job.task,
        "seed": job.seed,
        "reference": job.settings,
        "n_tokens": tokens[0],
    }
    write_table(table, job.table, metadata)


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


def statistics_settings(config: dict[str, Any]) -> StatisticsSettings:
    """The statistics.* keys the tests and intervals read (top_k is mode agreement's)."""
    from headlab.analysis.significance import StatisticsSettings

    return StatisticsSettings.of(config)


def sweep_statistics(job: SweepStatistics, logger: logging.Logger) -> None:
    """Rule sweep_statistics: intervals, tests, BH and the best-head estimates of one sweep."""
    import polars as pl

    from headlab.analysis.sweep_statistics import sweep_statistics as compute
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table

    task = get_task(job.task)
    settings = statistics_settings(job.settings)
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


@dataclass(frozen=True)
class FramenetEffect:
    model: str
    predictions: list[Path]  # framenet_ablation's, every task x seed x mode
    framenet: Path  # the model's framenet.parquet (which heads are the FrameNet heads)
    settings: dict[str, Any]  # statistics.*
    table: Path
    log: Path | None = None
    threads: int = 1


def framenet_effect(job: FramenetEffect, logger: logging.Logger) -> None:
    """Rule framenet_effect: the Sec. 5 experiment's deltas, intervals and random-head null."""
    import polars as pl

    from headlab.analysis.framenet_effect import framenet_effect as compute
    from headlab.heads import head_names, marked_heads
    from headlab.io.parquet import write_table

    heads = marked_heads(pl.read_parquet(job.framenet))
    predictions = pl.concat([pl.read_parquet(path) for path in job.predictions])
    table = compute(predictions, heads, statistics_settings(job.settings))
    metadata = {"model": job.model, "heads": head_names(heads), "settings": job.settings}
    write_table(table.to_arrow(), job.table, metadata)
    for row in table.iter_rows(named=True):
        logger.info("%s", row)


@dataclass(frozen=True)
class ModeAgreement:
    model: str
    task: str
    sweeps: list[Path]  # sweep predictions, every seed x mode
    top_k: int
    settings: dict[str, Any]  # statistics.*
    table: Path
    log: Path | None = None
    threads: int = 1


def mode_agreement(job: ModeAgreement, logger: logging.Logger) -> None:
    """Rule mode_agreement: rank agreement of the per-head deltas between disabling modes."""
    import polars as pl

    from headlab.analysis.mode_agreement import mode_agreement as compute
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table

    predictions = pl.concat([pl.read_parquet(path) for path in job.sweeps])
    by_mode = {mode: group for (mode,), group in predictions.group_by("mode", maintain_order=True)}
    settings = job.settings
    metric = get_task(job.task).primary_metric
    table = compute(
        by_mode,
        metric,
        job.top_k,
        int(settings["resamples"]),
        float(settings["alpha"]),
        int(settings["seed"]),
    )
    write_table(table.to_arrow(), job.table, {"model": job.model, "task": job.task, "settings": settings})
    for row in table.filter(pl.col("scope") == "pooled").iter_rows(named=True):
        logger.info("%s", row)
