"""Snakemake adapter of rule finetune: fine-tune one model x task x init, save the checkpoint.

The job is headlab.jobs.finetune.finetune; its parameters come from the rule by name."""

from headlab.jobs.finetune import finetune
from headlab.runtime import run_job

run_job(finetune, globals()["snakemake"])
