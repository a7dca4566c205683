"""Snakemake adapter of rules figure3 and model_figure3: Figure 3 from the framenet_heads tables."""

from pathlib import Path

import polars as pl

from headlab.figures_framenet import plot_figure3
from headlab.runtime import job_logger


def main(table: str, example: str, title: str, percentile: float, output_pdf: str, log_path: str) -> None:
    logger = job_logger(log_path)
    heads = pl.read_parquet(table)
    plot_figure3(heads, pl.read_parquet(example), Path(output_pdf), title=title, percentile=percentile)
    top = heads.filter(pl.col("top")).sort("score", descending=True)
    shown = ", ".join(f"L{r['layer']}-H{r['head']} ({r['score']:.3f})" for r in top.iter_rows(named=True))
    logger.info("plotted %s into %s; top heads: %s", table, output_pdf, shown or "none")


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    p = snakemake.params
    main(
        snakemake.input.table,
        snakemake.input.example,
        p.title,
        p.percentile,
        snakemake.output.pdf,
        snakemake.log[0],
    )
