"""Snakemake adapter of rule framenet_heads: per-head attention on FrameNet links (Figure 3)."""

from headlab.framenet_heads import framenet_heads_job
from headlab.runtime import job_logger, limit_threads, progress_bar


def main(
    model: str,
    model_entry: dict,
    sentences: str,
    batch_size: int,
    average_over: str,
    percentile: float,
    example: str | None,
    device: str,
    threads: int,
    output: str,
    example_output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    logger = job_logger(log_path)
    with progress_bar(logger, 0, f"framenet {model}") as bar:
        framenet_heads_job(
            model,
            model_entry,
            sentences,
            batch_size,
            average_over,
            percentile,
            example,
            device,
            output,
            example_output,
            logger,
            bar,
        )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    p = snakemake.params
    main(
        snakemake.wildcards.model,
        dict(p.model),
        snakemake.input.sentences,
        p.batch_size,
        p.average_over,
        p.percentile,
        p.example,
        p.device,
        snakemake.threads,
        snakemake.output.table,
        snakemake.output.example,
        snakemake.log[0],
    )
