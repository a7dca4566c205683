"""Snakemake adapter of rule run_report: the report of a run, results/report/README.md and its PNGs.

The job is headlab.jobs.report.run_report; its parameters come from the rule by name."""

from headlab.jobs.report import run_report
from headlab.runtime import run_job

run_job(run_report, globals()["snakemake"])
