"""Snakemake adapter of rule figure1: one typical attention map per pattern class (Figure 1).

The job is headlab.jobs.patterns.figure1; its parameters come from the rule by name."""

from headlab.jobs.patterns import figure1
from headlab.runtime import run_job

run_job(figure1, globals()["snakemake"])
