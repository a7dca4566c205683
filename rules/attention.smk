# Where attention goes (Sec. 4.1, 4.4, 4.5) and how fine-tuning changes it (Sec. 4.3, Figure 5):
# per-example statistics of the pretrained encoder (once) and of the model fine-tuned from it
# (per fine-tuning seed), the per-head cosine between the two (per seed), and the figure (of
# finetune.analysis_seed).


localrules:
    figure5,
    model_figure5,


rule attention_stats:
    input:
        checkpoint=feature_checkpoint,
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("attention", "attention_stats"),
    output:
        table=analysis_path("attention"),
    log:
        "logs/attention_stats/{model}/{task}/seed-{seed}/{condition}.log",
    benchmark:
        "logs/attention_stats/{model}/{task}/seed-{seed}/{condition}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model_entry=model_entry,
        max_examples=config["attention"]["max_examples"],
        sample_seed=config["attention"]["seed"],
        batch_size=config["attention"]["batch_size"],
        level=config["attention"]["level"],
        max_length=config["max_length"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/attention_stats.py"


# The pretrained encoder's statistics: no checkpoint, no fine-tuning seed, computed once.
use rule attention_stats as pretrained_attention_stats with:
    input:
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("attention", "attention_stats"),
    output:
        table=analysis_path("attention", PRETRAINED),
    log:
        "logs/pretrained_attention_stats/{model}/{task}.log",
    benchmark:
        "logs/pretrained_attention_stats/{model}/{task}.benchmark.tsv"
    params:
        condition=PRETRAINED,


rule attention_drift:
    input:
        checkpoint=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
        ),
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("attention", "attention_drift"),
    output:
        table="results/{model}/{task}/seed-{seed}/drift.parquet",
    log:
        "logs/attention_drift/{model}/{task}/seed-{seed}.log",
    benchmark:
        "logs/attention_drift/{model}/{task}/seed-{seed}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model_entry=model_entry,
        max_examples=config["attention"]["max_examples"],
        sample_seed=config["attention"]["seed"],
        batch_size=config["attention"]["batch_size"],
        max_length=config["max_length"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/attention_drift.py"


rule model_figure5:
    input:
        tables=expand(
            rules.attention_drift.output.table,
            task=TASKS,
            seed=ANALYSIS_SEED,
            allow_missing=True,
        ),
        code=job_code("attention", "plot_drift"),
    output:
        pdf=report(
            "results/{model}/figure5.pdf",
            caption="../report/figure5.rst",
            category="4.3 Change after fine-tuning",
        ),
        png="results/{model}/figure5.png",
    log:
        "logs/model_figure5/{model}.log",
    benchmark:
        "logs/model_figure5/{model}.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_drift.py"


use rule model_figure5 as figure5 with:
    input:
        tables=expand(
            rules.attention_drift.output.table,
            model=PRIMARY_MODEL,
            task=TASKS,
            seed=ANALYSIS_SEED,
        ),
        code=job_code("attention", "plot_drift"),
    output:
        pdf=report(
            "results/figure5.pdf",
            caption="../report/figure5.rst",
            category="4.3 Change after fine-tuning",
        ),
        png="results/figure5.png",
    log:
        "logs/figure5/figure5.log",
    benchmark:
        "logs/figure5/figure5.benchmark.tsv"
