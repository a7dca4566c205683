"""Self-attention pattern classes (Sec. 4.1, Figures 1 and 2): rules on statistics, and map export.

The paper sorts attention maps into five classes (Figure 1):

* **vertical**: attention to the special tokens [CLS] and [SEP] (stripes down their columns);
* **diagonal**: attention to the previous / following token (a band along the diagonal);
* **vertical+diagonal**: a mix of the two;
* **block**: intra-sentence attention in tasks with two sentences (two squares on the diagonal);
* **heterogeneous**: everything else (the class that could carry linguistic structure).

Two routes lead to a label per (example, layer, head):

1. **Rules** (`classify_statistics`), a transparent stand-in for the paper's classifier. They read
   the per-head statistics of rule ``attention_stats`` (`headlab.attention_stats`: long table
   ``model, task, variant, example, layer, head, stat, value``; each stat is a mean over the real
   query tokens, mostly of the attention mass on a key category, `STAT_NAMES`; NaN where the
   example has no such category, read as 0 here) and apply `Thresholds` in this order::

       v = cls + sep (+ punct when punct_is_vertical)   # mass on the "vertical" columns
       d = prev + self + next                           # mass on the diagonal band
       vertical+diagonal  if v >= mixed_min and d >= mixed_min and v + d >= mixed_total
       vertical           elif v >= vertical
       diagonal           elif d >= diagonal
       block              elif the task has sentence pairs and within_segment >= block
                          (within_segment: content tokens of the query's own sentence)
       heterogeneous      otherwise

   Each label comes with a confidence in [0, 1]: v for vertical, d for diagonal, min(v + d, 1)
   for the mix, within_segment for block, and 1 - max(v, d, within_segment if paired) for
   heterogeneous (how far the map is from every structured class).
2. **The paper's route**: a seeded sample of maps is exported (`sample_maps`, `MapSampler`),
   downsampled to a fixed size by adaptive average pooling over the real tokens
   (`downsample_map`), annotated by a person (`headlab.annotate`) and used to train a CNN
   (`headlab.pattern_cnn`), which then classifies every map.

`map_statistics` computes the statistics of full maps with attention_stats' (piece-level)
definitions; the export job uses it on the sampled maps so that the rules can label them too
(Figure 1 without annotations). ``example`` is the dev Parquet's ``row`` everywhere, as in
attention_stats.

This module needs numpy and polars only (no torch), so figures and the annotation tool can
import it.
"""

from __future__ import annotations

import os
import secrets
import struct
import unicodedata
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

PATTERNS = ("vertical", "diagonal", "vertical+diagonal", "block", "heterogeneous")
STAT_NAMES = (
    "cls",
    "sep",
    "sep_first",
    "sep_second",
    "punct",
    "self",
    "prev",
    "next",
    "within_segment",
    "across_segment",
    "entropy",
)
# The statistics the rules read; the others may be missing from the table.
RULE_STATS = ("cls", "sep", "punct", "self", "prev", "next", "within_segment")
KEY_COLUMNS = ("model", "task", "variant", "example", "layer", "head")
STATS_SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "task": pl.String,
    "variant": pl.String,
    "example": pl.Int64,
    "layer": pl.Int32,
    "head": pl.Int32,
    "stat": pl.String,
    "value": pl.Float64,
}
CLASSES_SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "task": pl.String,
    "variant": pl.String,
    "example": pl.Int64,
    "layer": pl.Int32,
    "head": pl.Int32,
    "pattern": pl.String,
    "classifier": pl.String,  # "rules" or "cnn"
    "confidence": pl.Float64,  # see the module docstring (rules) or the CNN's softmax probability
}
MAPS_SCHEMA: dict[str, Any] = {
    "map_id": pl.String,
    "model": pl.String,
    "task": pl.String,
    "example": pl.Int64,  # the dev Parquet's `row` (as in attention_stats)
    "layer": pl.Int32,  # 1-based
    "head": pl.Int32,  # 1-based
    "n_tokens": pl.Int32,  # real tokens of the example (the map before downsampling is n x n)
    "size": pl.Int32,  # the stored map is size x size
    "values": pl.List(pl.Float32),  # row-major (query, key), size * size values
}
MAP_CLASSES_SCHEMA: dict[str, Any] = {
    "map_id": pl.String,
    "model": pl.String,
    "task": pl.String,
    "example": pl.Int64,
    "layer": pl.Int32,
    "head": pl.Int32,
    "pattern": pl.String,
    "classifier": pl.String,
    "confidence": pl.Float64,
}


# Model variants of the attention statistics and the fine-tuning init whose checkpoint holds
# their weights; "pretrained" is the encoder itself (models[].source), with no checkpoint.
CHECKPOINT_VARIANTS = {
    "finetuned": "pretrained",
    "finetuned-pretrained": "pretrained",
    "finetuned-random": "random",
}
ENCODER_VARIANTS = ("pretrained",)


def variant_checkpoint_init(variant: str) -> str | None:
    """The fine-tuning init (pretrained | random) whose checkpoint has `variant`'s weights; None for
    the pretrained encoder. Used by the workflow to find the checkpoint a CNN job reads."""
    if variant in ENCODER_VARIANTS:
        return None
    if variant in CHECKPOINT_VARIANTS:
        return CHECKPOINT_VARIANTS[variant]
    valid = [*ENCODER_VARIANTS, *CHECKPOINT_VARIANTS]
    raise ValueError(f"model variant {variant!r} has no known weights; valid: {', '.join(valid)}")


# ---------------------------------------------------------------------------------------------
# Thresholds and the rule classifier
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Rule thresholds (config ``patterns.thresholds``); masses are fractions of a query's attention.

    * ``vertical``: least mass on [CLS] + [SEP] (+ punctuation) for a vertical map. A vertical
      head in BERT puts most of every row on these few columns (Clark et al. 2019 find heads with
      > 50% on [SEP]); 0.6 asks for a clear majority.
    * ``diagonal``: least mass on the previous token, the token itself and the next one.
    * ``mixed_min``, ``mixed_total``: a vertical+diagonal map puts at least ``mixed_min`` on each
      and at least ``mixed_total`` on both together. The categories overlap: the diagonal band
      crosses the columns of [CLS], [SEP] and punctuation, so a purely diagonal head over n
      tokens, k of them special or punctuation, still puts about k/n on "vertical" (0.2 for 5
      of 24); ``mixed_min`` 0.3 keeps it out of the mix. A uniform map puts about k/n and 3/n on
      the two, so ``mixed_total`` 0.75 keeps uniform maps of 10 or more tokens out of it.
    * ``block``: least mass on the content tokens of the query's own sentence (attention_stats'
      ``within_segment``, which leaves [CLS] and [SEP] out, so cls + sep + within + across = 1):
      0.8 leaves at most 0.2 for the special tokens and the other sentence. Only for tasks with
      two sentences, tested after the three classes above.
    * ``punct_is_vertical``: count attention to punctuation as vertical (the stripes in BERT's
      maps are often on "." and ",", Clark et al. 2019).
    """

    vertical: float = 0.6
    diagonal: float = 0.6
    mixed_min: float = 0.3
    mixed_total: float = 0.75
    block: float = 0.8
    punct_is_vertical: bool = True

    def __post_init__(self) -> None:
        for name in ("vertical", "diagonal", "mixed_min", "mixed_total", "block"):
            value = getattr(self, name)
            upper = 2.0 if name == "mixed_total" else 1.0  # v + d can exceed 1 ([CLS] is also "self")
            if not 0.0 <= value <= upper:
                raise ValueError(f"patterns.thresholds.{name} = {value} is out of range")

    @classmethod
    def from_config(cls, entry: Mapping[str, Any] | None) -> Thresholds:
        """From the config mapping; unknown keys are an error naming the key."""
        entry = dict(entry or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"patterns.thresholds: unknown key(s) {unknown}; valid: {sorted(known)}")
        return cls(**entry)


def wide_statistics(stats: pl.DataFrame) -> pl.DataFrame:
    """The long statistics table as one row per (model, task, variant, example, layer, head)."""
    missing = [c for c in (*KEY_COLUMNS, "stat", "value") if c not in stats.columns]
    if missing:
        raise ValueError(f"the attention statistics table lacks column(s) {missing}")
    duplicated = stats.select(*KEY_COLUMNS, "stat").is_duplicated()
    if duplicated.any():
        first = stats.filter(duplicated).row(0, named=True)
        raise ValueError(f"several values for one statistic: {first}")
    wide = stats.pivot(on="stat", index=list(KEY_COLUMNS), values="value", aggregate_function=None)
    absent = [s for s in RULE_STATS if s not in wide.columns]
    if absent and wide.height:
        raise ValueError(f"the attention statistics table has no {absent} rows; the rules need {RULE_STATS}")
    return wide


def classify_statistics(
    stats: pl.DataFrame, thresholds: Thresholds = Thresholds(), *, paired: bool
) -> pl.DataFrame:
    """Rule labels (schema `CLASSES_SCHEMA`, classifier "rules") of every head map in `stats`.

    `stats` is the long table of rule attention_stats; `paired` says whether the task's examples
    are sentence pairs (the block class needs two segments). Pure: no file, no state.
    """
    wide = wide_statistics(stats)
    if wide.height == 0:
        return pl.DataFrame(schema=CLASSES_SCHEMA)
    # NaN marks a statistic the example does not have (attention_stats): no mass for the rules
    # (polars would order NaN above every threshold).
    wide = wide.with_columns(pl.col(list(RULE_STATS)).cast(pl.Float64).fill_nan(0.0))
    t = thresholds
    v = pl.col("cls") + pl.col("sep")
    if t.punct_is_vertical:
        v = v + pl.col("punct")
    d = pl.col("prev") + pl.col("self") + pl.col("next")
    within = pl.col("within_segment") if paired else pl.lit(0.0)
    is_mixed = (v >= t.mixed_min) & (d >= t.mixed_min) & (v + d >= t.mixed_total)
    is_block = (within >= t.block) if paired else pl.lit(False)
    pattern = (
        pl.when(is_mixed)
        .then(pl.lit("vertical+diagonal"))
        .when(v >= t.vertical)
        .then(pl.lit("vertical"))
        .when(d >= t.diagonal)
        .then(pl.lit("diagonal"))
        .when(is_block)
        .then(pl.lit("block"))
        .otherwise(pl.lit("heterogeneous"))
    )
    confidence = (
        pl.when(pl.col("pattern") == "vertical+diagonal")
        .then(v + d)
        .when(pl.col("pattern") == "vertical")
        .then(v)
        .when(pl.col("pattern") == "diagonal")
        .then(d)
        .when(pl.col("pattern") == "block")
        .then(within)
        .otherwise(1.0 - pl.max_horizontal(v, d, within))
    )
    labelled = wide.with_columns(pattern=pattern, classifier=pl.lit("rules")).with_columns(
        confidence=confidence.clip(0.0, 1.0).cast(pl.Float64)
    )
    return _classes_table(labelled)


def _classes_table(labelled: pl.DataFrame) -> pl.DataFrame:
    return (
        labelled.select(list(CLASSES_SCHEMA))
        .cast(CLASSES_SCHEMA)
        .sort(["model", "task", "variant", "example", "layer", "head"])
    )


def pattern_shares(classes: pl.DataFrame) -> pl.DataFrame:
    """Per task (first-appearance order) and pattern (`PATTERNS` order): count and share of maps."""
    tasks = classes["task"].unique(maintain_order=True).to_list()
    grid = pl.DataFrame(
        {"task": [t for t in tasks for _ in PATTERNS], "pattern": [p for _ in tasks for p in PATTERNS]}
    )
    counts = classes.group_by("task", "pattern").len("count")
    out = grid.join(counts, on=["task", "pattern"], how="left", maintain_order="left").with_columns(
        pl.col("count").fill_null(0).cast(pl.Int64)
    )
    return out.with_columns(share=pl.col("count") / pl.col("count").sum().over("task"))


# ---------------------------------------------------------------------------------------------
# Statistics of full maps (the definitions of rule attention_stats)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRoles:
    """What each real token of one example is; all arrays have shape (tokens,)."""

    is_cls: np.ndarray  # bool
    sep_order: np.ndarray  # int: 0 not a [SEP], 1 the first [SEP], 2 the second, ...
    is_punct: np.ndarray  # bool: punctuation only, never a special token
    segment: np.ndarray  # int: token_type_id

    def __len__(self) -> int:
        return int(self.is_cls.shape[0])

    @property
    def is_pair(self) -> bool:
        """A pair is an example with at least two [SEP] (as rule attention_stats decides)."""
        return int(self.sep_order.max(initial=0)) >= 2


def is_punctuation(token: str) -> bool:
    """True when every character of the token string is Unicode punctuation (category P*)."""
    return bool(token) and all(unicodedata.category(ch).startswith("P") for ch in token)


def token_roles(
    tokens: Sequence[str], token_type_ids: Sequence[int], cls_token: str = "[CLS]", sep_token: str = "[SEP]"
) -> TokenRoles:
    """Roles of the real word pieces of one example (as `tokenizer.convert_ids_to_tokens` gives)."""
    is_cls = np.array([t == cls_token for t in tokens], dtype=bool)
    is_sep = np.array([t == sep_token for t in tokens], dtype=bool)
    sep_order = np.where(is_sep, np.cumsum(is_sep), 0).astype(np.int64)
    specials = is_cls | is_sep
    is_punct = np.array([is_punctuation(t) for t in tokens], dtype=bool) & ~specials
    return TokenRoles(is_cls, sep_order, is_punct, np.asarray(token_type_ids, dtype=np.int64))


def map_statistics(maps: np.ndarray, roles: TokenRoles) -> dict[str, np.ndarray]:
    """The `STAT_NAMES` statistics of maps over the real tokens of one example, as rule
    attention_stats defines them (`headlab.attention_stats`, piece level).

    maps (maps, query, key), rows summing to 1. Each statistic is a mean over the query tokens
    ([CLS] and [SEP] included) of: the mass on [CLS]; on all [SEP]s; on the first [SEP]; on the
    last [SEP] of a pair (NaN for a single sentence); on punctuation; A[i, i]; A[i, i-1] (mean
    over queries with a previous token); A[i, i+1] (over queries with a next token); the mass on
    the content tokens (neither [CLS] nor [SEP]) of the query's own segment (token_type_id) and
    of the other one (NaN for a single sentence); the row's entropy in nats.
    Returns stat -> (maps,) float64.
    """
    weights = np.asarray(maps, dtype=np.float64)
    if weights.ndim == 2:
        weights = weights[None]  # (maps, query, key)
    n = weights.shape[-1]
    if weights.shape[-2] != n or len(roles) != n:
        raise ValueError(f"maps {weights.shape} and {len(roles)} token roles do not match")

    def on(keys: np.ndarray) -> np.ndarray:
        return weights[..., keys].sum(axis=-1).mean(axis=-1)  # (maps,)

    def neighbour(offset: int) -> np.ndarray:
        band = np.diagonal(weights, offset=offset, axis1=-2, axis2=-1)  # (maps, n - 1)
        return band.mean(axis=-1) if n > 1 else np.full(weights.shape[0], np.nan)

    pair = roles.is_pair
    nan = np.full(weights.shape[0], np.nan)
    content = (roles.sep_order == 0) & ~roles.is_cls  # (key,)
    same = (roles.segment[:, None] == roles.segment[None, :]) & content[None, :]  # (query, key)
    other = (roles.segment[:, None] != roles.segment[None, :]) & content[None, :]  # (query, key)
    logs = np.log(np.where(weights > 0, weights, 1.0))  # (maps, query, key)
    last_sep = roles.sep_order == roles.sep_order.max(initial=0)
    return {
        "cls": on(roles.is_cls),
        "sep": on(roles.sep_order > 0),
        "sep_first": on(roles.sep_order == 1),
        "sep_second": on((roles.sep_order > 0) & last_sep) if pair else nan,
        "punct": on(roles.is_punct),
        "self": np.diagonal(weights, axis1=-2, axis2=-1).mean(axis=-1),
        "prev": neighbour(-1),
        "next": neighbour(1),
        "within_segment": (weights * same).sum(axis=(-2, -1)) / n,
        "across_segment": (weights * other).sum(axis=(-2, -1)) / n if pair else nan,
        "entropy": -(weights * logs).sum(axis=-1).mean(axis=-1),
    }


def statistics_rows(
    keys: Mapping[str, Any], stats: Mapping[str, np.ndarray], index: int = 0
) -> list[dict[str, Any]]:
    """Long rows (`STATS_SCHEMA`) of map `index` of `map_statistics`' output, with `keys`."""
    return [{**keys, "stat": name, "value": float(stats[name][index])} for name in STAT_NAMES]


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


def map_id(model: str, task: str, key: MapKey) -> str:
    """The name of an exported map (file name of its PNG, key of its label)."""
    return f"{model}__{task}__e{key.example}_L{key.layer}_H{key.head}"


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
    variant: str = "finetuned",
    on_batch: Callable[[int], object] | None = None,
) -> ExportedMaps:
    """A seeded sample of `count` (example, layer, head) maps of the dev table, downsampled.

    Only the sampled examples are encoded and run (through the engine, in inference mode); the
    `MapSampler` observer keeps only the sampled heads' maps. Each map is cut to the example's
    real tokens, downsampled to size x size (`downsample_map`) and described by
    `map_statistics` at full resolution (rows labelled `variant`). Sizes come from the model.
    """
    import torch

    from headlab.batching import encode, eval_batches  # deferred: torch (not needed by figures)
    from headlab.engine import Controls, head_count, layer_count
    from headlab.inference import inference_session

    positions = sample_maps(dev.height, layer_count(model), head_count(model), count, seed, task)
    rows = dev["row"].to_list()  # the example ids of attention_stats
    examples = sorted({k.example for k in positions})  # positions in the dev table
    by_example: dict[int, list[MapKey]] = {}
    for k in positions:
        by_example.setdefault(k.example, []).append(MapKey(int(rows[k.example]), k.layer, k.head))
    encoded = encode(tokenizer, dev[examples], max_length)  # position i is dev position examples[i]
    sampler = MapSampler()
    controls = Controls(observers=[sampler])
    where = torch.device(device)
    map_rows: list[dict[str, Any]] = []
    stat_rows: list[dict[str, Any]] = []
    with inference_session(model, where):
        for batch in eval_batches(encoded, batch_size, tokenizer.pad_token_id):
            wanted = {
                row: [(k.layer, k.head) for k in by_example[examples[int(pos)]]]
                for row, pos in enumerate(batch.rows)
            }
            sampler.start(wanted)
            model(**batch.model_inputs(where), headlab=controls)
            for row, pos in enumerate(batch.rows):
                tokens = tokenizer.convert_ids_to_tokens(encoded.input_ids[pos])
                roles = token_roles(
                    tokens, encoded.token_type_ids[pos], tokenizer.cls_token, tokenizer.sep_token
                )
                for k in by_example[examples[int(pos)]]:
                    full = sampler.captured[(row, k.layer, k.head)]  # (tokens, tokens)
                    small = downsample_map(full, size)  # (size, size)
                    keys_of_map = {"model": model_alias, "task": task, "example": k.example}
                    keys_of_map |= {"layer": k.layer, "head": k.head}
                    map_rows.append(
                        {
                            "map_id": map_id(model_alias, task, k),
                            **keys_of_map,
                            "n_tokens": full.shape[0],
                            "size": size,
                            "values": small.ravel().tolist(),
                        }
                    )
                    stats = map_statistics(full, roles)
                    stat_rows += statistics_rows({**keys_of_map, "variant": variant}, stats)
            if on_batch is not None:
                on_batch(1)
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


# ---------------------------------------------------------------------------------------------
# PNG images of maps (no imaging library: the model environment has none)
# ---------------------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colours of no and of the map's largest weight: darker = more attention, as the paper's maps.
LIGHT = np.array([247, 251, 255], dtype=np.float64)
DARK = np.array([8, 48, 107], dtype=np.float64)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(values: np.ndarray, scale: int = 8) -> bytes:
    """An RGB PNG of a (rows, cols) map, each cell scale x scale pixels, scaled to the map's maximum."""
    weights = np.asarray(values, dtype=np.float64)
    peak = float(weights.max()) if weights.size else 0.0
    level = np.clip(weights / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(weights)
    rgb = np.rint(LIGHT + level[..., None] * (DARK - LIGHT)).astype(np.uint8)  # (rows, cols, 3)
    image = np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)  # (rows*scale, cols*scale, 3)
    height, width = image.shape[:2]
    raw = b"".join(b"\x00" + line.tobytes() for line in image)  # filter type 0 per scanline
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def write_png(path: str | os.PathLike[str], values: np.ndarray, scale: int = 8) -> Path:
    """`png_bytes` written atomically (temporary sibling, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        tmp.write_bytes(png_bytes(values, scale))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def write_map_pngs(maps: pl.DataFrame, folder: str | os.PathLike[str], scale: int = 8) -> list[Path]:
    """One `<map_id>.png` per row of a maps table, in `folder`."""
    arrays = map_array(maps)  # (maps, size, size)
    return [
        write_png(Path(folder) / f"{name}.png", array, scale)
        for name, array in zip(maps["map_id"].to_list(), arrays, strict=True)
    ]
