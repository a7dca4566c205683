"""Snakemake adapter of rules figure8/figure9 (and per-model copies): plot the sweep tables."""

from pathlib import Path

import polars as pl

from headlab.figures import plot_head_ablation, plot_layer_ablation
from headlab.runtime import job_logger

PLOTS = {"heads": plot_head_ablation, "layers": plot_layer_ablation}


def main(
    sweeps: list[str], kind: str, metrics: dict[str, str], title: str, output_pdf: str, log_path: str
) -> None:
    logger = job_logger(log_path)
    table = pl.concat([pl.read_parquet(path) for path in sweeps])
    PLOTS[kind](table, metrics, Path(output_pdf), title=title)
    logger.info("plotted %s of %d tables into %s (metrics %s)", kind, len(sweeps), output_pdf, metrics)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    p = snakemake.params
    main(
        list(snakemake.input.sweeps), p.kind, dict(p.metrics), p.title, snakemake.output.pdf, snakemake.log[0]
    )
