"""Snakemake adapter of rule classify_maps: a pattern class per exported map (rules, or the CNN)."""

from headlab.pattern_jobs import classify_maps_job
from headlab.runtime import job_logger, limit_threads


def main(
    model: str,
    task: str,
    maps: str,
    stats: str,
    thresholds: dict,
    cnn: str | None,
    device: str,
    threads: int,
    output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    classify_maps_job(model, task, maps, stats, thresholds, cnn, device, output, job_logger(log_path))


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p = snakemake.wildcards, snakemake.params
    main(
        w.model,
        w.task,
        snakemake.input.maps,
        snakemake.input.stats,
        dict(p.thresholds),
        snakemake.input.get("cnn"),
        p.device,
        snakemake.threads,
        snakemake.output.table,
        snakemake.log[0],
    )
