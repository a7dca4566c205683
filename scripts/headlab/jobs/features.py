"""Jobs of rules/features.smk (Sec. 4.4 and 4.5): parse_task, feature_attention, figure6, figure7.

Each job runs in its own environment (parse_task: nlp, with spaCy and no torch;
feature_attention: torch; the figures: plot, with neither), so the heavy modules are imported
inside the job that needs them, never at the top of this file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ParseTask:
    dev: Path
    spacy_model: str
    verb_pos: list[str]
    table: Path
    log: Path | None = None
    threads: int = 1


def parse_task(job: ParseTask, logger: logging.Logger) -> None:
    """Rule parse_task: parse every segment of the dev table once; one row per spaCy token."""
    import polars as pl

    from headlab.data.linguistic import TOKEN_FEATURES, load_pipeline, parse_table, spacy_provenance
    from headlab.io.parquet import write_table
    from headlab.runtime import progress_bar

    dev = pl.read_parquet(job.dev)
    nlp = load_pipeline(job.spacy_model)
    logger.info(
        "parsing %d dev examples of %s with %s %s", dev.height, job.dev, job.spacy_model, nlp.pipe_names
    )
    with progress_bar(logger, 0, "parse") as bar:
        table = parse_table(dev, nlp, job.verb_pos, progress=bar)
    counts = {feature: int(table[feature].sum()) for feature in TOKEN_FEATURES}
    logger.info("%d tokens; tokens per feature: %s", table.height, counts)
    metadata = {
        "dev": str(job.dev),
        "spacy_model": job.spacy_model,
        "verb_pos": list(job.verb_pos),
        "n_examples": dev.height,
        "n_tokens": table.height,
        "feature_counts": counts,
        **spacy_provenance(nlp),
    }
    write_table(table.to_arrow(), job.table, metadata)


@dataclass(frozen=True)
class FeatureAttention:
    model: str
    task: str
    condition: str  # pretrained | finetuned (headlab.conditions)
    model_entry: dict[str, Any]
    dev: Path
    parsed: Path
    max_length: int
    batch_size: int
    level: str  # piece | word (attention.level)
    max_examples: int | None
    sample_seed: int  # of the dev sample (attention.seed)
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    features: Path
    token_to_token: Path
    cls_attention: Path
    checkpoint: Path | None = None  # none for the pretrained condition
    seed: int | None = None  # fine-tuning seed of the checkpoint; none for the pretrained condition
    log: Path | None = None
    threads: int = 1


def feature_attention(job: FeatureAttention, logger: logging.Logger) -> None:
    """Rule feature_attention: feature, token-to-token and [CLS] tables of one model, task, condition."""
    import math

    import polars as pl

    from headlab.data.glue import read_sample
    from headlab.data.linguistic import align_examples
    from headlab.io.parquet import read_metadata, write_table
    from headlab.measure.feature_attention import (
        cls_table,
        collect_feature_attention,
        feature_table,
        token_table,
    )
    from headlab.model.engine import head_count, layer_count
    from headlab.model.loading import load_for_job
    from headlab.runtime import progress_bar

    loaded = load_for_job(
        job.model, job.model_entry, job.condition, job.checkpoint, job.device, job.precision
    )
    model, tokenizer, spec, where = loaded.model, loaded.tokenizer, loaded.spec, loaded.device
    dev = read_sample(job.dev, job.max_examples, job.sample_seed)
    parsed = pl.read_parquet(job.parsed).filter(pl.col("row").is_in(dev["row"].implode()))
    examples = align_examples(tokenizer, dev, parsed, job.max_length)
    logger.info(
        "%s %s %s: %d examples, %d layers x %d heads, level %s, device %s",
        job.model,
        job.task,
        job.condition,
        len(examples),
        layer_count(model),
        head_count(model),
        job.level,
        where,
    )
    batches = math.ceil(len(examples) / job.batch_size)
    with progress_bar(logger, batches, f"features {job.task}/{job.condition}") as bar:
        sums = collect_feature_attention(
            model, examples, job.batch_size, tokenizer.pad_token_id, where, bar.update, level=job.level
        )
    tables = {
        job.features: feature_table(sums, job.model, job.task, job.condition),
        job.token_to_token: token_table(sums, job.model, job.task, job.condition),
        job.cls_attention: cls_table(sums, job.model, job.task, job.condition),
    }
    for name, count in zip(("features", "relations"), (sums.feature_count, sums.pair_count), strict=True):
        logger.info("examples per %s: %s", name, count.tolist())
    parse_metadata = read_metadata(job.parsed)
    metadata = {
        "model": job.model,
        "model_source": spec.location,
        "revision": spec.revision,
        "task": job.task,
        "condition": job.condition,
        "checkpoint": str(job.checkpoint) if job.checkpoint is not None else None,
        "max_length": job.max_length,
        "max_examples": job.max_examples,
        "level": job.level,
        "sample_seed": job.sample_seed,
        "finetune_seed": job.seed,
        "n_examples": sums.n_examples,
        "device": str(where),
        "parse": {k: parse_metadata.get(k) for k in ("spacy_pipeline", "spacy_pipeline_version", "verb_pos")},
    }
    for path, table in tables.items():
        write_table(table.to_arrow(), path, metadata)


@dataclass(frozen=True)
class Figure6:
    features: list[Path]
    tasks: list[str]
    label: str
    pdf: Path
    features_pdf: Path
    log: Path | None = None
    threads: int = 1


def figure6(job: Figure6, logger: logging.Logger) -> None:
    """Rules figure6 and model_figure6: [SEP]/[CLS] heatmaps and the linguistic-feature companion."""
    import polars as pl

    from headlab.analysis.feature_summary import feature_changes, special_token_grids
    from headlab.plots.features import plot_figure6, plot_figure6_features

    table = pl.concat([pl.read_parquet(p) for p in job.features])
    plot_figure6(special_token_grids(table, job.tasks), job.pdf, label=job.label)
    plot_figure6_features(feature_changes(table, job.tasks), job.features_pdf, label=job.label)
    logger.info("plotted %d feature tables into %s and %s", len(job.features), job.pdf, job.features_pdf)


@dataclass(frozen=True)
class Figure7:
    cls: list[Path]
    tokens: list[Path]
    tasks: list[str]
    label: str
    pdf: Path
    log: Path | None = None
    threads: int = 1


def figure7(job: Figure7, logger: logging.Logger) -> None:
    """Rules figure7 and model_figure7: final-layer [CLS] attention per category, token-to-token maps."""
    import polars as pl

    from headlab.analysis.feature_summary import category_bars, relation_grids
    from headlab.plots.features import plot_figure7

    cls = pl.concat([pl.read_parquet(p) for p in job.cls])
    tokens = pl.concat([pl.read_parquet(p) for p in job.tokens])
    bars, relations = category_bars(cls, job.tasks), relation_grids(tokens, job.tasks)
    plot_figure7(bars, relations, job.pdf, label=job.label)
    logger.info("plotted %d [CLS] and %d token tables into %s", len(job.cls), len(job.tokens), job.pdf)
