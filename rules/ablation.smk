# Disabling heads and layers (Sec. 4.6): the full single-head / single-layer sweep per
# model x task x seed x mode, one job per named mask, both with per-example predictions; the
# intervals and tests of every delta over all seeds; and the collected tables.


rule head_means:
    input:
        checkpoint=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
        ),
        reference=mean_reference_table,
        code=job_code("ablation", "head_means"),
    output:
        table="results/{model}/{task}/seed-{seed}/head_means.parquet",
    log:
        "logs/head_means/{model}/{task}/seed-{seed}.log",
    benchmark:
        "logs/head_means/{model}/{task}/seed-{seed}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=config["ablation"]["mean_reference"],
        max_length=config["max_length"],
        batch_size=config["ablation"]["batch_size"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/head_means.py"


rule ablate_sweep:
    input:
        unpack(means_of_mode),
        checkpoint=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
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
        precision=config["precision"],
    script:
        "../scripts/ablate.py"


rule ablate_mask:
    input:
        unpack(means_of_mode),
        checkpoint=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
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
        precision=config["precision"],
    script:
        "../scripts/ablate.py"


rule framenet_ablation:
    input:
        unpack(means_of_mode),
        checkpoint=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
        ),
        dev="resources/glue/{task}/dev.parquet",
        framenet="results/{model}/framenet.parquet",
        code=job_code("ablation", "ablate"),
    output:
        table="results/{model}/{task}/seed-{seed}/ablation/{mode}/framenet.parquet",
        predictions="results/{model}/{task}/seed-{seed}/ablation/{mode}/framenet-predictions.parquet",
    log:
        "logs/framenet_ablation/{model}/{task}/seed-{seed}/{mode}.log",
    benchmark:
        "logs/framenet_ablation/{model}/{task}/seed-{seed}/{mode}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        random_sets=config["framenet"]["random_sets"],
        max_length=config["max_length"],
        batch_size=config["ablation"]["batch_size"],
        variants_per_pass=config["ablation"]["variants_per_pass"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/ablate.py"


rule framenet_effect:
    input:
        predictions=expand(
            rules.framenet_ablation.output.predictions,
            task=TASKS,
            seed=SEEDS,
            mode=MODES,
            allow_missing=True,
        ),
        framenet="results/{model}/framenet.parquet",
        code=job_code("ablation", "framenet_effect"),
    output:
        table="results/{model}/framenet_effect.parquet",
    log:
        "logs/framenet_effect/{model}.log",
    benchmark:
        "logs/framenet_effect/{model}.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        settings=config["statistics"],
    script:
        "../scripts/framenet_effect.py"


rule mode_agreement:
    input:
        sweeps=expand(
            rules.ablate_sweep.output.predictions,
            seed=SEEDS,
            mode=MODES,
            allow_missing=True,
        ),
        code=job_code("ablation", "mode_agreement"),
    output:
        table="results/{model}/{task}/ablation/agreement.parquet",
    log:
        "logs/mode_agreement/{model}/{task}.log",
    benchmark:
        "logs/mode_agreement/{model}/{task}.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        top_k=config["statistics"]["top_k"],
        settings=config["statistics"],
    script:
        "../scripts/mode_agreement.py"


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
        "../envs/tables.yaml"
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
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/collect_ablation.py"
