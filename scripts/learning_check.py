"""Snakemake adapter of rule learning_check: does each fine-tuned model beat the best constant
prediction and the pre-trained encoder by more than two paired standard errors?

The job is headlab.jobs.summaries.learning_check; its parameters come from the rule by name."""

from headlab.jobs.summaries import learning_check
from headlab.runtime import run_job

run_job(learning_check, globals()["snakemake"])
