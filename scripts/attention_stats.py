"""Snakemake adapter of rule attention_stats: per-example attention statistics of one condition.

The job is headlab.jobs.attention.attention_stats; its parameters come from the rule by name."""

from headlab.jobs.attention import attention_stats
from headlab.runtime import run_job

run_job(attention_stats, globals()["snakemake"])
