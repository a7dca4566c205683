"""Snakemake adapter of rule export_maps: a seeded sample of attention maps, downsampled, with PNGs."""

from headlab.pattern_jobs import export_maps_job
from headlab.runtime import job_logger, limit_threads, progress_bar


def main(
    model: str,
    task: str,
    checkpoint: str,
    dev: str,
    count: int,
    size: int,
    seed: int,
    max_length: int,
    batch_size: int,
    device: str,
    threads: int,
    maps_output: str,
    png_dir: str,
    stats_output: str,
    log_path: str,
) -> None:
    limit_threads(threads)
    logger = job_logger(log_path)
    with progress_bar(logger, 0, f"export maps {task}") as bar:
        export_maps_job(
            model,
            task,
            checkpoint,
            dev,
            count,
            size,
            seed,
            max_length,
            batch_size,
            device,
            maps_output,
            png_dir,
            stats_output,
            logger,
            bar,
        )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    w, p, out = snakemake.wildcards, snakemake.params, snakemake.output
    main(
        w.model,
        w.task,
        snakemake.input.checkpoint[0],
        snakemake.input.dev,
        p.maps_per_task,
        p.size,
        p.seed,
        p.max_length,
        p.batch_size,
        p.device,
        snakemake.threads,
        out.maps,
        out.png,
        out.stats,
        snakemake.log[0],
    )
