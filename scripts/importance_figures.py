"""Snakemake adapter of rule importance_figures: the collected importance tables and their four figures.

The job is headlab.jobs.importance.importance_figures; its parameters come from the rule by name."""

from headlab.jobs.importance import importance_figures
from headlab.runtime import run_job

run_job(importance_figures, globals()["snakemake"])
