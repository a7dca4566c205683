"""Snakemake adapter of rule sweep_statistics: intervals, tests and best-head estimates of one sweep.

The job is headlab.jobs.ablation.sweep_statistics; its parameters come from the rule by name."""

from headlab.jobs.ablation import sweep_statistics
from headlab.runtime import run_job

run_job(sweep_statistics, globals()["snakemake"])
