"""Snakemake adapter of rule importance_summary: screens against the sweep, replication, pruning intervals.

The job is headlab.jobs.importance.importance_summary; its parameters come from the rule by name."""

from headlab.jobs.importance import importance_summary
from headlab.runtime import run_job

run_job(importance_summary, globals()["snakemake"])
