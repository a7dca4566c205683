"""Snakemake adapter of rule classify_maps: a pattern class per exported map (rules, or the CNN).

The job is headlab.jobs.patterns.classify_maps; its parameters come from the rule by name."""

from headlab.jobs.patterns import classify_maps
from headlab.runtime import run_job

run_job(classify_maps, globals()["snakemake"])
