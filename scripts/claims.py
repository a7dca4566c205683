"""Snakemake adapter of rule claims: the paper's claims with our estimates and verdicts.

The job is headlab.jobs.summaries.claims; its parameters come from the rule by name."""

from headlab.jobs.summaries import claims
from headlab.runtime import run_job

run_job(claims, globals()["snakemake"])
