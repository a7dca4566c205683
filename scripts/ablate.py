"""Snakemake adapter of rules ablate_sweep and ablate_mask: scores with heads disabled.

The job is headlab.jobs.ablation.ablate; its parameters come from the rule by name."""

from headlab.jobs.ablation import ablate
from headlab.runtime import run_job

run_job(ablate, globals()["snakemake"])
