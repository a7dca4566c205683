# The field's sister experiments (Michel et al. 2019; attribution patching): every head's
# importance and first-order disabling estimate from one backward pass per model x task x seed,
# pruning curves in four orders, how well the screens predict the exact sweep, whether the
# effects replicate across seeds, and the figures.


rule head_importance:
    input:
        unpack(means_of_modes),
        checkpoint=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
        ),
        dev="resources/glue/{task}/dev.parquet",
        sample=importance_sample_table,
        code=job_code("importance", "head_importance"),
    output:
        attribution="results/{model}/{task}/seed-{seed}/attribution.parquet",
        importance="results/{model}/{task}/seed-{seed}/importance.parquet",
        importance_examples="results/{model}/{task}/seed-{seed}/importance-examples.parquet",
    log:
        "logs/head_importance/{model}/{task}/seed-{seed}.log",
    benchmark:
        "logs/head_importance/{model}/{task}/seed-{seed}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=config["importance"],
        modes=MODES,
        max_length=config["max_length"],
        batch_size=config["ablation"]["batch_size"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/head_importance.py"


rule pruning_curve:
    input:
        checkpoint=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
        ),
        dev="resources/glue/{task}/dev.parquet",
        sample=importance_sample_table,
        sweep=expand(
            rules.ablate_sweep.output.predictions, mode=DELTA_MODE, allow_missing=True
        ),
        code=job_code("importance", "pruning_curve"),
    output:
        table="results/{model}/{task}/seed-{seed}/pruning.parquet",
        predictions="results/{model}/{task}/seed-{seed}/pruning-predictions.parquet",
    log:
        "logs/pruning_curve/{model}/{task}/seed-{seed}.log",
    benchmark:
        "logs/pruning_curve/{model}/{task}/seed-{seed}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,
    params:
        importance_settings=config["importance"],
        settings=config["pruning"],
        max_length=config["max_length"],
        batch_size=config["ablation"]["batch_size"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/pruning_curve.py"


rule importance_summary:
    input:
        attribution=expand(
            rules.head_importance.output.attribution, seed=SEEDS, allow_missing=True
        ),
        importance_examples=expand(
            rules.head_importance.output.importance_examples,
            seed=SEEDS,
            allow_missing=True,
        ),
        sweeps=expand(
            rules.ablate_sweep.output.predictions,
            seed=SEEDS,
            mode=MODES,
            allow_missing=True,
        ),
        pruning=expand(
            rules.pruning_curve.output.predictions, seed=SEEDS, allow_missing=True
        ),
        code=job_code("importance", "importance_summary"),
    output:
        agreement="results/{model}/{task}/importance/agreement.parquet",
        replication="results/{model}/{task}/importance/replication.parquet",
        pruning_summary="results/{model}/{task}/importance/pruning_summary.parquet",
        prunable="results/{model}/{task}/importance/prunable.parquet",
    log:
        "logs/importance_summary/{model}/{task}.log",
    benchmark:
        "logs/importance_summary/{model}/{task}.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        mode=DELTA_MODE,
        settings=config["statistics"],
        max_cost=config["pruning"]["max_cost"],
    script:
        "../scripts/importance_summary.py"


rule importance_figures:
    input:
        importance=expand(
            rules.head_importance.output.importance,
            model=MODELS,
            task=TASKS,
            seed=SEEDS,
        ),
        attribution=expand(
            rules.head_importance.output.attribution,
            model=MODELS,
            task=TASKS,
            seed=SEEDS,
        ),
        sweeps=expand(
            rules.ablate_sweep.output.predictions,
            model=MODELS,
            task=TASKS,
            seed=SEEDS,
            mode=MODES,
        ),
        agreement=expand(
            rules.importance_summary.output.agreement, model=MODELS, task=TASKS
        ),
        replication=expand(
            rules.importance_summary.output.replication, model=MODELS, task=TASKS
        ),
        pruning_summary=expand(
            rules.importance_summary.output.pruning_summary, model=MODELS, task=TASKS
        ),
        prunable=expand(
            rules.importance_summary.output.prunable, model=MODELS, task=TASKS
        ),
        code=job_code("importance", "importance_figures"),
    output:
        importance_figure=report(
            "results/importance.pdf",
            caption="../report/importance.rst",
            category="Importance",
        ),
        importance_png="results/importance.png",
        attribution_figure=report(
            "results/attribution.pdf",
            caption="../report/attribution.rst",
            category="Importance",
        ),
        attribution_png="results/attribution.png",
        pruning_figure=report(
            "results/pruning.pdf",
            caption="../report/pruning.rst",
            category="Importance",
        ),
        pruning_png="results/pruning.png",
        replication_figure=report(
            "results/replication.pdf",
            caption="../report/replication.rst",
            category="Importance",
        ),
        replication_png="results/replication.png",
        all_importance="results/importance.parquet",
        all_agreement="results/attribution_agreement.parquet",
        all_replication="results/replication.parquet",
        all_pruning="results/pruning.parquet",
        all_prunable="results/prunable.parquet",
    log:
        "logs/importance_figures/importance_figures.log",
    benchmark:
        "logs/importance_figures/importance_figures.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../scripts/importance_figures.py"
