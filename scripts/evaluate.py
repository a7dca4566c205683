"""Snakemake adapter of rule evaluate: Table 1 scores of one model x task."""

from headlab.runtime import job_logger, limit_threads
from headlab.stages import evaluate_job


def main(
    model: str,
    model_entry: dict,
    task: str,
    dev: str,
    checkpoints: dict[str, str],
    max_length: int,
    batch_size: int,
    seed: int,
    device: str,
    threads: int,
    output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    evaluate_job(
        model,
        model_entry,
        task,
        dev,
        checkpoints,
        max_length,
        batch_size,
        device,
        seed,
        output,
        job_logger(log_path),
    )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p, i = snakemake.wildcards, snakemake.params, snakemake.input
    checkpoints = {"finetuned-random": i.random[0], "finetuned-pretrained": i.pretrained[0]}
    main(
        w.model,
        p.model,
        w.task,
        i.dev,
        checkpoints,
        p.max_length,
        p.batch_size,
        p.seed,
        p.device,
        snakemake.threads,
        snakemake.output.scores,
        snakemake.log[0],
    )
