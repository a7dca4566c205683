"""Snakemake adapter of rule collect_ablation: all disabling results in one table, plus a summary."""

import polars as pl

from headlab.ablation_summary import summarise
from headlab.parquet_io import write_table
from headlab.runtime import job_logger


def main(tables: list[str], table_out: str, summary_out: str, log_path: str) -> None:
    logger = job_logger(log_path)
    rows = pl.concat([pl.read_parquet(path) for path in tables]).unique(maintain_order=True)
    summary = summarise(rows)
    write_table(rows.to_arrow(), table_out, {"sources": tables})
    write_table(summary.to_arrow(), summary_out, {"sources": tables})
    for row in summary.iter_rows(named=True):
        logger.info("%s", row)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    main(
        [*snakemake.input.sweeps, *snakemake.input.masks],
        snakemake.output.table,
        snakemake.output.summary,
        snakemake.log[0],
    )
