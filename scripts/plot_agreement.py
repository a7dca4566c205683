"""Snakemake adapter of rule figure_mode_agreement: the agreement table and figure.

The job is headlab.jobs.summaries.plot_agreement; its parameters come from the rule by name."""

from headlab.jobs.summaries import plot_agreement
from headlab.runtime import run_job

run_job(plot_agreement, globals()["snakemake"])
