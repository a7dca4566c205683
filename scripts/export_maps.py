"""Snakemake adapter of rule export_maps: a seeded sample of attention maps, downsampled, with PNGs.

The job is headlab.jobs.patterns.export_maps; its parameters come from the rule by name."""

from headlab.jobs.patterns import export_maps
from headlab.runtime import run_job

run_job(export_maps, globals()["snakemake"])
