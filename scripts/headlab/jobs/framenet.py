"""Jobs of rules/framenet.smk (Sec. 4.2): FrameNet links, per-head attention on them, Figure 3."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class FramenetSentences:
    corpus: Path
    lu_index: Path  # luIndex.xml (an input so that another LU selection reruns the job)
    max_sentence_tokens: int
    max_fe_tokens: int
    min_distance: int
    table: Path
    log: Path | None = None
    threads: int = 1


def framenet_sentences(job: FramenetSentences, logger: logging.Logger) -> dict[str, int]:
    """Rule framenet_sentences: the links that pass the paper's filters, counts in the metadata."""
    from importlib.metadata import version

    from headlab.data.framenet import FramenetDataError
    from headlab.data.framenet import framenet_sentences as read_links
    from headlab.io.parquet import write_table
    from headlab.runtime import progress_bar

    logger.info("reading FrameNet from %s", job.corpus)
    with progress_bar(logger, 0, "FrameNet LUs") as bar:
        table, counts = read_links(
            job.corpus, job.max_sentence_tokens, job.max_fe_tokens, job.min_distance, logger, bar
        )
    if table.height == 0:
        raise FramenetDataError(f"no FrameNet link in {job.corpus} passes the filters ({counts})")
    metadata = {
        "corpus_dir": str(job.corpus.expanduser().resolve()),
        "filters": {
            "max_sentence_tokens": job.max_sentence_tokens,
            "max_fe_tokens": job.max_fe_tokens,
            "min_distance": job.min_distance,
        },
        "counts": counts,
        "nltk": version("nltk"),
    }
    write_table(table.to_arrow(), job.table, metadata)
    return counts


@dataclass(frozen=True)
class FramenetHeads:
    model: str
    model_entry: dict[str, Any]
    sentences: Path
    batch_size: int
    average_over: str
    percentile: float
    device: str
    precision: str  # of the inference passes: float32 | bf16 (config key precision)
    table: Path
    example: Path  # the output table of the example sentence's maps
    example_sentence: str | None = None  # framenet.example: the sentence shown (None: chosen)
    log: Path | None = None
    threads: int = 1


def framenet_heads(job: FramenetHeads, logger: logging.Logger) -> None:
    """Rule framenet_heads: the head table and the example sentence's maps of the two best heads."""
    import math

    import polars as pl

    from headlab.conditions import PRETRAINED
    from headlab.heads import head_name
    from headlab.io.parquet import write_table
    from headlab.measure.relation_examples import attention_maps, choose_example, example_table
    from headlab.measure.relation_heads import head_table, link_scores, shown_heads, top_threshold
    from headlab.model.engine import head_count, layer_count
    from headlab.model.loading import load_for_job
    from headlab.runtime import progress_bar

    loaded = load_for_job(job.model, job.model_entry, PRETRAINED, None, job.device, job.precision)
    model, tokenizer, spec, where = loaded.model, loaded.tokenizer, loaded.spec, loaded.device
    sentences = pl.read_parquet(job.sentences)
    n_sentences = sentences["sentence_id"].n_unique()
    logger.info(
        "%s: %d links in %d sentences, %d layers x %d heads, device %s",
        job.model,
        sentences.height,
        n_sentences,
        layer_count(model),
        head_count(model),
        where,
    )
    with progress_bar(logger, math.ceil(n_sentences / job.batch_size), f"framenet {job.model}") as bar:
        scored = link_scores(model, tokenizer, sentences, job.batch_size, where, None, bar.update)
    if scored.n_unaligned:
        logger.warning("%d links left out: a span covered no word piece", scored.n_unaligned)
    table = head_table(scored, job.model, job.average_over, job.percentile)
    heads = shown_heads(table)
    for row in table.sort("score", descending=True).head(5).iter_rows(named=True):
        logger.info("%s score %.4f top=%s", head_name(row["layer"], row["head"]), row["score"], row["top"])
    chosen = choose_example(scored, heads, job.example_sentence)
    links = scored.links.filter(pl.col("sentence_id") == chosen)
    first = links.row(0, named=True)
    maps = attention_maps(
        model,
        tokenizer,
        first["text"],
        heads,
        where,
        target=(first["target_start"], first["target_end"]),
        fes=list(zip(links["fe_start"], links["fe_end"], strict=True)),
    )
    logger.info("example %s: %r (heads %s)", chosen, first["text"], heads)
    metadata = {
        "model": job.model,
        "model_source": spec.location,
        "revision": spec.revision,
        "sentences": str(job.sentences),
        "average_over": job.average_over,
        "percentile": job.percentile,
        "threshold": top_threshold(table["score"].to_numpy(), job.percentile),
        "n_links": int(scored.scores.shape[0]),
        "n_unaligned": scored.n_unaligned,
        "device": str(where),
    }
    write_table(table.to_arrow(), job.table, metadata)
    example_rows = example_table(job.model, first, links["fe"].to_list(), maps)
    shown = [head_name(layer, head) for layer, head in heads]
    write_table(example_rows.to_arrow(), job.example, {**metadata, "example": chosen, "heads": shown})


@dataclass(frozen=True)
class Figure3:
    table: Path
    example: Path
    title: str
    percentile: float
    pdf: Path
    log: Path | None = None
    threads: int = 1


def figure3(job: Figure3, logger: logging.Logger) -> None:
    """Rules figure3 and model_figure3: Figure 3 from the framenet_heads tables."""
    import polars as pl

    from headlab.heads import head_name
    from headlab.plots.framenet import plot_figure3

    heads = pl.read_parquet(job.table)
    plot_figure3(heads, pl.read_parquet(job.example), job.pdf, title=job.title, percentile=job.percentile)
    top = heads.filter(pl.col("top")).sort("score", descending=True)
    shown = ", ".join(
        f"{head_name(r['layer'], r['head'])} ({r['score']:.3f})" for r in top.iter_rows(named=True)
    )
    logger.info("plotted %s into %s; top heads: %s", job.table, job.pdf, shown or "none")
