# Where attention goes (Sec. 4.1, 4.4, 4.5) and how fine-tuning changes it (Sec. 4.3, Figure 5):
# per-example statistics of the pretrained and the fine-tuned model, the per-head cosine between
# the two, and the figure.


localrules:
    figure5,
    model_figure5,


rule attention_stats:
    input:
        checkpoint=feature_checkpoint,
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("attention", "attention_stats"),
    output:
        table="results/{model}/{task}/attention/{variant}.parquet",
    log:
        "logs/attention_stats/{model}/{task}/{variant}.log",
    benchmark:
        "logs/attention_stats/{model}/{task}/{variant}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model_entry=model_entry,
        max_examples=config["attention"]["max_examples"],
        seed=config["attention"]["seed"],
        batch_size=config["attention"]["batch_size"],
        level=config["attention"]["level"],
        max_length=config["max_length"],
        device=config["device"],
    script:
        "../scripts/attention_stats.py"


rule attention_drift:
    input:
        checkpoint=expand(
            rules.finetune.output.checkpoint,
            init="pretrained",
            seed=ANALYSIS_SEED,
            allow_missing=True,
        ),
        dev="resources/glue/{task}/dev.parquet",
        code=job_code("attention", "attention_drift"),
    output:
        table="results/{model}/{task}/drift.parquet",
    log:
        "logs/attention_drift/{model}/{task}.log",
    benchmark:
        "logs/attention_drift/{model}/{task}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model_entry=model_entry,
        max_examples=config["attention"]["max_examples"],
        seed=config["attention"]["seed"],
        batch_size=config["attention"]["batch_size"],
        max_length=config["max_length"],
        device=config["device"],
    script:
        "../scripts/attention_drift.py"


rule model_figure5:
    input:
        tables=expand(
            rules.attention_drift.output.table, task=TASKS, allow_missing=True
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
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_drift.py"


use rule model_figure5 as figure5 with:
    input:
        tables=expand(
            rules.attention_drift.output.table, model=PRIMARY_MODEL, task=TASKS
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
