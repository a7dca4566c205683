"""Snakemake adapter of rule train_pattern_cnn: the paper's 8-layer CNN from hand-labelled maps.

The job is headlab.jobs.patterns.train_pattern_cnn; its parameters come from the rule by name."""

from headlab.jobs.patterns import train_pattern_cnn
from headlab.runtime import run_job

run_job(train_pattern_cnn, globals()["snakemake"])
