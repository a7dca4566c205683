# Disabling heads and layers (Sec. 4.6): the full single-head / single-layer sweep per
# model x task x mode, one job per named mask, and the collected tables.


rule ablate_sweep:
    input:
        checkpoint=expand(
            rules.finetune.output.checkpoint, init="pretrained", allow_missing=True
        ),
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("ablation", "ablate"),
    output:
        table="results/{model}/{task}/ablation/{mode}/sweep.parquet",
    log:
        "logs/ablate_sweep/{model}/{task}/{mode}.log",
    benchmark:
        "logs/ablate_sweep/{model}/{task}/{mode}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        max_length=config["max_length"],
        batch_size=config["ablation"]["batch_size"],
        variants_per_pass=config["ablation"]["variants_per_pass"],
        device=config["device"],
    script:
        "../scripts/ablate.py"


rule ablate_mask:
    input:
        checkpoint=expand(
            rules.finetune.output.checkpoint, init="pretrained", allow_missing=True
        ),
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("ablation", "ablate"),
    output:
        table="results/{model}/{task}/ablation/{mode}/mask-{mask}.parquet",
    log:
        "logs/ablate_mask/{model}/{task}/{mode}/{mask}.log",
    benchmark:
        "logs/ablate_mask/{model}/{task}/{mode}/{mask}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        named_mask=named_mask,
        max_length=config["max_length"],
        batch_size=config["ablation"]["batch_size"],
        variants_per_pass=config["ablation"]["variants_per_pass"],
        device=config["device"],
    script:
        "../scripts/ablate.py"


rule collect_ablation:
    input:
        sweeps=expand(
            rules.ablate_sweep.output.table, model=MODELS, task=TASKS, mode=MODES
        ),
        masks=expand(
            rules.ablate_mask.output.table,
            model=MODELS,
            task=TASKS,
            mode=MODES,
            mask=list(MASKS),
        ),
        code=job_code("ablation", "collect_ablation"),
    output:
        table="results/ablation.parquet",
        summary="results/ablation_summary.parquet",
    log:
        "logs/collect_ablation/collect_ablation.log",
    benchmark:
        "logs/collect_ablation/collect_ablation.benchmark.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/collect_ablation.py"
