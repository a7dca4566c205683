"""Jobs of rules/figures.smk: Figures 8 and 9 (and their per-model copies) and Table 1."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PlotAblation:
    sweeps: list[Path]
    kind: str  # heads (Figure 8) | layers (Figure 9)
    metrics: dict[str, str]  # task -> metric shown
    title: str
    pdf: Path
    png: Path  # written beside the PDF by the plotting function
    log: Path | None = None
    model: str | None = None  # wildcards of the per-model copies
    mode: str | None = None
    threads: int = 1


def plot_ablation(job: PlotAblation, logger: logging.Logger) -> None:
    """Rules figure8, figure9, model_figure8, model_figure9: plot the sweep tables."""
    import polars as pl

    from headlab.plots.ablation import plot_head_ablation, plot_layer_ablation

    plots = {"heads": plot_head_ablation, "layers": plot_layer_ablation}
    table = pl.concat([pl.read_parquet(path) for path in job.sweeps])
    plots[job.kind](table, job.metrics, job.pdf, title=job.title)
    logger.info(
        "plotted %s of %d tables into %s (metrics %s)", job.kind, len(job.sweeps), job.pdf, job.metrics
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

    from headlab.plots.table1 import table1 as build_table1
    from headlab.plots.table1 import write_table1

    table = build_table1(pl.concat([pl.read_parquet(path) for path in job.scores]), job.task_metrics)
    write_table1(table, job.csv, job.md)
    logger.info("Table 1 with %d rows written to %s and %s", table.height, job.csv, job.md)
