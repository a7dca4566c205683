"""Snakemake adapter of rule framenet_effect.

The job is headlab.jobs.ablation.framenet_effect; its parameters come from the rule by name."""

from headlab.jobs.ablation import framenet_effect
from headlab.runtime import run_job

run_job(framenet_effect, globals()["snakemake"])
