"""Snakemake adapter of rule table1: the paper's Table 1 as CSV and Markdown."""

import polars as pl

from headlab.runtime import job_logger
from headlab.tables import table1, write_table1


def main(scores: list[str], task_metrics: dict[str, list[str]], csv: str, md: str, log_path: str) -> None:
    logger = job_logger(log_path)
    table = table1(pl.concat([pl.read_parquet(path) for path in scores]), task_metrics)
    write_table1(table, csv, md)
    logger.info("Table 1 with %d rows written to %s and %s", table.height, csv, md)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    main(
        list(snakemake.input.scores),
        dict(snakemake.params.task_metrics),
        snakemake.output.csv,
        snakemake.output.md,
        snakemake.log[0],
    )
