"""Snakemake adapter of rule prepare_task: one GLUE split into normalised Parquet."""

from headlab.glue_data import prepare_split
from headlab.runtime import job_logger


def main(task: str, split: str, data: dict, output: str, log_path: str) -> None:
    prepare_split(
        task_name=task,
        split=split,
        source=data["source"],
        data_dir=data["local_dir"],
        file_overrides=data["files"],
        cap=data["cap"],
        seed=data["seed"],
        hub_revision=data["hub_revision"],
        output=output,
        log=job_logger(log_path),
    )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    main(
        snakemake.wildcards.task,
        snakemake.wildcards.split,
        snakemake.params.data,
        snakemake.output.table,
        snakemake.log[0],
    )
