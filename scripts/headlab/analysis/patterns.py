"""Self-attention pattern classes (Sec. 4.1, Figures 1 and 2): the rules on statistics, the tables' schemas.

The paper sorts attention maps into five classes (Figure 1):

* **vertical**: attention to the special tokens [CLS] and [SEP] (stripes down their columns);
* **diagonal**: attention to the previous / following token (a band along the diagonal);
* **vertical+diagonal**: a mix of the two;
* **block**: intra-sentence attention in tasks with two sentences (two squares on the diagonal);
* **heterogeneous**: everything else (the class that could carry linguistic structure).

Two routes lead to a label per (example, layer, head):

1. **Rules** (`classify_statistics`), a transparent stand-in for the paper's classifier. They read
   the per-head statistics of rule ``attention_stats`` (`headlab.measure.attention_stats`: long table
   ``model, task, condition, example, layer, head, stat, value``; each stat is a mean over the real
   query tokens, mostly of the attention mass on a key category, its `STATS`; NaN where the
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
2. **The paper's route**: a seeded sample of maps is exported (`headlab.measure.maps`:
   `sample_maps`, `MapSampler`), downsampled to a fixed size by adaptive average pooling over
   the real tokens (`downsample_map`), annotated by a person (`headlab.annotate`) and used to
   train a CNN (`headlab.measure.pattern_cnn`), which then classifies every map.

The sampled maps are described by the statistics of rule attention_stats, computed by its own
reduction in the export pass (`headlab.measure.maps.export_maps`), so that the rules can label
them too (Figure 1 without annotations). ``example`` is the dev Parquet's ``row`` everywhere, as
in attention_stats.

This module needs polars only (no torch), so figures and the annotation tool can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import polars as pl

from headlab.data.labels import PATTERNS
from headlab.io.schemas import ATTENTION_STATS_SCHEMA, polars_schema

# The statistics the rules read; the others may be missing from the table.
RULE_STATS = ("cls", "sep", "punct", "self", "prev", "next", "within_segment")
KEY_COLUMNS = ("model", "task", "condition", "example", "layer", "head")
STATS_SCHEMA: dict[str, Any] = polars_schema(ATTENTION_STATS_SCHEMA)  # as rule attention_stats writes
CLASSES_SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "task": pl.String,
    "condition": pl.String,
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


# ---------------------------------------------------------------------------------------------
# Thresholds and the rule classifier
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Rule thresholds (config ``patterns.thresholds``, defaults in the schema: 0.6, 0.6, 0.3, 0.75,
    0.8, true); masses are fractions of a query's attention.

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

    vertical: float
    diagonal: float
    mixed_min: float
    mixed_total: float
    block: float
    punct_is_vertical: bool

    def __post_init__(self) -> None:
        for name in ("vertical", "diagonal", "mixed_min", "mixed_total", "block"):
            value = getattr(self, name)
            upper = 2.0 if name == "mixed_total" else 1.0  # v + d can exceed 1 ([CLS] is also "self")
            if not 0.0 <= value <= upper:
                raise ValueError(f"patterns.thresholds.{name} = {value} is out of range")

    @classmethod
    def from_config(cls, entry: Mapping[str, Any] | None) -> Thresholds:
        """From the config mapping (every key of the schema's section)."""
        return cls(**section_values(cls, entry, "patterns.thresholds"))


def section_values(cls: type, entry: Mapping[str, Any] | None, section: str) -> dict[str, Any]:
    """A config section's values for the fields of the dataclass `cls`: a ValueError naming the
    section and the keys when one is unknown or missing (the config schema gives every key a
    default, so a missing one is the caller's error)."""
    entry = dict(entry or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{section}: unknown key(s) {unknown}; valid: {sorted(known)}")
    missing = sorted(known - set(entry))
    if missing:
        raise ValueError(f"{section}: key(s) {missing} missing (the config schema has their defaults)")
    return entry


def wide_statistics(stats: pl.DataFrame) -> pl.DataFrame:
    """The long statistics table as one row per (model, task, condition, example, layer, head)."""
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


def classify_statistics(stats: pl.DataFrame, thresholds: Thresholds, *, paired: bool) -> pl.DataFrame:
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
        .sort(["model", "task", "condition", "example", "layer", "head"])
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
