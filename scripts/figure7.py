"""Snakemake adapter of rules figure7 and model_figure7: final-layer [CLS] attention and token pairs.

The job is headlab.jobs.features.figure7; its parameters come from the rule by name."""

from headlab.jobs.features import figure7
from headlab.runtime import run_job

run_job(figure7, globals()["snakemake"])
