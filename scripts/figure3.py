"""Snakemake adapter of rules figure3 and model_figure3: Figure 3 from the framenet_heads tables.

The job is headlab.jobs.framenet.figure3; its parameters come from the rule by name."""

from headlab.jobs.framenet import figure3
from headlab.runtime import run_job

run_job(figure3, globals()["snakemake"])
