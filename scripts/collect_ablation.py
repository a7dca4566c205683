"""Snakemake adapter of rule collect_ablation: all disabling results in one table, plus a summary.

The job is headlab.jobs.ablation.collect_ablation; its parameters come from the rule by name."""

from headlab.jobs.ablation import collect_ablation
from headlab.runtime import run_job

run_job(collect_ablation, globals()["snakemake"])
