"""Jobs of rules/features.smk (Sec. 4.4 and 4.5): parse_task, feature_attention, figure6, figure7.

Each job runs in its own environment (parse_task: nlp, with spaCy and no torch;
feature_attention: torch; the figures: plot, with neither), so the heavy modules are imported
inside the job that needs them, never at the top of this file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl


def parse_task_job(
    dev_path: str | Path,
    spacy_model: str,
    verb_pos: Sequence[str],
    output: str | Path,
    logger: logging.Logger,
    progress: Any = None,
) -> pl.DataFrame:
    """Rule parse_task: parse every segment of the dev table once; one row per spaCy token."""
    from headlab.linguistic import TOKEN_FEATURES, load_pipeline, parse_table, spacy_provenance
    from headlab.parquet_io import write_table

    dev = pl.read_parquet(dev_path)
    nlp = load_pipeline(spacy_model)
    logger.info("parsing %d dev examples of %s with %s %s", dev.height, dev_path, spacy_model, nlp.pipe_names)
    table = parse_table(dev, nlp, verb_pos, progress=progress)
    counts = {feature: int(table[feature].sum()) for feature in TOKEN_FEATURES}
    logger.info("%d tokens; tokens per feature: %s", table.height, counts)
    write_table(
        table.to_arrow(),
        output,
        {
            "dev": str(dev_path),
            "spacy_model": spacy_model,
            "verb_pos": list(verb_pos),
            "n_examples": dev.height,
            "n_tokens": table.height,
            "feature_counts": counts,
            **spacy_provenance(nlp),
        },
    )
    return table


def feature_attention_job(
    model_alias: str,
    model_entry: Mapping[str, Any],
    task: str,
    variant: str,
    dev_path: str | Path,
    parsed_path: str | Path,
    checkpoint: str | Path | None,
    max_length: int,
    batch_size: int,
    level: str,
    max_examples: int | None,
    seed: int,
    device: str,
    outputs: Mapping[str, str | Path],
    logger: logging.Logger,
    progress: Any = None,
) -> dict[str, pl.DataFrame]:
    """Rule feature_attention: feature, token-to-token and [CLS] tables of one model, task, variant.

    `variant` is ``pretrained`` (the encoder's own weights) or ``finetuned`` (the checkpoint
    fine-tuned from them, `checkpoint`). `level` (config ``attention.level``) is ``piece`` or
    ``word`` (attention pooled to words first, `headlab.feature_attention`). `outputs` maps
    ``features``, ``token_to_token`` and ``cls_attention`` to their paths.
    """
    from headlab.attention_stats import LEVELS
    from headlab.engine import head_count, layer_count
    from headlab.feature_attention import (
        VARIANTS,
        cls_table,
        collect_feature_attention,
        feature_table,
        token_table,
    )
    from headlab.framenet_heads import load_encoder
    from headlab.linguistic import align_examples
    from headlab.model_specs import ModelSpec
    from headlab.models import load_checkpoint, pick_device
    from headlab.parquet_io import read_metadata, write_table

    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r} is not valid; valid: {', '.join(VARIANTS)}")
    if level not in LEVELS:
        raise ValueError(f"attention.level is {level!r}; valid: {', '.join(LEVELS)}")
    spec = ModelSpec.from_config(model_alias, dict(model_entry))
    if variant == "pretrained":
        model, tokenizer = load_encoder(spec)
    else:
        if checkpoint is None:
            raise ValueError("the finetuned variant needs the fine-tuned checkpoint folder")
        model, tokenizer = load_checkpoint(checkpoint)
    where = pick_device(device)
    from headlab.glue_data import read_sample

    dev = read_sample(dev_path, max_examples, seed)
    parsed = pl.read_parquet(parsed_path).filter(pl.col("row").is_in(dev["row"].implode()))
    examples = align_examples(tokenizer, dev, parsed, max_length)
    logger.info(
        "%s %s %s: %d examples, %d layers x %d heads, level %s, device %s",
        model_alias,
        task,
        variant,
        len(examples),
        layer_count(model),
        head_count(model),
        level,
        where,
    )
    if progress is not None:
        progress.reset(total=math.ceil(len(examples) / batch_size))
    on_batch = progress.update if progress is not None else None
    sums = collect_feature_attention(
        model, examples, batch_size, tokenizer.pad_token_id, where, on_batch, level=level
    )
    tables = {
        "features": feature_table(sums, model_alias, task, variant),
        "token_to_token": token_table(sums, model_alias, task, variant),
        "cls_attention": cls_table(sums, model_alias, task, variant),
    }
    for name, count in zip(("features", "relations"), (sums.feature_count, sums.pair_count), strict=True):
        logger.info("examples per %s: %s", name, count.tolist())
    parse_metadata = read_metadata(parsed_path)
    metadata = {
        "model": model_alias,
        "model_source": spec.location,
        "revision": spec.revision,
        "task": task,
        "variant": variant,
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "max_length": max_length,
        "max_examples": max_examples,
        "level": level,
        "seed": seed,
        "n_examples": sums.n_examples,
        "device": str(where),
        "parse": {k: parse_metadata.get(k) for k in ("spacy_pipeline", "spacy_pipeline_version", "verb_pos")},
    }
    for name, table in tables.items():
        write_table(table.to_arrow(), outputs[name], metadata)
    return tables


def figure6_job(
    feature_paths: Sequence[str | Path],
    tasks: Sequence[str],
    label: str,
    output_pdf: str | Path,
    features_pdf: str | Path,
    logger: logging.Logger,
) -> None:
    """Rules figure6 and model_figure6: [SEP]/[CLS] heatmaps and the linguistic-feature companion."""
    from headlab.figures_features import plot_figure6, plot_figure6_features

    table = pl.concat([pl.read_parquet(p) for p in feature_paths])
    plot_figure6(table, tasks, Path(output_pdf), label=label)
    plot_figure6_features(table, tasks, Path(features_pdf), label=label)
    logger.info("plotted %d feature tables into %s and %s", len(feature_paths), output_pdf, features_pdf)


def figure7_job(
    cls_paths: Sequence[str | Path],
    token_paths: Sequence[str | Path],
    tasks: Sequence[str],
    label: str,
    output_pdf: str | Path,
    logger: logging.Logger,
) -> None:
    """Rules figure7 and model_figure7: final-layer [CLS] attention per category, token-to-token maps."""
    from headlab.figures_features import plot_figure7

    cls = pl.concat([pl.read_parquet(p) for p in cls_paths])
    tokens = pl.concat([pl.read_parquet(p) for p in token_paths])
    plot_figure7(cls, tokens, tasks, Path(output_pdf), label=label)
    logger.info("plotted %d [CLS] and %d token tables into %s", len(cls_paths), len(token_paths), output_pdf)
