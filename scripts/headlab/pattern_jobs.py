"""One function per pattern-class job (Sec. 4.1); the Snakemake scripts only unpack and call these.

* `export_maps_job` (rule export_maps): a seeded sample of the fine-tuned model's maps of one
  task, downsampled, as a Parquet table, one PNG per map, and their statistics;
* `classify_maps_job` (rule classify_maps): a class per exported map, by the rules (on the maps'
  statistics) or by the CNN (on the downsampled maps) when one is given;
* `train_pattern_cnn_job` (rule train_pattern_cnn): the CNN from the labelled maps, its scores
  on a held-out split, its state_dict;
* `pattern_classes_job` (rule pattern_classes): a class per (example, layer, head) of the
  attention statistics table of rule attention_stats: the rules on the table itself, or, with a
  CNN, the CNN on every head map of the same examples (the model variant is run again).

`example` is the dev Parquet's ``row`` everywhere, as in rule attention_stats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from headlab.annotate import final_labels, read_labels
from headlab.attention_jobs import load_variant
from headlab.batching import encode, eval_batches, restore_order
from headlab.engine import Controls, head_count, layer_count
from headlab.inference import inference_session
from headlab.models import load_checkpoint, pick_device
from headlab.parquet_io import write_table
from headlab.pattern_cnn import (
    PREDICTIONS_SCHEMA,
    CnnSettings,
    HeadMapClassifier,
    PatternCNN,
    class_indices,
    class_probabilities,
    load_cnn,
    metrics_table,
    save_cnn,
    train_cnn,
)
from headlab.patterns import (
    CLASSES_SCHEMA,
    MAP_CLASSES_SCHEMA,
    PATTERNS,
    ExportedMaps,
    Thresholds,
    classify_statistics,
    export_maps,
    map_array,
    sample_maps,
    variant_checkpoint_init,
    write_map_pngs,
)
from headlab.tasks import get_task

EXPORT_VARIANT = "finetuned"  # the paper's maps come from the fine-tuned models


# ---------------------------------------------------------------------------------------------
# export_maps
# ---------------------------------------------------------------------------------------------


def export_maps_job(
    model_alias: str,
    task_name: str,
    checkpoint: str | Path,
    dev_path: str | Path,
    count: int,
    size: int,
    seed: int,
    max_length: int,
    batch_size: int,
    device: str,
    maps_output: str | Path,
    png_dir: str | Path,
    stats_output: str | Path,
    logger: logging.Logger,
    progress: Any = None,
) -> ExportedMaps:
    task = get_task(task_name)
    model, tokenizer = load_checkpoint(checkpoint)
    dev = pl.read_parquet(dev_path)
    where = pick_device(device)
    logger.info(
        "%s %s: %d maps sampled (seed %d) from %d dev examples x %d layers x %d heads, %dx%d, device %s",
        model_alias,
        task.name,
        count,
        seed,
        dev.height,
        layer_count(model),
        head_count(model),
        size,
        size,
        where,
    )
    if progress is not None:
        keys = sample_maps(dev.height, layer_count(model), head_count(model), count, seed, task.name)
        progress.reset(total=-(-len({k.example for k in keys}) // batch_size))  # batches of sampled examples
    on_batch = progress.update if progress is not None else None
    exported = export_maps(
        model,
        tokenizer,
        dev,
        model_alias,
        task.name,
        count,
        size,
        seed,
        max_length,
        batch_size,
        where,
        EXPORT_VARIANT,
        on_batch,
    )
    metadata = {
        "model": model_alias,
        "task": task.name,
        "checkpoint": str(checkpoint),
        "seed": seed,
        "count": count,
        "size": size,
        "max_length": max_length,
        "n_dev": dev.height,
    }
    write_map_pngs(exported.maps, png_dir)
    write_table(exported.stats.to_arrow(), stats_output, metadata)
    write_table(exported.maps.to_arrow(), maps_output, metadata)
    logger.info("%d maps of %d examples written", exported.maps.height, exported.maps["example"].n_unique())
    return exported


# ---------------------------------------------------------------------------------------------
# classify_maps
# ---------------------------------------------------------------------------------------------


def classify_exported_maps(
    maps: pl.DataFrame,
    stats: pl.DataFrame,
    thresholds: Thresholds,
    paired: bool,
    cnn: PatternCNN | None = None,
    device: torch.device | str = "cpu",
) -> pl.DataFrame:
    """A class per exported map (`MAP_CLASSES_SCHEMA`): the CNN's when given, else the rules'."""
    keys = ["model", "task", "example", "layer", "head"]
    if cnn is not None:
        probs = class_probabilities(cnn, map_array(maps), device=device)  # (maps, classes)
        best = probs.argmax(axis=1)
        labelled = maps.select("map_id", *keys).with_columns(
            pattern=pl.Series([PATTERNS[i] for i in best], dtype=pl.String),
            classifier=pl.lit("cnn"),
            confidence=pl.Series(probs[np.arange(len(best)), best].astype(np.float64)),
        )
    else:
        classes = classify_statistics(stats, thresholds, paired=paired)
        labelled = maps.select("map_id", *keys).join(
            classes.select(*keys, "pattern", "classifier", "confidence"), on=keys, how="left"
        )
        missing = labelled.filter(pl.col("pattern").is_null())
        if missing.height:
            raise ValueError(f"no statistics for map {missing['map_id'][0]!r}")
    return labelled.select(list(MAP_CLASSES_SCHEMA)).cast(MAP_CLASSES_SCHEMA).sort("map_id")


def classify_maps_job(
    model_alias: str,
    task_name: str,
    maps_path: str | Path,
    stats_path: str | Path,
    thresholds: Mapping[str, Any],
    cnn_path: str | Path | None,
    device: str,
    output: str | Path,
    logger: logging.Logger,
) -> pl.DataFrame:
    task = get_task(task_name)
    rules = Thresholds.from_config(thresholds)
    where = pick_device(device)
    maps = pl.read_parquet(maps_path)
    cnn = None
    if cnn_path is not None:
        cnn, size = load_cnn(cnn_path, where)
        if maps.height and int(maps["size"][0]) != size:
            raise ValueError(f"{maps_path}: maps are {maps['size'][0]}x, the CNN {cnn_path} expects {size}x")
    table = classify_exported_maps(maps, pl.read_parquet(stats_path), rules, task.is_pair, cnn, where)
    counts = dict(table.group_by("pattern").len().iter_rows())
    logger.info(
        "%s %s: %d maps by %s: %s", model_alias, task.name, table.height, _classifier(cnn_path), counts
    )
    metadata = {"model": model_alias, "task": task.name, "classifier": _classifier(cnn_path)}
    write_table(table.to_arrow(), output, metadata | {"thresholds": vars(rules), "cnn": str(cnn_path)})
    return table


def _classifier(cnn_path: str | Path | None) -> str:
    return "rules" if cnn_path is None else "cnn"


# ---------------------------------------------------------------------------------------------
# train_pattern_cnn
# ---------------------------------------------------------------------------------------------


def labelled_maps(maps: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """The maps that carry a label (the latest answer per map), in map_id order, with ``label``."""
    return maps.join(final_labels(labels), on="map_id", how="inner").sort("map_id")


def train_pattern_cnn_job(
    model_alias: str,
    maps_paths: Sequence[str | Path],
    labels_path: str | Path,
    settings: Mapping[str, Any],
    device: str,
    model_output: str | Path,
    metrics_output: str | Path,
    predictions_output: str | Path,
    logger: logging.Logger,
) -> pl.DataFrame:
    cnn_settings = CnnSettings.from_config(settings)
    maps = pl.concat([pl.read_parquet(p) for p in maps_paths])
    labels = read_labels(labels_path)
    data = labelled_maps(maps, labels)
    if data.height == 0:
        raise ValueError(
            f"patterns.labels: {labels_path} labels none of the {maps.height} exported maps of model "
            f"{model_alias}; label them with python -m headlab.annotate"
        )
    counts = dict(data.group_by("label").len().sort("label").iter_rows())
    logger.info(
        "%s: %d labelled maps (%s) of %d exported; %s",
        model_alias,
        data.height,
        counts,
        maps.height,
        cnn_settings,
    )
    where = pick_device(device)
    arrays = map_array(data)  # (maps, size, size)

    def on_epoch(epoch: int, loss: float) -> None:
        logger.info("epoch %d: training loss %.4f", epoch, loss)

    trained = train_cnn(arrays, data["label"].to_list(), cnn_settings, where, on_epoch)
    gold = class_indices(data["label"].to_list())
    probs = class_probabilities(trained.model, arrays, device=where)  # (maps, classes)
    predicted = probs.argmax(axis=1)
    split = np.full(data.height, "train", dtype=object)
    split[trained.test_idx] = "test"
    tables = [
        metrics_table(model_alias, name, gold[idx], predicted[idx])
        for name, idx in (("train", trained.train_idx), ("test", trained.test_idx))
    ]
    metrics = pl.concat(tables)
    predictions = pl.DataFrame(
        {
            "map_id": data["map_id"],
            "split": split.tolist(),
            "label": data["label"],
            "predicted": [PATTERNS[i] for i in predicted],
            "confidence": probs[np.arange(data.height), predicted].astype(np.float64),
        },
        schema=PREDICTIONS_SCHEMA,
    )
    for row in metrics.filter(pl.col("metric").is_in(["accuracy", "f1_macro", "n_maps"])).iter_rows(
        named=True
    ):
        logger.info("%s %s: %.3f", row["split"], row["metric"], row["value"])
    metadata = {
        "model": model_alias,
        "labels": str(labels_path),
        "settings": vars(cnn_settings),
        "n_labelled": data.height,
        "size": trained.size,
        "losses": trained.losses,
    }
    save_cnn(trained.model, trained.size, cnn_settings.channels, model_output)
    write_table(predictions.to_arrow(), predictions_output, metadata)
    write_table(metrics.to_arrow(), metrics_output, metadata)
    return metrics


# ---------------------------------------------------------------------------------------------
# pattern_classes
# ---------------------------------------------------------------------------------------------


def cnn_head_probabilities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    cnn: PatternCNN,
    size: int,
    dev: pl.DataFrame,
    examples: Sequence[int],
    max_length: int,
    batch_size: int,
    device: torch.device | str,
    on_batch: Callable[[int], object] | None = None,
) -> np.ndarray:
    """CNN class probabilities (examples, layers, heads, classes) of every head map of the dev
    rows whose ``row`` is in `examples` (in the order of `examples`)."""
    where = torch.device(device)
    position = {row: i for i, row in enumerate(dev["row"].to_list())}
    missing = [e for e in examples if e not in position]
    if missing:
        raise ValueError(f"examples {missing[:5]} are not rows of the dev table")
    encoded = encode(tokenizer, dev[[position[e] for e in examples]], max_length)
    observer = HeadMapClassifier(cnn.to(where).eval(), size, layer_count(model), head_count(model))
    controls = Controls(observers=[observer])
    batches = eval_batches(encoded, batch_size, tokenizer.pad_token_id)
    chunks = []
    with inference_session(model, where):
        for batch in batches:
            observer.start(len(batch.rows))
            model(**batch.model_inputs(where), headlab=controls)
            chunks.append(observer.probs.numpy())  # (batch, layers, heads, classes)
            if on_batch is not None:
                on_batch(1)
    return restore_order(chunks, [b.rows for b in batches], len(examples))


def cnn_classes_table(
    probs: np.ndarray, examples: Sequence[int], model_alias: str, task: str, variant: str
) -> pl.DataFrame:
    """`CLASSES_SCHEMA` rows from (examples, layers, heads, classes) probabilities."""
    _, n_layers, n_heads, _ = probs.shape
    best = probs.argmax(axis=-1)  # (examples, layers, heads)
    example, layer, head = np.meshgrid(
        np.asarray(examples, dtype=np.int64),
        np.arange(1, n_layers + 1),
        np.arange(1, n_heads + 1),
        indexing="ij",
    )  # each (examples, layers, heads)
    table = pl.DataFrame(
        {
            "model": model_alias,
            "task": task,
            "variant": variant,
            "example": example.ravel(),
            "layer": layer.ravel(),
            "head": head.ravel(),
            "pattern": np.asarray(PATTERNS, dtype=object)[best.ravel()].tolist(),
            "classifier": "cnn",
            "confidence": np.take_along_axis(probs, best[..., None], axis=-1).ravel().astype(np.float64),
        }
    )
    return table.cast(CLASSES_SCHEMA).sort("model", "task", "variant", "example", "layer", "head")


def _check_stats_keys(
    stats: pl.DataFrame, model_alias: str, task: str, variant: str, path: str | Path
) -> None:
    for column, expected in (("model", model_alias), ("task", task), ("variant", variant)):
        found = sorted(set(stats[column].to_list()))
        if found and found != [expected]:
            raise ValueError(f"{path}: column {column} holds {found}, expected only {expected!r}")


def pattern_classes_job(
    model_alias: str,
    task_name: str,
    variant: str,
    stats_path: str | Path,
    thresholds: Mapping[str, Any],
    cnn_path: str | Path | None,
    model_entry: Mapping[str, Any],
    checkpoint: str | Path | None,
    dev_path: str | Path | None,
    max_length: int,
    batch_size: int,
    device: str,
    output: str | Path,
    logger: logging.Logger,
    progress: Any = None,
) -> pl.DataFrame:
    """Rules on the statistics table, or (cnn_path given) the CNN on every map of its examples."""
    task = get_task(task_name)
    stats = pl.read_parquet(stats_path)
    _check_stats_keys(stats, model_alias, task.name, variant, stats_path)
    rules = Thresholds.from_config(thresholds)
    metadata: dict[str, Any] = {"model": model_alias, "task": task.name, "variant": variant}
    if cnn_path is None:
        table = classify_statistics(stats, rules, paired=task.is_pair)
        metadata |= {"classifier": "rules", "thresholds": vars(rules)}
    else:
        if dev_path is None:
            raise ValueError("the CNN classifier needs the dev table the statistics were computed on")
        variant_checkpoint_init(variant)  # a clear error for a variant with unknown weights
        examples = sorted(int(e) for e in stats["example"].unique().to_list())
        dev = pl.read_parquet(dev_path)
        outside = sorted(set(examples) - set(dev["row"].to_list()))
        if outside:
            raise ValueError(f"{stats_path}: examples {outside[:5]} are not rows of {dev_path}")
        where = pick_device(device)
        # the classifier head's seed is irrelevant: only attention maps are read
        model, tokenizer, _ = load_variant(model_alias, model_entry, task.name, variant, checkpoint, seed=0)
        cnn, size = load_cnn(cnn_path, where)
        if progress is not None:
            progress.reset(total=-(-len(examples) // batch_size))
        on_batch = progress.update if progress is not None else None
        probs = cnn_head_probabilities(
            model, tokenizer, cnn, size, dev, examples, max_length, batch_size, where, on_batch
        )
        table = cnn_classes_table(probs, examples, model_alias, task.name, variant)
        metadata |= {"classifier": "cnn", "cnn": str(cnn_path), "checkpoint": str(checkpoint)}
    counts = dict(table.group_by("pattern").len().sort("pattern").iter_rows())
    logger.info(
        "%s %s %s: %d head maps by %s: %s",
        model_alias,
        task.name,
        variant,
        table.height,
        metadata["classifier"],
        counts,
    )
    write_table(table.to_arrow(), output, metadata)
    return table
