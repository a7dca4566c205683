"""Jobs of rules/patterns.smk (Sec. 4.1): export maps, train the CNN, classify maps and heads, Figures 1-2.

* `export_maps` (rule export_maps): a seeded sample of the fine-tuned model's maps of one
  task, downsampled, as a Parquet table, one PNG per map, and their statistics;
* `classify_maps` (rule classify_maps): a class per exported map, by the rules (on the maps'
  statistics) or by the CNN (on the downsampled maps) when one is given;
* `train_pattern_cnn` (rule train_pattern_cnn): the CNN from the labelled maps, its scores on a
  held-out split, its state_dict;
* `pattern_classes` (rule pattern_classes): a class per (example, layer, head) of the attention
  statistics table of rule attention_stats: the rules on the table itself, or, with a CNN, the
  CNN on every head map of the same examples (the model condition is run again);
* `figure1`, `figure2`: the figures.

`example` is the dev Parquet's ``row`` everywhere, as in rule attention_stats.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ExportMaps:
    model: str
    task: str
    checkpoint: Path
    seed: int  # its fine-tuning seed
    dev: Path
    maps_per_task: int
    size: int
    sample_seed: int  # of the map sample (patterns.seed)
    max_length: int
    batch_size: int
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    maps: Path
    stats: Path
    png: Path  # the folder of one PNG per map
    log: Path | None = None
    threads: int = 1


def export_maps(job: ExportMaps, logger: logging.Logger) -> None:
    """Rule export_maps: the sampled maps, their PNGs and their statistics."""
    import polars as pl

    from headlab.conditions import FINETUNED
    from headlab.io.atomic import atomic_paths
    from headlab.io.parquet import write_table
    from headlab.io.png import write_png
    from headlab.measure.maps import export_maps as sample_and_export
    from headlab.measure.maps import map_array, sample_maps
    from headlab.model.engine import head_count, layer_count
    from headlab.model.loading import load_checkpoint, pick_device
    from headlab.runtime import progress_bar

    model, tokenizer = load_checkpoint(job.checkpoint)
    dev = pl.read_parquet(job.dev)
    where = pick_device(job.device, job.precision)
    layers, heads = layer_count(model), head_count(model)
    logger.info(
        "%s %s seed %d: %d maps sampled (sample seed %d) of %d dev examples x %d layers x %d heads, "
        "%dx%d, device %s",
        job.model,
        job.task,
        job.seed,
        job.maps_per_task,
        job.sample_seed,
        dev.height,
        layers,
        heads,
        job.size,
        job.size,
        where,
    )
    keys = sample_maps(dev.height, layers, heads, job.maps_per_task, job.sample_seed, job.task)
    n_batches = -(-len({k.example for k in keys}) // job.batch_size)  # batches of sampled examples
    with progress_bar(logger, n_batches, f"export maps {job.task}") as bar:
        exported = sample_and_export(
            model,
            tokenizer,
            dev,
            job.model,
            job.task,
            job.maps_per_task,
            job.size,
            job.sample_seed,
            job.max_length,
            job.batch_size,
            where,
            FINETUNED,  # the paper's maps come from the fine-tuned models
            bar.update,
            finetune_seed=job.seed,
        )
    metadata = {
        "model": job.model,
        "task": job.task,
        "checkpoint": str(job.checkpoint),
        "sample_seed": job.sample_seed,
        "finetune_seed": job.seed,
        "count": job.maps_per_task,
        "size": job.size,
        "max_length": job.max_length,
        "n_dev": dev.height,
    }
    with atomic_paths(job.png, folders=True) as (folder,):
        names = exported.maps["map_id"].to_list()
        for name, values in zip(names, map_array(exported.maps), strict=True):  # values (size, size)
            write_png(folder / f"{name}.png", values)
    write_table(exported.stats.to_arrow(), job.stats, metadata)
    write_table(exported.maps.to_arrow(), job.maps, metadata)
    logger.info("%d maps of %d examples written", exported.maps.height, exported.maps["example"].n_unique())


@dataclass(frozen=True)
class ClassifyMaps:
    model: str
    task: str
    maps: Path
    stats: Path
    thresholds: dict[str, Any]
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    table: Path
    seed: int  # fine-tuning seed of the maps' model
    cnn: Path | None = None  # the CNN when patterns.labels is set; else the rules classify
    log: Path | None = None
    threads: int = 1


def classify_maps(job: ClassifyMaps, logger: logging.Logger) -> None:
    """Rule classify_maps: a class per exported map, by the rules or by the CNN."""
    import polars as pl

    from headlab.analysis.patterns import Thresholds
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table
    from headlab.measure.pattern_classes import classify_exported_maps

    task = get_task(job.task)
    rules = Thresholds.from_config(job.thresholds)
    maps = pl.read_parquet(job.maps)
    cnn = None
    where = "cpu"
    if job.cnn is not None:
        from headlab.measure.pattern_cnn import load_cnn
        from headlab.model.loading import pick_device

        where = pick_device(job.device, job.precision)
        cnn, size = load_cnn(job.cnn, where)
        if maps.height and int(maps["size"][0]) != size:
            raise ValueError(f"{job.maps}: maps are {maps['size'][0]}x, the CNN {job.cnn} expects {size}x")
    table = classify_exported_maps(maps, pl.read_parquet(job.stats), rules, task.is_pair, cnn, where)
    classifier = "rules" if job.cnn is None else "cnn"
    counts = dict(table.group_by("pattern").len().iter_rows())
    logger.info("%s %s: %d maps by %s: %s", job.model, task.name, table.height, classifier, counts)
    metadata = {"model": job.model, "task": task.name, "finetune_seed": job.seed, "classifier": classifier}
    write_table(table.to_arrow(), job.table, metadata | {"thresholds": vars(rules), "cnn": str(job.cnn)})


@dataclass(frozen=True)
class TrainPatternCnn:
    model: str
    maps: list[Path]
    labels: Path
    settings: dict[str, Any]  # patterns.cnn.*
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    cnn: Path  # the output: the trained network
    metrics: Path
    predictions: Path
    log: Path | None = None
    threads: int = 1


def train_pattern_cnn(job: TrainPatternCnn, logger: logging.Logger) -> None:
    """Rule train_pattern_cnn: the CNN from the labelled maps, its scores on a held-out split."""
    import polars as pl

    from headlab.data.labels import read_labels
    from headlab.io.parquet import write_table
    from headlab.io.torch_state import write_torch_state
    from headlab.measure.maps import map_array
    from headlab.measure.pattern_classes import labelled_maps
    from headlab.measure.pattern_cnn import CnnSettings, cnn_record, cnn_reports, train_cnn
    from headlab.model.loading import pick_device

    settings = CnnSettings.from_config(job.settings)
    maps = pl.concat([pl.read_parquet(p) for p in job.maps])
    data = labelled_maps(maps, read_labels(job.labels))
    if data.height == 0:
        raise ValueError(
            f"patterns.labels: {job.labels} labels none of the {maps.height} exported maps of model "
            f"{job.model}; label them with python -m headlab.annotate"
        )
    counts = dict(data.group_by("label").len().sort("label").iter_rows())
    logger.info(
        "%s: %d labelled maps (%s) of %d exported; %s", job.model, data.height, counts, maps.height, settings
    )
    where = pick_device(job.device, job.precision)
    arrays = map_array(data)  # (maps, size, size)

    def on_epoch(epoch: int, loss: float) -> None:
        logger.info("epoch %d: training loss %.4f", epoch, loss)

    trained = train_cnn(arrays, data["label"].to_list(), settings, where, on_epoch)
    metrics, predictions = cnn_reports(job.model, trained, data, arrays, where)
    shown = metrics.filter(pl.col("metric").is_in(["accuracy", "f1_macro", "n_maps"]))
    for row in shown.iter_rows(named=True):
        logger.info("%s %s: %.3f", row["split"], row["metric"], row["value"])
    metadata = {
        "model": job.model,
        "labels": str(job.labels),
        "settings": vars(settings),
        "n_labelled": data.height,
        "size": trained.size,
        "losses": trained.losses,
    }
    write_torch_state(cnn_record(trained.model, trained.size, settings.channels), job.cnn)
    write_table(predictions.to_arrow(), job.predictions, metadata)
    write_table(metrics.to_arrow(), job.metrics, metadata)


@dataclass(frozen=True)
class PatternClasses:
    model: str
    task: str
    condition: str
    model_entry: dict[str, Any]
    stats: Path
    thresholds: dict[str, Any]
    max_length: int
    batch_size: int
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    table: Path
    cnn: Path | None = None  # with a CNN: the dev table and the condition's checkpoint too
    dev: Path | None = None
    checkpoint: Path | None = None
    seed: int | None = None  # fine-tuning seed of the condition; none for the pretrained encoder
    log: Path | None = None
    threads: int = 1


def pattern_classes(job: PatternClasses, logger: logging.Logger) -> None:
    """Rule pattern_classes: the rules on the statistics table, or the CNN on every map of its examples."""
    import polars as pl

    from headlab.analysis.patterns import Thresholds, classify_statistics
    from headlab.data.tasks import get_task
    from headlab.io.parquet import write_table

    task = get_task(job.task)
    stats = pl.read_parquet(job.stats)
    from headlab.measure.pattern_classes import check_stats_keys

    check_stats_keys(stats, job.model, task.name, job.condition, job.stats)
    rules = Thresholds.from_config(job.thresholds)
    metadata: dict[str, Any] = {
        "model": job.model,
        "task": task.name,
        "condition": job.condition,
        "finetune_seed": job.seed,
    }
    if job.cnn is None:
        table = classify_statistics(stats, rules, paired=task.is_pair)
        metadata |= {"classifier": "rules", "thresholds": vars(rules)}
    else:
        table = _cnn_classes(job, stats, logger)
        metadata |= {"classifier": "cnn", "cnn": str(job.cnn), "checkpoint": str(job.checkpoint)}
    counts = dict(table.group_by("pattern").len().sort("pattern").iter_rows())
    logger.info(
        "%s %s %s: %d head maps by %s: %s",
        job.model,
        task.name,
        job.condition,
        table.height,
        metadata["classifier"],
        counts,
    )
    write_table(table.to_arrow(), job.table, metadata)


def _cnn_classes(job: PatternClasses, stats: Any, logger: logging.Logger) -> Any:
    """The CNN's class of every head map of the statistics table's examples (the condition is run again)."""
    import polars as pl

    from headlab.measure.pattern_classes import cnn_classes_table, cnn_head_probabilities
    from headlab.measure.pattern_cnn import load_cnn
    from headlab.model.loading import load_for_job
    from headlab.runtime import progress_bar

    if job.dev is None or job.cnn is None:
        raise ValueError("the CNN classifier needs the dev table the statistics were computed on")
    examples = sorted(int(e) for e in stats["example"].unique().to_list())
    dev = pl.read_parquet(job.dev)
    outside = sorted(set(examples) - set(dev["row"].to_list()))
    if outside:
        raise ValueError(f"{job.stats}: examples {outside[:5]} are not rows of {job.dev}")
    loaded = load_for_job(
        job.model, job.model_entry, job.condition, job.checkpoint, job.device, job.precision
    )
    model, tokenizer, where = loaded.model, loaded.tokenizer, loaded.device
    cnn, size = load_cnn(job.cnn, where)
    with progress_bar(
        logger, -(-len(examples) // job.batch_size), f"patterns {job.task}/{job.condition}"
    ) as bar:
        probs = cnn_head_probabilities(
            model, tokenizer, cnn, size, dev, examples, job.max_length, job.batch_size, where, bar.update
        )
    return cnn_classes_table(probs, examples, job.model, job.task, job.condition)


@dataclass(frozen=True)
class Figure1:
    maps: list[Path]
    classes: list[Path]
    title: str
    pdf: Path
    log: Path | None = None
    threads: int = 1


def figure1(job: Figure1, logger: logging.Logger) -> None:
    """Rule figure1: one typical attention map per pattern class."""
    import polars as pl

    from headlab.analysis.pattern_summary import classifier_names, typical_maps
    from headlab.plots.patterns import plot_figure1

    maps = pl.concat([pl.read_parquet(p) for p in job.maps])
    classes = pl.concat([pl.read_parquet(p) for p in job.classes])
    plot_figure1(typical_maps(maps, classes), classifier_names(classes), job.pdf, title=job.title)
    logger.info("plotted %d maps (%d classified) into %s", maps.height, classes.height, job.pdf)


@dataclass(frozen=True)
class Figure2:
    tables: list[Path]
    title: str
    pdf: Path
    log: Path | None = None
    threads: int = 1


def figure2(job: Figure2, logger: logging.Logger) -> None:
    """Rule figure2: the share of each pattern class per task."""
    import polars as pl

    from headlab.analysis.pattern_summary import class_shares
    from headlab.plots.patterns import plot_figure2

    shares = class_shares(pl.concat([pl.read_parquet(p) for p in job.tables]))
    plot_figure2(shares, job.pdf, title=job.title)
    logger.info(
        "plotted %s into %s: maps per task %s, per class (rows) and task (columns) %s",
        [str(p) for p in job.tables],
        job.pdf,
        dict(zip(shares.tasks, shares.n_maps, strict=True)),
        shares.counts.tolist(),
    )
