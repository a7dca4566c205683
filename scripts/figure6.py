"""Snakemake adapter of rules figure6 and model_figure6: attention to [SEP], [CLS] and linguistic features."""

from headlab.feature_jobs import figure6_job
from headlab.runtime import job_logger


def main(
    features: list[str], tasks: list[str], label: str, pdf: str, features_pdf: str, log_path: str
) -> None:
    figure6_job(features, tasks, label, pdf, features_pdf, job_logger(log_path))


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    p = snakemake.params
    main(
        list(snakemake.input.features),
        list(p.tasks),
        p.label,
        snakemake.output.pdf,
        snakemake.output.features_pdf,
        snakemake.log[0],
    )
