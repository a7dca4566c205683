"""Snakemake adapter of rule table1: the paper's Table 1 as CSV and Markdown.

The job is headlab.jobs.figures.table1; its parameters come from the rule by name."""

from headlab.jobs.figures import table1
from headlab.runtime import run_job

run_job(table1, globals()["snakemake"])
