"""Snakemake adapter of rule evaluate: Table 1 scores of one model x task.

The job is headlab.jobs.finetune.evaluate; its parameters come from the rule by name."""

from headlab.jobs.finetune import evaluate
from headlab.runtime import run_job

run_job(evaluate, globals()["snakemake"])
