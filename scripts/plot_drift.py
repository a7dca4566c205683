"""Snakemake adapter of rules figure5 and model_figure5: Figure 5 from the drift tables."""

import polars as pl

from headlab.figures_attention import plot_drift
from headlab.runtime import job_logger


def main(tables: list[str], output_pdf: str, log_path: str) -> None:
    logger = job_logger(log_path)
    drift = pl.concat([pl.read_parquet(path) for path in tables])
    plot_drift(drift, output_pdf)
    lowest = drift.sort("cosine_mean").head(5)
    shown = ", ".join(
        f"{r['task']} L{r['layer']}-H{r['head']} ({r['cosine_mean']:.3f})"
        for r in lowest.iter_rows(named=True)
    )
    logger.info("plotted %d drift tables into %s; most changed heads: %s", len(tables), output_pdf, shown)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    main(list(snakemake.input.tables), snakemake.output.pdf, snakemake.log[0])
