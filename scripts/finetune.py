"""Snakemake adapter of rule finetune: fine-tune one model x task x init, save the checkpoint."""

from headlab.finetune import TrainingSettings
from headlab.runtime import job_logger, limit_threads
from headlab.stages import finetune_job


def main(
    model: str,
    model_entry: dict,
    task: str,
    init: str,
    train: str,
    settings: dict,
    max_length: int,
    device: str,
    threads: int,
    checkpoint: str,
    training_log: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    finetune_job(
        model,
        model_entry,
        task,
        init,
        train,
        TrainingSettings(**settings),
        max_length,
        device,
        checkpoint,
        training_log,
        job_logger(log_path),
    )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p = snakemake.wildcards, snakemake.params
    main(
        w.model,
        p.model,
        w.task,
        w.init,
        snakemake.input.train,
        dict(p.settings),
        p.max_length,
        p.device,
        snakemake.threads,
        snakemake.output.checkpoint,
        snakemake.output.training_log,
        snakemake.log[0],
    )
