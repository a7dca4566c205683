"""Snakemake adapter of rule pattern_classes: a pattern class per example x layer x head.

The job is headlab.jobs.patterns.pattern_classes; its parameters come from the rule by name."""

from headlab.jobs.patterns import pattern_classes
from headlab.runtime import run_job

run_job(pattern_classes, globals()["snakemake"])
