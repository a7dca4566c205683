"""Snakemake adapter of rule attention_stats: per-example attention statistics of one variant."""

from headlab.attention_jobs import attention_stats_job
from headlab.runtime import job_logger, limit_threads


def main(
    model: str,
    model_entry: dict,
    task: str,
    variant: str,
    dev: str,
    checkpoint: str | None,
    max_examples: int | None,
    seed: int,
    batch_size: int,
    level: str,
    max_length: int,
    device: str,
    threads: int,
    output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    attention_stats_job(
        model,
        model_entry,
        task,
        variant,
        dev,
        checkpoint,
        max_examples,
        seed,
        batch_size,
        level,
        max_length,
        device,
        output,
        job_logger(log_path),
    )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p = snakemake.wildcards, snakemake.params
    checkpoints = list(snakemake.input.get("checkpoint", []))
    main(
        w.model,
        dict(p.model_entry),
        w.task,
        w.variant,
        snakemake.input.dev,
        checkpoints[0] if checkpoints else None,
        p.max_examples,
        p.seed,
        p.batch_size,
        p.level,
        p.max_length,
        p.device,
        snakemake.threads,
        snakemake.output.table,
        snakemake.log[0],
    )
