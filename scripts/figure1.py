"""Snakemake adapter of rule figure1: one typical attention map per pattern class (Figure 1)."""

import polars as pl

from headlab.figures_patterns import plot_figure1
from headlab.runtime import job_logger


def main(maps: list[str], classes: list[str], title: str, output_pdf: str, log_path: str) -> None:
    logger = job_logger(log_path)
    maps_table = pl.concat([pl.read_parquet(p) for p in maps])
    classes_table = pl.concat([pl.read_parquet(p) for p in classes])
    plot_figure1(maps_table, classes_table, output_pdf, title=title)
    logger.info(
        "plotted %d maps (%d classified) into %s", maps_table.height, classes_table.height, output_pdf
    )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    main(
        list(snakemake.input.maps),
        list(snakemake.input.classes),
        snakemake.params.title,
        snakemake.output.pdf,
        snakemake.log[0],
    )
