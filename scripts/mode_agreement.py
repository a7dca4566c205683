"""Snakemake adapter of rule mode_agreement.

The job is headlab.jobs.ablation.mode_agreement; its parameters come from the rule by name."""

from headlab.jobs.ablation import mode_agreement
from headlab.runtime import run_job

run_job(mode_agreement, globals()["snakemake"])
