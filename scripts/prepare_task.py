"""Snakemake adapter of rule prepare_task: one GLUE split into normalised Parquet.

The job is headlab.jobs.data.prepare_task; its parameters come from the rule by name."""

from headlab.jobs.data import prepare_task
from headlab.runtime import run_job

run_job(prepare_task, globals()["snakemake"])
