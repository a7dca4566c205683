# headlab: "Revealing the Dark Secrets of BERT" (Kovaleva et al., EMNLP 2019) as a workflow.
# This file is the table of contents; the rules live in rules/, the logic in scripts/headlab/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/finetune.smk"
include: "rules/ablation.smk"
include: "rules/attention.smk"
include: "rules/importance.smk"
include: "rules/summaries.smk"
include: "rules/report.smk"
include: "rules/framenet.smk"
include: "rules/features.smk"
include: "rules/patterns.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
