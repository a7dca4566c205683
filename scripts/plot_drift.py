"""Snakemake adapter of rules figure5 and model_figure5: Figure 5 from the drift tables.

The job is headlab.jobs.attention.plot_drift; its parameters come from the rule by name."""

from headlab.jobs.attention import plot_drift
from headlab.runtime import run_job

run_job(plot_drift, globals()["snakemake"])
