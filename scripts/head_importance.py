"""Snakemake adapter of rule head_importance: Michel's importance and every head's attribution estimate.

The job is headlab.jobs.importance.head_importance; its parameters come from the rule by name."""

from headlab.jobs.importance import head_importance
from headlab.runtime import run_job

run_job(head_importance, globals()["snakemake"])
