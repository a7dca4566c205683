"""Snakemake adapter of rules figure8/figure9 (and per-model copies): plot the sweep tables.

The job is headlab.jobs.figures.plot_ablation; its parameters come from the rule by name."""

from headlab.jobs.figures import plot_ablation
from headlab.runtime import run_job

run_job(plot_ablation, globals()["snakemake"])
