"""Snakemake adapter of rule pruning_curve: the dev score as heads are removed, in four orders.

The job is headlab.jobs.importance.pruning_curve; its parameters come from the rule by name."""

from headlab.jobs.importance import pruning_curve
from headlab.runtime import run_job

run_job(pruning_curve, globals()["snakemake"])
