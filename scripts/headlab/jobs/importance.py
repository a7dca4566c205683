"""Jobs of rules/importance.smk: head importance, attribution patching, pruning curves, replication."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class HeadImportance:
    model: str
    task: str
    seed: int
    checkpoint: Path  # fine-tuned from pretrained weights
    dev: Path  # the attribution estimates: every dev example, as the sweep
    sample: Path  # the split Michel's importance is taken over (importance.split)
    settings: dict[str, Any]  # importance.*: split, size, seed, normalize_layers
    modes: list[str]  # ablation.modes: the estimates' disabling modes
    max_length: int
    batch_size: int
    device: str
    precision: str
    attribution: Path
    importance: Path
    importance_examples: Path
    means: Path | None = None  # mode mean: the head_means table of this checkpoint
    log: Path | None = None
    threads: int = 1


def head_importance(job: HeadImportance, logger: logging.Logger) -> None:
    """Rule head_importance: Michel's importance on the sample and every head's attribution-patching
    estimate on the dev set, one forward and one backward pass per batch each."""
    from headlab.analysis.importance_tables import attribution_table, importance_tables
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table
    from headlab.model.attribution import attribution_pass, importance_of
    from headlab.model.batching import sample_batches
    from headlab.model.head_means import means_for_modes
    from headlab.model.loading import load_checkpoint, pick_device
    from headlab.runtime import progress_bar

    model, tokenizer = load_checkpoint(job.checkpoint)
    where = pick_device(job.device, job.precision)
    regression = get_task(job.task).is_regression
    means = means_for_modes(job.means, job.modes, model)
    settings = job.settings
    sample = sample_batches(
        tokenizer, job.sample, settings["size"], settings["seed"], job.max_length, job.batch_size
    )
    dev = sample_batches(tokenizer, job.dev, None, 0, job.max_length, job.batch_size)
    logger.info(
        "%s %s seed %d: importance on %d %s examples, attribution (%s) on %d dev examples",
        job.model,
        job.task,
        job.seed,
        len(sample.rows),
        settings["split"],
        ", ".join(job.modes),
        len(dev.rows),
    )
    with progress_bar(logger, len(sample.batches) + len(dev.batches), f"importance {job.task}") as bar:
        zero = attribution_pass(
            model, sample.batches, len(sample.rows), where, ["zero"], regression, None, None, bar.update
        )
        estimates = attribution_pass(
            model, dev.batches, len(dev.rows), where, list(job.modes), regression, means, None, bar.update
        )
    per_example, aggregated = importance_tables(
        job.model, job.task, job.seed, settings["split"], importance_of(zero["zero"]), sample.rows
    )
    attribution = attribution_table(job.model, job.task, job.seed, estimates, dev.rows)
    metadata = {"model": job.model, "task": job.task, "seed": job.seed, "importance": settings}
    write_table(per_example.to_arrow(), job.importance_examples, metadata)
    write_table(aggregated.to_arrow(), job.importance, metadata)
    write_table(attribution.to_arrow(), job.attribution, {**metadata, "modes": list(job.modes)})


@dataclass(frozen=True)
class PruningCurve:
    model: str
    task: str
    seed: int
    checkpoint: Path
    dev: Path
    sample: Path  # the importance order's split (importance.split)
    sweep: Path  # this seed's sweep predictions in the delta order's mode (pruning.delta_mode)
    importance_settings: dict[str, Any]  # importance.*
    settings: dict[str, Any]  # pruning.*: step, of, max_share, random_draws, seed
    max_length: int
    batch_size: int
    device: str
    precision: str
    table: Path
    predictions: Path
    log: Path | None = None
    threads: int = 1


def pruning_curve(job: PruningCurve, logger: logging.Logger) -> None:
    """Rule pruning_curve: the dev score as heads are removed, in Michel's importance order, the
    sweep's delta order (in-sample and held out) and seeded random orders."""
    import numpy as np
    import polars as pl

    from headlab.analysis.importance_tables import head_score_deltas, pruning_tables
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table
    from headlab.model import pruning_curve as curves
    from headlab.model.batching import sample_batches
    from headlab.model.engine import head_count, layer_count
    from headlab.model.loading import load_checkpoint, pick_device
    from headlab.runtime import progress_bar

    task = get_task(job.task)
    model, tokenizer = load_checkpoint(job.checkpoint)
    where = pick_device(job.device, job.precision)
    layers, heads = layer_count(model), head_count(model)
    settings, importance = job.settings, job.importance_settings
    levels = curves.pruning_levels(layers * heads, settings["step"], settings["of"], settings["max_share"])
    sample = sample_batches(
        tokenizer, job.sample, importance["size"], importance["seed"], job.max_length, job.batch_size
    )
    dev = sample_batches(tokenizer, job.dev, None, 0, job.max_length, job.batch_size)
    sweep = pl.read_parquet(job.sweep)
    deltas = head_score_deltas(sweep, layers, heads)  # (layers, heads)
    first = curves.dev_halves(len(dev.rows), int(settings["seed"]))  # (examples,) bool
    rows = np.asarray(dev.rows)
    half_deltas = [head_score_deltas(sweep, layers, heads, rows[half]) for half in (first, ~first)]
    draws = int(settings["random_draws"])
    steps = len(levels) - 1
    logger.info(
        "%s %s seed %d: %d levels up to %d of %d heads, orders importance, delta, delta_heldout, %d random",
        job.model,
        task.name,
        job.seed,
        len(levels),
        levels[-1],
        layers * heads,
        draws,
    )
    with progress_bar(logger, steps * (5 + draws), f"pruning {task.name}") as bar:
        orders = [
            (
                "importance",
                0,
                curves.importance_chooser(
                    model,
                    sample.batches,
                    where,
                    task.is_regression,
                    importance["normalize_layers"],
                    bar.update,
                ),
            ),
            ("delta", 0, curves.static_chooser(-deltas)),  # the cheapest to disable go first
            *[
                ("random", d, curves.random_chooser(layers, heads, int(settings["seed"]), d))
                for d in range(1, draws + 1)
            ],
        ]
        results = [
            (
                order,
                draw,
                curves.pruning_curve(model, dev.batches, len(dev.rows), where, levels, choose, bar.update),
            )
            for order, draw, choose in orders
        ]
        # the delta order chosen on each half, each half scored by the other's (cross-fitted)
        halves = [
            curves.pruning_curve(
                model, dev.batches, len(dev.rows), where, levels, curves.static_chooser(-d), bar.update
            )
            for d in half_deltas
        ]
        results.append(("delta_heldout", 0, curves.cross_fitted(*halves, first)))
    table, predictions = pruning_tables(
        job.model, task, job.seed, results, layers * heads, dev.labels, dev.rows
    )
    metadata = {"model": job.model, "task": task.name, "seed": job.seed, "pruning": settings}
    write_table(predictions.to_arrow(), job.predictions, metadata)
    write_table(table.to_arrow(), job.table, metadata)
    for row in table.filter(pl.col("metric") == task.primary_metric).iter_rows(named=True):
        logger.info("%s %s %.3f", row["order"], row["share_pruned"], row["value"])


@dataclass(frozen=True)
class ImportanceSummary:
    model: str
    task: str
    mode: str  # the replication's disabling mode (the first of ablation.modes)
    attribution: list[Path]  # every seed's
    importance_examples: list[Path]  # every seed's
    sweeps: list[Path]  # sweep predictions, every seed x mode
    pruning: list[Path]  # pruning predictions, every seed
    settings: dict[str, Any]  # statistics.*
    max_cost: float  # pruning.max_cost: the prunable share's allowance in metric units
    agreement: Path
    replication: Path
    pruning_summary: Path
    prunable: Path
    log: Path | None = None
    threads: int = 1


def importance_summary(job: ImportanceSummary, logger: logging.Logger) -> None:
    """Rule importance_summary: how well the screens predict the sweep, whether disabling effects
    and importance replicate across seeds, and the pruning curves' intervals."""
    import polars as pl

    from headlab.analysis.attribution_agreement import attribution_agreement
    from headlab.analysis.pruning_summary import prunable_share, pruning_summary
    from headlab.analysis.replication import replication
    from headlab.analysis.significance import StatisticsSettings
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table

    settings = StatisticsSettings.of(job.settings)
    metric = get_task(job.task).primary_metric

    def read(paths: list[Path]) -> pl.DataFrame:
        return pl.concat([pl.read_parquet(p) for p in paths])

    sweeps, importance = read(job.sweeps), read(job.importance_examples)
    agreement = attribution_agreement(
        read(job.attribution), sweeps, importance, metric, int(job.settings["top_k"]), settings
    )
    replicated = replication(sweeps.filter(pl.col("mode") == job.mode), importance, settings)
    summary = pruning_summary(read(job.pruning), metric, settings)
    prunable = prunable_share(summary, job.max_cost)
    metadata = {"model": job.model, "task": job.task, "settings": job.settings}
    write_table(agreement.to_arrow(), job.agreement, metadata)
    write_table(replicated.to_arrow(), job.replication, {**metadata, "mode": job.mode})
    write_table(summary.to_arrow(), job.pruning_summary, metadata)
    write_table(prunable.to_arrow(), job.prunable, {**metadata, "max_cost": job.max_cost})
    for frame in (
        agreement.filter(pl.col("scope") == "pooled"),
        replicated.filter(pl.col("scope") == "pooled"),
        prunable,
    ):
        for row in frame.iter_rows(named=True):
            logger.info("%s", row)


@dataclass(frozen=True)
class ImportanceFigures:
    importance: list[Path]  # every model x task x seed
    attribution: list[Path]
    sweeps: list[Path]
    agreement: list[Path]  # every model x task
    replication: list[Path]
    pruning_summary: list[Path]
    prunable: list[Path]
    importance_figure: Path
    attribution_figure: Path
    pruning_figure: Path
    replication_figure: Path
    all_importance: Path  # the collected tables
    all_agreement: Path
    all_replication: Path
    all_pruning: Path
    all_prunable: Path
    log: Path | None = None
    threads: int = 1


def importance_figures(job: ImportanceFigures, logger: logging.Logger) -> None:
    """Rule importance_figures: the collected tables and the four figures."""
    import polars as pl

    from headlab.io.parquet import write_table
    from headlab.plots.attribution import plot_attribution
    from headlab.plots.importance import plot_importance
    from headlab.plots.pruning import plot_pruning
    from headlab.plots.replication import plot_replication

    def read(paths: list[Path]) -> pl.DataFrame:
        return pl.concat([pl.read_parquet(p) for p in paths])

    importance, attribution, sweeps = read(job.importance), read(job.attribution), read(job.sweeps)
    agreement, replicated = read(job.agreement), read(job.replication)
    summary = read(job.pruning_summary)
    collected = {
        job.all_importance: (importance, job.importance),
        job.all_agreement: (agreement, job.agreement),
        job.all_replication: (replicated, job.replication),
        job.all_pruning: (summary, job.pruning_summary),
        job.all_prunable: (read(job.prunable), job.prunable),
    }
    for path, (table, sources) in collected.items():
        write_table(table.to_arrow(), path, {"sources": [str(p) for p in sources]})
    plot_importance(importance, job.importance_figure, attribution)
    plot_attribution(attribution, sweeps, agreement, job.attribution_figure)
    plot_pruning(summary, job.pruning_figure)
    plot_replication(sweeps, replicated, job.replication_figure)
    logger.info("figures: %s", ", ".join(str(p) for p in (job.importance_figure, job.pruning_figure)))
