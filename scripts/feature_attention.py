"""Snakemake adapter of rule feature_attention: attention to linguistic features, token pairs, [CLS].

The job is headlab.jobs.features.feature_attention; its parameters come from the rule by name."""

from headlab.jobs.features import feature_attention
from headlab.runtime import run_job

run_job(feature_attention, globals()["snakemake"])
