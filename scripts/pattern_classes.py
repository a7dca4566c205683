"""Snakemake adapter of rule pattern_classes: a pattern class per example x layer x head."""

from headlab.pattern_jobs import pattern_classes_job
from headlab.runtime import job_logger, limit_threads, progress_bar


def main(
    model: str,
    task: str,
    variant: str,
    stats: str,
    thresholds: dict,
    cnn: str | None,
    model_entry: dict,
    checkpoint: str | None,
    dev: str | None,
    max_length: int,
    batch_size: int,
    device: str,
    threads: int,
    output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    logger = job_logger(log_path)
    with progress_bar(logger, 0, f"patterns {task}/{variant}") as bar:
        pattern_classes_job(
            model,
            task,
            variant,
            stats,
            thresholds,
            cnn,
            model_entry,
            checkpoint,
            dev,
            max_length,
            batch_size,
            device,
            output,
            logger,
            bar,
        )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p, i = snakemake.wildcards, snakemake.params, snakemake.input
    main(
        w.model,
        w.task,
        w.variant,
        i.stats,
        dict(p.thresholds),
        i.get("cnn"),
        dict(p.model),
        i.get("checkpoint"),
        i.get("dev"),
        p.max_length,
        p.batch_size,
        p.device,
        snakemake.threads,
        snakemake.output.table,
        snakemake.log[0],
    )
