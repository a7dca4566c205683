"""Snakemake adapter of rule figure2: the share of each pattern class per task (Figure 2).

The job is headlab.jobs.patterns.figure2; its parameters come from the rule by name."""

from headlab.jobs.patterns import figure2
from headlab.runtime import run_job

run_job(figure2, globals()["snakemake"])
