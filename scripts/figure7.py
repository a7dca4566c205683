"""Snakemake adapter of rules figure7 and model_figure7: final-layer [CLS] attention and token pairs."""

from headlab.feature_jobs import figure7_job
from headlab.runtime import job_logger


def main(cls: list[str], tokens: list[str], tasks: list[str], label: str, pdf: str, log_path: str) -> None:
    figure7_job(cls, tokens, tasks, label, pdf, job_logger(log_path))


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    p = snakemake.params
    main(
        list(snakemake.input.cls),
        list(snakemake.input.tokens),
        list(p.tasks),
        p.label,
        snakemake.output.pdf,
        snakemake.log[0],
    )
