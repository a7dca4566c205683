"""Snakemake adapter of rule feature_attention: attention to linguistic features, token pairs, [CLS]."""

from headlab.feature_jobs import feature_attention_job
from headlab.runtime import job_logger, limit_threads, progress_bar


def main(
    model: str,
    model_entry: dict,
    task: str,
    variant: str,
    dev: str,
    parsed: str,
    checkpoint: str | None,
    max_length: int,
    batch_size: int,
    level: str,
    max_examples: int | None,
    seed: int,
    device: str,
    threads: int,
    outputs: dict[str, str],
    log_path: str,
) -> None:
    limit_threads(threads)
    logger = job_logger(log_path)
    with progress_bar(logger, 0, f"features {task}/{variant}") as bar:
        feature_attention_job(
            model,
            model_entry,
            task,
            variant,
            dev,
            parsed,
            checkpoint,
            max_length,
            batch_size,
            level,
            max_examples,
            seed,
            device,
            outputs,
            logger,
            bar,
        )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p, out = snakemake.wildcards, snakemake.params, snakemake.output
    checkpoints = list(snakemake.input.get("checkpoint", []) or [])
    main(
        w.model,
        dict(p.model),
        w.task,
        w.variant,
        snakemake.input.dev,
        snakemake.input.parsed,
        checkpoints[0] if checkpoints else None,
        p.max_length,
        p.batch_size,
        p.level,
        p.max_examples,
        p.seed,
        p.device,
        snakemake.threads,
        {"features": out.features, "token_to_token": out.token_to_token, "cls_attention": out.cls_attention},
        snakemake.log[0],
    )
