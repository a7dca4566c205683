"""Snakemake adapter of rules figure8/figure9 (and per-model copies): plot the sweep tables.

The job is headlab.jobs.summaries.plot_ablation; its parameters come from the rule by name."""

from headlab.jobs.summaries import plot_ablation
from headlab.runtime import run_job

run_job(plot_ablation, globals()["snakemake"])
