"""Jobs of rules/summaries.smk, what a run says: Figures 8 and 9 (and their per-model copies), the
mode-agreement figure, Table 1, the learning check and the claims."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PlotAblation:
    statistics: list[Path]  # sweep_statistics tables (the pooled rows are drawn)
    kind: str  # heads (Figure 8) | layers (Figure 9)
    metrics: dict[str, str]  # task -> metric shown
    title: str
    pdf: Path
    log: Path | None = None
    threads: int = 1


def plot_ablation(job: PlotAblation, logger: logging.Logger) -> None:
    """Rules figure8, figure9, model_figure8, model_figure9: plot the sweep tables."""
    import polars as pl

    from headlab.analysis.ablation_summary import mean_head_deltas
    from headlab.plots.ablation import plot_head_ablation, plot_layer_ablation

    if job.kind not in ("heads", "layers"):
        raise ValueError(f"kind {job.kind!r}: heads (Figure 8) or layers (Figure 9)")
    tables = [pl.read_parquet(path) for path in job.statistics]
    table = pl.concat(tables).filter(pl.col("scope") == "pooled")
    seeds = sorted({int(t["n_seeds"].max()) for t in tables})
    title = f"{job.title}, mean over {'/'.join(map(str, seeds))} seed(s)"
    if job.kind == "heads":
        plot_head_ablation(table, job.metrics, mean_head_deltas(table, job.metrics), job.pdf, title=title)
    else:
        plot_layer_ablation(table, job.metrics, job.pdf, title=title)
    logger.info(
        "plotted %s of %d tables into %s (metrics %s)", job.kind, len(job.statistics), job.pdf, job.metrics
    )


@dataclass(frozen=True)
class Table1:
    scores: list[Path]
    task_metrics: dict[str, list[str]]
    csv: Path
    md: Path
    log: Path | None = None
    threads: int = 1


def table1(job: Table1, logger: logging.Logger) -> None:
    """Rule table1: the paper's Table 1 as CSV and Markdown."""
    import polars as pl

    from headlab.analysis.table1 import table1 as build_table1
    from headlab.analysis.table1 import table1_markdown
    from headlab.io.text import write_csv, write_text

    table = build_table1(pl.concat([pl.read_parquet(path) for path in job.scores]), job.task_metrics)
    write_csv(table, job.csv)
    write_text(table1_markdown(table), job.md)
    logger.info("Table 1 with %d rows written to %s and %s", table.height, job.csv, job.md)


@dataclass(frozen=True)
class LearningCheck:
    predictions: list[Path]  # rule evaluate's, every model, task and seed
    regression_tasks: list[str]
    table: Path
    md: Path
    log: Path | None = None
    threads: int = 1


def learning_check(job: LearningCheck, logger: logging.Logger) -> None:
    """Rule learning_check: does every seed's fine-tuned model beat the best constant prediction and
    the pre-trained encoder by more than two paired standard errors?"""
    import polars as pl

    from headlab.analysis.learning_check import learning_check as check
    from headlab.analysis.learning_check import learning_markdown, task_verdicts
    from headlab.io.parquet import write_table
    from headlab.io.text import write_text

    table = check(pl.concat([pl.read_parquet(path) for path in job.predictions]), set(job.regression_tasks))
    write_table(table.to_arrow(), job.table, {"sources": [str(p) for p in job.predictions]})
    write_text(learning_markdown(table), job.md)
    for model, task, seeds, majority, pretrained, learns in task_verdicts(table).iter_rows():
        logger.info(
            "%s %s: %s (%d/%d seeds beat majority, %d/%d beat pretrained)",
            model,
            task,
            "learns" if learns else "does not clearly learn",
            majority,
            seeds,
            pretrained,
            seeds,
        )


@dataclass(frozen=True)
class Claims:
    model: str  # the primary model (its alias)
    tasks: list[str]
    predictions: list[Path]  # rule evaluate's, every task and seed
    statistics: list[Path]  # sweep_statistics of the first mode, every task
    selections: list[Path]
    attention: list[Path]  # attention_stats of the fine-tuned models, every task and seed
    drift: list[Path]  # attention_drift, every task and seed
    pair_heads: list[str]
    pair_heads_named: bool  # claims.pair_heads_by_model names the model's pair
    metrics: dict[str, str]  # task -> the paper's metric (figures.metric)
    settings: dict[str, Any]  # statistics.*
    claim_settings: dict[str, Any]  # claims.*
    modes: list[str]
    table: Path
    md: Path
    patterns: list[Path] | None = None  # Figure 2's pattern classes, every task
    features: list[Path] | None = None  # feature_attention's tables, both conditions, every task
    token_to_token: list[Path] | None = None
    cls_attention: list[Path] | None = None
    agreement: list[Path] | None = None  # mode_agreement, every task (two modes or more)
    framenet_heads: Path | None = None  # framenet_heads of the model (with a FrameNet folder)
    framenet_sentences: Path | None = None  # framenet_sentences' table
    framenet_effect: Path | None = None  # framenet_effect of the model (with a FrameNet folder)
    framenet_missing: str | None = None  # why there is none
    replication: list[Path] | None = None  # importance_summary's, every task
    screens: list[Path] | None = None
    prunable: list[Path] | None = None
    log: Path | None = None
    threads: int = 1


def claims(job: Claims, logger: logging.Logger) -> None:
    """Rule claims: the paper's claims with our estimates, intervals and verdicts."""
    import polars as pl

    from headlab.analysis.claim_gate import unlearned_tasks
    from headlab.analysis.claim_inputs import ClaimInputs
    from headlab.analysis.claims import claims_markdown, claims_table
    from headlab.analysis.significance import StatisticsSettings
    from headlab.io.atomic import write_atomically
    from headlab.io.parquet import read_metadata, write_table

    def by_task(paths: list[Path], stats: list[str] | None = None) -> dict[str, pl.DataFrame]:
        """task -> every seed's table, with a `seed` column from each file's metadata (only the
        rows of `stats` when given)."""
        frames: dict[str, list[pl.DataFrame]] = {}
        for path in paths:
            seed = read_metadata(path).get("finetune_seed")
            if seed is None:
                raise ValueError(f"{path}: no finetune_seed in its metadata (an older table: delete it)")
            frame = pl.scan_parquet(path)
            if stats is not None:
                frame = frame.filter(pl.col("stat").is_in(stats)).select(
                    "task", "example", "layer", "head", "stat", "value"
                )
            collected = frame.with_columns(pl.lit(int(seed)).alias("seed")).collect()
            frames.setdefault(collected["task"][0], []).append(collected)
        return {task: pl.concat(tables) for task, tables in frames.items()}

    def tables(paths: list[Path] | None) -> dict[str, pl.DataFrame]:
        """task -> the concatenated tables of that task (both conditions where there are two)."""
        frames = [pl.read_parquet(path) for path in paths or []]
        tasks = {frame["task"][0] for frame in frames if frame.height}
        return {task: pl.concat([f for f in frames if f.height and f["task"][0] == task]) for task in tasks}

    def joined(paths: list[Path] | None) -> pl.DataFrame | None:
        return pl.concat([pl.read_parquet(p) for p in paths]) if paths else None

    pooled = [pl.read_parquet(p).filter(pl.col("scope") == "pooled") for p in job.statistics]
    statistics = pl.concat(pooled) if pooled else None
    heads = statistics.filter(pl.col("kind") == "head") if statistics is not None else None
    shape = (
        (int(heads["layer"].max()), int(heads["head"].max())) if heads is not None and heads.height else None
    )
    sentences = (
        pl.read_parquet(job.framenet_sentences, columns=["sentence_id"])["sentence_id"].n_unique()
        if job.framenet_sentences
        else None
    )
    inputs = ClaimInputs(
        model=job.model,
        tasks=list(job.tasks),
        predictions=pl.concat([pl.read_parquet(p) for p in job.predictions]) if job.predictions else None,
        statistics=statistics,
        shape=shape,
        metrics=dict(job.metrics),
        pair_heads_named=job.pair_heads_named,
        patterns=tables(job.patterns),
        features=tables(job.features),
        token_relations=tables(job.token_to_token),
        cls_attention=tables(job.cls_attention),
        framenet_heads=pl.read_parquet(job.framenet_heads) if job.framenet_heads else None,
        framenet_sentences=sentences,
        selection=pl.concat([pl.read_parquet(p) for p in job.selections]) if job.selections else None,
        attention=by_task(job.attention, stats=["cls", "sep", "sep_first", "sep_second", "overlap"]),
        drift=by_task(job.drift),
        pair_heads=list(job.pair_heads),
        agreement=pl.concat([pl.read_parquet(p) for p in job.agreement]) if job.agreement else None,
        modes=list(job.modes),
        framenet_effect=pl.read_parquet(job.framenet_effect) if job.framenet_effect else None,
        framenet_missing=job.framenet_missing,
        agreement_threshold=float(job.claim_settings["agreement_threshold"]),
        no_harm_margin=float(job.claim_settings["no_harm_margin"]),
        settings=StatisticsSettings.of(job.settings),
        replication=joined(job.replication),
        screens=joined(job.screens),
        prunable=joined(job.prunable),
    )
    left_out = unlearned_tasks(inputs)  # the learning check once, for the table and the card
    for task, why in left_out.items():
        logger.warning("%s does not clearly learn (%s): claims on fine-tuned models leave it out", task, why)
    table = claims_table(inputs, left_out)
    write_table(table.to_arrow(), job.table, {"model": job.model, "settings": job.settings})
    card = claims_markdown(table, job.model, left_out)
    write_atomically(job.md, lambda tmp: tmp.write_text(card, encoding="utf-8"))
    for row in table.iter_rows(named=True):
        logger.info("%s: %s (%s)", row["claim_id"], row["verdict"], row["ours"])


@dataclass(frozen=True)
class PlotAgreement:
    statistics: list[Path]  # the primary model's sweep statistics, every task x mode
    agreement: list[Path]  # mode_agreement, every model x task
    metrics: dict[str, str]  # task -> metric shown
    title: str
    table: Path
    pdf: Path
    log: Path | None = None
    threads: int = 1


def plot_agreement(job: PlotAgreement, logger: logging.Logger) -> None:
    """Rule figure_mode_agreement: every agreement table in one, and the primary model's figure."""
    import polars as pl

    from headlab.io.parquet import write_table
    from headlab.plots.agreement import plot_mode_agreement

    agreement = pl.concat([pl.read_parquet(p) for p in job.agreement])
    write_table(agreement.to_arrow(), job.table, {"sources": [str(p) for p in job.agreement]})
    statistics = pl.concat([pl.read_parquet(p) for p in job.statistics])
    plot_mode_agreement(statistics, agreement, job.metrics, job.pdf, job.title)
    logger.info("mode agreement of %d tables plotted into %s", len(job.agreement), job.pdf)
