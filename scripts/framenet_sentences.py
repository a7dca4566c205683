"""Snakemake adapter of rule framenet_sentences: FrameNet target-core element links to Parquet."""

from headlab.framenet import framenet_sentences_job
from headlab.runtime import job_logger, progress_bar


def main(
    corpus_dir: str,
    max_sentence_tokens: int,
    max_fe_tokens: int,
    min_distance: int,
    output: str,
    log_path: str,
) -> None:
    logger = job_logger(log_path)
    logger.info("reading FrameNet from %s", corpus_dir)
    with progress_bar(logger, 0, "FrameNet LUs") as bar:
        framenet_sentences_job(
            corpus_dir, max_sentence_tokens, max_fe_tokens, min_distance, output, logger, bar
        )


if __name__ == "__main__":
    snakemake = globals()["snakemake"]
    p = snakemake.params
    main(
        snakemake.input.corpus,
        p.max_sentence_tokens,
        p.max_fe_tokens,
        p.min_distance,
        snakemake.output.table,
        snakemake.log[0],
    )
