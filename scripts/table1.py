"""Snakemake adapter of rule table1: the paper's Table 1 as CSV and Markdown.

The job is headlab.jobs.summaries.table1; its parameters come from the rule by name."""

from headlab.jobs.summaries import table1
from headlab.runtime import run_job

run_job(table1, globals()["snakemake"])
