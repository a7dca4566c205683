"""A pattern class per attention map: rules or the CNN on exported maps, the CNN on every head map."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from headlab.analysis.patterns import (
    CLASSES_SCHEMA,
    MAP_CLASSES_SCHEMA,
    PATTERNS,
    Thresholds,
    classify_statistics,
)
from headlab.data.labels import final_labels
from headlab.measure.maps import map_array
from headlab.measure.pattern_cnn import HeadMapClassifier, PatternCNN, class_probabilities
from headlab.model.batching import encode, eval_batches, restore_order
from headlab.model.engine import head_count, layer_count
from headlab.model.inference import observed_pass


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


def labelled_maps(maps: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """The maps that carry a label (the latest answer per map), in map_id order, with ``label``."""
    return maps.join(final_labels(labels), on="map_id", how="inner").sort("map_id")


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
    batches = eval_batches(encoded, batch_size, tokenizer.pad_token_id)
    chunks: list[np.ndarray] = []
    observed_pass(
        model,
        batches,
        where,
        [observer],
        prepare=lambda batch: observer.start(len(batch.rows)),
        collect=lambda batch: chunks.append(observer.probs.numpy()),  # (batch, layers, heads, classes)
        on_batch=on_batch,
    )
    return restore_order(chunks, [b.rows for b in batches], len(examples))


def cnn_classes_table(
    probs: np.ndarray, examples: Sequence[int], model_alias: str, task: str, condition: str
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
            "condition": condition,
            "example": example.ravel(),
            "layer": layer.ravel(),
            "head": head.ravel(),
            "pattern": np.asarray(PATTERNS, dtype=object)[best.ravel()].tolist(),
            "classifier": "cnn",
            "confidence": np.take_along_axis(probs, best[..., None], axis=-1).ravel().astype(np.float64),
        }
    )
    return table.cast(CLASSES_SCHEMA).sort("model", "task", "condition", "example", "layer", "head")


def check_stats_keys(
    stats: pl.DataFrame, model_alias: str, task: str, condition: str, path: str | Path
) -> None:
    """An error unless the statistics table holds only this model, task and condition."""
    for column, expected in (("model", model_alias), ("task", task), ("condition", condition)):
        found = sorted(set(stats[column].to_list()))
        if found and found != [expected]:
            raise ValueError(f"{path}: column {column} holds {found}, expected only {expected!r}")
