"""Snakemake adapter of rule parse_task: spaCy tags and parses of one task's dev sentences.

The job is headlab.jobs.features.parse_task; its parameters come from the rule by name."""

from headlab.jobs.features import parse_task
from headlab.runtime import run_job

run_job(parse_task, globals()["snakemake"])
