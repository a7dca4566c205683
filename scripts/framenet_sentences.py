"""Snakemake adapter of rule framenet_sentences: FrameNet target-core element links to Parquet.

The job is headlab.jobs.framenet.framenet_sentences; its parameters come from the rule by name."""

from headlab.jobs.framenet import framenet_sentences
from headlab.runtime import run_job

run_job(framenet_sentences, globals()["snakemake"])
