"""Attention maps for the paper's pattern classifier (Sec. 4.1): a seeded sample, downsampled.

A seeded sample of (example, layer, head) maps is drawn (`sample_maps`), captured during a
forward pass by the `MapSampler` observer (cut to the real tokens; the full attention tensor is
never kept), downsampled to a fixed size by adaptive average pooling (`downsample_map`) and
described by the statistics of rule attention_stats, computed by its own reduction
(`headlab.measure.attention_stats.AttentionStatsObserver`) in the same pass, so that the rules
can label them too. Nothing is written here (the PNG encoder is `headlab.io.png`).
``example`` is the dev Parquet's ``row``, as in attention_stats.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from headlab.analysis.patterns import KEY_COLUMNS, MAPS_SCHEMA, STATS_SCHEMA

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# ---------------------------------------------------------------------------------------------
# Map export: sampling, downsampling, the observer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class MapKey:
    """One head map of one example: layer and head are 1-based. `sample_maps` gives the 0-based
    position of the example in the dev table; exported maps carry its ``row`` instead."""

    example: int
    layer: int
    head: int


def map_id(model: str, task: str, key: MapKey, finetune_seed: int | None = None) -> str:
    """The name of an exported map (file name of its PNG, key of its label); with the fine-tuning
    seed of its model, so a label given to one seed's map never names another seed's."""
    seed = "" if finetune_seed is None else f"s{finetune_seed}__"
    return f"{model}__{task}__{seed}e{key.example}_L{key.layer}_H{key.head}"


def sample_maps(
    n_examples: int, n_layers: int, n_heads: int, count: int, seed: int, task: str
) -> list[MapKey]:
    """`count` distinct (example, layer, head) drawn uniformly (seeded by seed and task), sorted.

    The same arguments give the same sample; a different task gives an independent one.
    """
    total = n_examples * n_layers * n_heads
    if total == 0:
        return []
    rng = np.random.default_rng([seed, zlib.crc32(task.encode())])
    picks = rng.choice(total, size=min(count, total), replace=False)
    example, rest = np.divmod(picks, n_layers * n_heads)
    layer, head = np.divmod(rest, n_heads)
    return sorted(
        MapKey(int(e), int(lay) + 1, int(h) + 1) for e, lay, h in zip(example, layer, head, strict=True)
    )


def pooling_bins(length: int, size: int) -> list[tuple[int, int]]:
    """[start, end) of each of `size` adaptive-average-pooling bins over `length` positions.

    The same bins as torch's adaptive_avg_pool: floor(i * L / S) to ceil((i + 1) * L / S); when
    L < S bins repeat positions (the map is stretched).
    """
    return [((i * length) // size, -((-(i + 1) * length) // size)) for i in range(size)]


def downsample_map(attention: np.ndarray, size: int) -> np.ndarray:
    """(n, n) map over real tokens -> (size, size) by adaptive average pooling, float32."""
    weights = np.asarray(attention, dtype=np.float64)
    n_query, n_key = weights.shape
    rows = pooling_bins(n_query, size)
    cols = pooling_bins(n_key, size)
    out = np.empty((size, size), dtype=np.float64)
    for i, (r0, r1) in enumerate(rows):
        band = weights[r0:r1].mean(axis=0)  # (key,)
        out[i] = [band[c0:c1].mean() for c0, c1 in cols]
    return out.astype(np.float32)


class MapSampler:
    """Engine observer that keeps only the chosen (row, layer, head) maps of the current batch.

    Call `start` before each forward pass with, per batch row, the wanted (layer, head) pairs
    (1-based). Maps are cut to the row's real tokens and stored as float32 numpy arrays in
    `captured[(row, layer, head)]`; the full (batch, heads, query, key) tensor is never kept.
    """

    def __init__(self) -> None:
        self.wanted: dict[int, list[tuple[int, int]]] = {}  # 0-based layer -> [(row, 0-based head)]
        self.captured: dict[tuple[int, int, int], np.ndarray] = {}

    def start(self, wanted: Mapping[int, Sequence[tuple[int, int]]]) -> None:
        """`wanted`: batch row -> [(layer, head)], 1-based."""
        self.captured = {}
        self.wanted = {}
        for row, pairs in wanted.items():
            for layer, head in pairs:
                self.wanted.setdefault(layer - 1, []).append((row, head - 1))

    def __call__(self, layer: int, probs: Any, key_is_real: Any) -> None:
        for row, head in self.wanted.get(layer, []):
            real = key_is_real[row].nonzero().flatten()  # (tokens,) positions of real tokens
            weights = probs[row, head][real][:, real]  # (query, key) over real tokens
            self.captured[(row, layer + 1, head + 1)] = weights.float().cpu().numpy()


@dataclass(frozen=True)
class ExportedMaps:
    """The sampled maps of one task: downsampled (`MAPS_SCHEMA`) and their statistics (`STATS_SCHEMA`)."""

    maps: pl.DataFrame
    stats: pl.DataFrame


def export_maps(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dev: pl.DataFrame,
    model_alias: str,
    task: str,
    count: int,
    size: int,
    seed: int,
    max_length: int,
    batch_size: int,
    device: torch.device | str,
    condition: str = "finetuned",
    on_batch: Callable[[int], object] | None = None,
    finetune_seed: int | None = None,
) -> ExportedMaps:
    """A seeded sample of `count` (example, layer, head) maps of the dev table, downsampled.

    Only the sampled examples are encoded and run, in one pass through the engine in inference
    mode with two observers: `MapSampler` keeps only the sampled heads' maps, cut to the
    example's real tokens and downsampled to size x size (`downsample_map`); the reduction of
    rule attention_stats (`headlab.measure.attention_stats`, piece level) gives every head's
    statistics, of which the sampled heads' rows are kept (labelled `condition`). Sizes come from
    the model. `on_batch(1)` after each batch; `finetune_seed` (of the model) goes into the map ids.
    """
    # deferred: torch (the figures and the annotation tool import this module without it)
    import torch

    from headlab.measure.attention_stats import (
        STATS,
        AttentionStatsObserver,
        batch_categories,
        tokenize_table,
    )
    from headlab.model.batching import Batch, eval_batches
    from headlab.model.engine import head_count, layer_count
    from headlab.model.inference import observed_pass

    n_layers, n_heads = layer_count(model), head_count(model)
    positions = sample_maps(dev.height, n_layers, n_heads, count, seed, task)
    rows = dev["row"].to_list()  # the example ids of attention_stats
    examples = sorted({k.example for k in positions})  # positions in the dev table
    slot = {example: i for i, example in enumerate(examples)}  # dev position -> position in `examples`
    by_example: dict[int, list[MapKey]] = {}  # position in `examples` -> the example's maps
    for k in positions:
        by_example.setdefault(slot[k.example], []).append(MapKey(int(rows[k.example]), k.layer, k.head))
    tokens = tokenize_table(tokenizer, dev[examples], max_length)  # position i is dev position examples[i]
    sampler = MapSampler()
    statistics = AttentionStatsObserver(n_layers, n_heads)
    where = torch.device(device)
    map_rows: list[dict[str, Any]] = []
    stat_rows: list[dict[str, Any]] = []

    def prepare(batch: Batch) -> None:
        sampler.start(
            {row: [(k.layer, k.head) for k in by_example[int(pos)]] for row, pos in enumerate(batch.rows)}
        )
        statistics.start(batch_categories(tokens, batch).to(where))

    def collect(batch: Batch) -> None:
        values = statistics.result()  # (batch, layers, heads, stats) float64
        for row, pos in enumerate(batch.rows):
            for k in by_example[int(pos)]:
                full = sampler.captured[(row, k.layer, k.head)]  # (tokens, tokens)
                keys_of_map = {"model": model_alias, "task": task, "example": k.example}
                keys_of_map |= {"layer": k.layer, "head": k.head}
                map_rows.append(
                    {
                        "map_id": map_id(model_alias, task, k, finetune_seed),
                        **keys_of_map,
                        "n_tokens": full.shape[0],
                        "size": size,
                        "values": downsample_map(full, size).ravel().tolist(),  # size * size values
                    }
                )
                head_values = values[row, k.layer - 1, k.head - 1]  # (stats,)
                stat_rows.extend(
                    {**keys_of_map, "condition": condition, "stat": name, "value": float(value)}
                    for name, value in zip(STATS, head_values, strict=True)
                )

    batches = eval_batches(tokens.encoded, batch_size, tokenizer.pad_token_id)
    observed_pass(model, batches, where, [sampler, statistics], prepare, collect, on_batch)
    maps = pl.DataFrame(map_rows, schema=MAPS_SCHEMA).sort("example", "layer", "head")
    stats_table = pl.DataFrame(stat_rows, schema=STATS_SCHEMA).select(list(STATS_SCHEMA))
    return ExportedMaps(maps, stats_table.sort(*KEY_COLUMNS, "stat"))


def map_array(maps: pl.DataFrame) -> np.ndarray:
    """The `values` column of a maps table as (maps, size, size) float32."""
    sizes = maps["size"].unique().to_list()
    if len(sizes) > 1:
        raise ValueError(f"maps of different sizes {sorted(sizes)} cannot be stacked")
    if maps.height == 0:
        return np.zeros((0, 0, 0), dtype=np.float32)
    size = int(sizes[0])
    return np.stack([np.asarray(v, dtype=np.float32) for v in maps["values"].to_list()]).reshape(
        maps.height, size, size
    )
