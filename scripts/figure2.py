"""Snakemake adapter of rule figure2: the share of each pattern class per task (Figure 2)."""

import polars as pl

from headlab.figures_patterns import plot_figure2
from headlab.runtime import job_logger


def main(tables: list[str], title: str, output_pdf: str, log_path: str) -> None:
    logger = job_logger(log_path)
    patterns = pl.concat([pl.read_parquet(p) for p in tables])
    plot_figure2(patterns, output_pdf, title=title)
    shares = patterns.group_by("task", "pattern").len().sort("task", "pattern")
    logger.info("plotted %s into %s: %s", tables, output_pdf, shares.rows())


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    main(list(snakemake.input.tables), snakemake.params.title, snakemake.output.pdf, snakemake.log[0])
