"""Snakemake adapter of rule attention_drift: pretrained vs fine-tuned attention per head (Figure 5)."""

from headlab.attention_jobs import attention_drift_job
from headlab.runtime import job_logger, limit_threads


def main(
    model: str,
    model_entry: dict,
    task: str,
    dev: str,
    checkpoint: str,
    max_examples: int | None,
    seed: int,
    batch_size: int,
    max_length: int,
    device: str,
    threads: int,
    output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    attention_drift_job(
        model,
        model_entry,
        task,
        dev,
        checkpoint,
        max_examples,
        seed,
        batch_size,
        max_length,
        device,
        output,
        job_logger(log_path),
    )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p = snakemake.wildcards, snakemake.params
    main(
        w.model,
        dict(p.model_entry),
        w.task,
        snakemake.input.dev,
        snakemake.input.checkpoint[0],
        p.max_examples,
        p.seed,
        p.batch_size,
        p.max_length,
        p.device,
        snakemake.threads,
        snakemake.output.table,
        snakemake.log[0],
    )
