"""Snakemake adapter of rule train_pattern_cnn: the paper's 8-layer CNN from hand-labelled maps."""

from headlab.pattern_jobs import train_pattern_cnn_job
from headlab.runtime import job_logger, limit_threads


def main(
    model: str,
    maps: list[str],
    labels: str,
    settings: dict,
    device: str,
    threads: int,
    model_output: str,
    metrics_output: str,
    predictions_output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    train_pattern_cnn_job(
        model,
        maps,
        labels,
        settings,
        device,
        model_output,
        metrics_output,
        predictions_output,
        job_logger(log_path),
    )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    p, out = snakemake.params, snakemake.output
    main(
        snakemake.wildcards.model,
        list(snakemake.input.maps),
        snakemake.input.labels,
        dict(p.settings),
        p.device,
        snakemake.threads,
        out.model,
        out.metrics,
        out.predictions,
        snakemake.log[0],
    )
