"""Snakemake adapter of rule parse_task: spaCy tags and parses of one task's dev sentences."""

from headlab.feature_jobs import parse_task_job
from headlab.runtime import job_logger, progress_bar


def main(dev: str, spacy_model: str, verb_pos: list[str], output: str, log_path: str) -> None:
    logger = job_logger(log_path)
    with progress_bar(logger, 0, "parse") as bar:
        parse_task_job(dev, spacy_model, list(verb_pos), output, logger, bar)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    p = snakemake.params
    main(snakemake.input.dev, p.spacy_model, p.verb_pos, snakemake.output.table, snakemake.log[0])
