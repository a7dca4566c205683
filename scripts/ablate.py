"""Snakemake adapter of rules ablate_sweep and ablate_mask: scores with heads disabled."""

from headlab.runtime import job_logger, limit_threads
from headlab.stages import ablate_job


def main(
    model: str,
    task: str,
    checkpoint: str,
    dev: str,
    mode: str,
    named_mask: list | None,
    max_length: int,
    batch_size: int,
    variants_per_pass: int,
    device: str,
    threads: int,
    output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    mask = (named_mask[0], list(named_mask[1])) if named_mask else None
    ablate_job(
        model,
        task,
        checkpoint,
        dev,
        mode,
        mask,
        max_length,
        batch_size,
        variants_per_pass,
        device,
        output,
        job_logger(log_path),
    )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p = snakemake.wildcards, snakemake.params
    main(
        w.model,
        w.task,
        snakemake.input.checkpoint[0],
        snakemake.input.dev,
        w.mode,
        p.get("named_mask"),
        p.max_length,
        p.batch_size,
        p.variants_per_pass,
        p.device,
        snakemake.threads,
        snakemake.output.table,
        snakemake.log[0],
    )
