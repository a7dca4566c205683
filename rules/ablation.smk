# Disabling heads and layers (Sec. 4.6): the full single-head / single-layer sweep per
# model x task x seed x mode, one job per named mask, both with per-example predictions; the
# intervals and tests of every delta over all seeds; and the collected tables.


rule ablate_sweep:
    input:
        checkpoint=expand(
            rules.finetune.output.checkpoint, init="pretrained", allow_missing=True
        ),
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("ablation", "ablate"),
    output:
        table="results/{model}/{task}/seed-{seed}/ablation/{mode}/sweep.parquet",
        predictions="results/{model}/{task}/seed-{seed}/ablation/{mode}/sweep-predictions.parquet",
    log:
        "logs/ablate_sweep/{model}/{task}/seed-{seed}/{mode}.log",
    benchmark:
        "logs/ablate_sweep/{model}/{task}/seed-{seed}/{mode}.benchmark.tsv"
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
        table="results/{model}/{task}/seed-{seed}/ablation/{mode}/mask-{mask}.parquet",
        predictions="results/{model}/{task}/seed-{seed}/ablation/{mode}/mask-{mask}-predictions.parquet",
    log:
        "logs/ablate_mask/{model}/{task}/seed-{seed}/{mode}/{mask}.log",
    benchmark:
        "logs/ablate_mask/{model}/{task}/seed-{seed}/{mode}/{mask}.benchmark.tsv"
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


rule sweep_statistics:
    input:
        sweeps=expand(
            rules.ablate_sweep.output.predictions, seed=SEEDS, allow_missing=True
        ),
        masks=expand(
            rules.ablate_mask.output.predictions,
            seed=SEEDS,
            mask=list(MASKS),
            allow_missing=True,
        ),
        code=job_code("ablation", "sweep_statistics"),
    output:
        statistics="results/{model}/{task}/ablation/{mode}/statistics.parquet",
        selection="results/{model}/{task}/ablation/{mode}/selection.parquet",
    log:
        "logs/sweep_statistics/{model}/{task}/{mode}.log",
    benchmark:
        "logs/sweep_statistics/{model}/{task}/{mode}.benchmark.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        settings=config["statistics"],
    script:
        "../scripts/sweep_statistics.py"


rule collect_ablation:
    input:
        sweeps=expand(
            rules.ablate_sweep.output.table,
            model=MODELS,
            task=TASKS,
            mode=MODES,
            seed=SEEDS,
        ),
        masks=expand(
            rules.ablate_mask.output.table,
            model=MODELS,
            task=TASKS,
            mode=MODES,
            mask=list(MASKS),
            seed=SEEDS,
        ),
        statistics=expand(
            rules.sweep_statistics.output.statistics,
            model=MODELS,
            task=TASKS,
            mode=MODES,
        ),
        selections=expand(
            rules.sweep_statistics.output.selection,
            model=MODELS,
            task=TASKS,
            mode=MODES,
        ),
        code=job_code("ablation", "collect_ablation"),
    output:
        table="results/ablation.parquet",
        summary="results/ablation_summary.parquet",
        all_statistics="results/ablation_statistics.parquet",
        all_selections="results/ablation_selection.parquet",
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
