"""Snakemake adapter of rule attention_drift: pretrained vs fine-tuned attention per head (Figure 5).

The job is headlab.jobs.attention.attention_drift; its parameters come from the rule by name."""

from headlab.jobs.attention import attention_drift
from headlab.runtime import run_job

run_job(attention_drift, globals()["snakemake"])
