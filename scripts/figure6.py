"""Snakemake adapter of rules figure6 and model_figure6: attention to [SEP], [CLS] and linguistic features.

The job is headlab.jobs.features.figure6; its parameters come from the rule by name."""

from headlab.jobs.features import figure6
from headlab.runtime import run_job

run_job(figure6, globals()["snakemake"])
