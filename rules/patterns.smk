# Self-attention pattern classes (Sec. 4.1, Figures 1 and 2): a seeded sample of maps of the
# fine-tuned models to annotate (per fine-tuning seed), the paper's CNN trained on the labelled
# maps (when patterns.labels is set), a class per head map (the CNN, else transparent rules on
# the attention statistics), and the figures (of finetune.analysis_seed).


localrules:
    figure1,
    figure2,


rule export_maps:
    input:
        checkpoint=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
        ),
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("patterns", "export_maps"),
    output:
        maps="results/{model}/{task}/seed-{seed}/maps/maps.parquet",
        stats="results/{model}/{task}/seed-{seed}/maps/stats.parquet",
        png=directory("results/{model}/{task}/seed-{seed}/maps/png"),
    log:
        "logs/export_maps/{model}/{task}/seed-{seed}.log",
    benchmark:
        "logs/export_maps/{model}/{task}/seed-{seed}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        maps_per_task=config["patterns"]["maps_per_task"],
        size=config["patterns"]["map_size"],
        sample_seed=config["patterns"]["seed"],
        max_length=config["max_length"],
        batch_size=config["patterns"]["batch_size"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/export_maps.py"


rule train_pattern_cnn:
    input:
        maps=expand(
            rules.export_maps.output.maps,
            task=TASKS,
            seed=ANALYSIS_SEED,
            allow_missing=True,
        ),
        labels=pattern_labels,
        code=job_code("patterns", "train_pattern_cnn"),
    output:
        cnn="results/{model}/pattern_cnn/model.pt",
        metrics="results/{model}/pattern_cnn/metrics.parquet",
        predictions="results/{model}/pattern_cnn/predictions.parquet",
    log:
        "logs/train_pattern_cnn/{model}.log",
    benchmark:
        "logs/train_pattern_cnn/{model}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        settings=config["patterns"]["cnn"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/train_pattern_cnn.py"


rule classify_maps:
    input:
        unpack(pattern_cnn_model),
        maps=rules.export_maps.output.maps,
        stats=rules.export_maps.output.stats,
        code=job_code("patterns", "classify_maps"),
    output:
        table="results/{model}/{task}/seed-{seed}/maps/classes.parquet",
    log:
        "logs/classify_maps/{model}/{task}/seed-{seed}.log",
    benchmark:
        "logs/classify_maps/{model}/{task}/seed-{seed}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        thresholds=config["patterns"]["thresholds"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/classify_maps.py"


rule pattern_classes:
    input:
        unpack(pattern_cnn_inputs),
        stats=rules.attention_stats.output.table,
        code=job_code("patterns", "pattern_classes"),
    output:
        table=analysis_path("patterns"),
    log:
        "logs/pattern_classes/{model}/{task}/seed-{seed}/{condition}.log",
    benchmark:
        "logs/pattern_classes/{model}/{task}/seed-{seed}/{condition}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        model_entry=model_entry,
        thresholds=config["patterns"]["thresholds"],
        max_length=config["max_length"],
        batch_size=config["patterns"]["batch_size"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/pattern_classes.py"


# The pretrained encoder's classes (patterns.condition: pretrained): no checkpoint, no seed.
use rule pattern_classes as pretrained_pattern_classes with:
    input:
        unpack(pretrained_pattern_cnn_inputs),
        stats=rules.pretrained_attention_stats.output.table,
        code=job_code("patterns", "pattern_classes"),
    output:
        table=analysis_path("patterns", PRETRAINED),
    log:
        "logs/pretrained_pattern_classes/{model}/{task}.log",
    benchmark:
        "logs/pretrained_pattern_classes/{model}/{task}.benchmark.tsv"
    params:
        condition=PRETRAINED,


rule figure1:
    input:
        maps=expand(
            rules.export_maps.output.maps,
            model=PRIMARY_MODEL,
            task=TASKS,
            seed=ANALYSIS_SEED,
        ),
        classes=expand(
            rules.classify_maps.output.table,
            model=PRIMARY_MODEL,
            task=TASKS,
            seed=ANALYSIS_SEED,
        ),
        code=job_code("patterns", "figure1"),
    output:
        pdf=report(
            "results/figure1.pdf",
            caption="../report/figure1.rst",
            category="4.1 Attention patterns",
        ),
        png="results/figure1.png",
    log:
        "logs/figure1/figure1.log",
    benchmark:
        "logs/figure1/figure1.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        title=f"{PRIMARY_MODEL} (seed {ANALYSIS_SEED}): typical self-attention map of each class",
    script:
        "../scripts/figure1.py"


rule figure2:
    input:
        tables=expand(
            analysis_path("patterns", config["patterns"]["condition"], ANALYSIS_SEED),
            model=PRIMARY_MODEL,
            task=TASKS,
        ),
        code=job_code("patterns", "figure2"),
    output:
        pdf=report(
            "results/figure2.pdf",
            caption="../report/figure2.rst",
            category="4.1 Attention patterns",
        ),
        png="results/figure2.png",
    log:
        "logs/figure2/figure2.log",
    benchmark:
        "logs/figure2/figure2.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        title=f"{PRIMARY_MODEL} (seed {ANALYSIS_SEED}): self-attention classes per task ({config['patterns']['condition']})",
    script:
        "../scripts/figure2.py"
