"""Snakemake adapter of rule framenet_heads: per-head attention on FrameNet links (Figure 3).

The job is headlab.jobs.framenet.framenet_heads; its parameters come from the rule by name."""

from headlab.jobs.framenet import framenet_heads
from headlab.runtime import run_job

run_job(framenet_heads, globals()["snakemake"])
