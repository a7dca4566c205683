"""Snakemake adapter of rule head_means: each head's mean output over a reference sample (mode mean).

The job is headlab.jobs.ablation.head_means; its parameters come from the rule by name."""

from headlab.jobs.ablation import head_means
from headlab.runtime import run_job

run_job(head_means, globals()["snakemake"])
