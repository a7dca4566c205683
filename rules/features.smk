# Attention to linguistic features (Sec. 4.4, Figure 6) and token-to-token attention
# (Sec. 4.5, Figure 7): spaCy parses of each task's dev sentences (once per task), the
# per-head statistics of the pretrained encoder (once) and of the fine-tuned model (per
# fine-tuning seed), and the figures (of finetune.analysis_seed).


localrules:
    model_figure6,
    figure6,
    model_figure7,
    figure7,


rule parse_task:
    input:
        dev=expand(rules.prepare_task.output.table, split="dev", allow_missing=True),
        code=job_code("features", "parse_task"),
    output:
        table="resources/glue/{task}/dev_parsed.parquet",
    log:
        "logs/parse_task/{task}.log",
    benchmark:
        "logs/parse_task/{task}.benchmark.tsv"
    conda:
        "../envs/nlp.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spacy_model=config["linguistic"]["spacy_model"],
        verb_pos=config["linguistic"]["verb_pos"],
    script:
        "../scripts/parse_task.py"


rule feature_attention:
    input:
        dev=expand(rules.prepare_task.output.table, split="dev", allow_missing=True),
        parsed=rules.parse_task.output.table,
        checkpoint=feature_checkpoint,
        code=job_code("features", "feature_attention"),
    output:
        features=analysis_path("features"),
        token_to_token=analysis_path("token_to_token"),
        cls_attention=analysis_path("cls_attention"),
    log:
        "logs/feature_attention/{model}/{task}/seed-{seed}/{condition}.log",
    benchmark:
        "logs/feature_attention/{model}/{task}/seed-{seed}/{condition}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model_entry=model_entry,
        max_length=config["max_length"],
        batch_size=config["attention"]["batch_size"],
        level=config["attention"]["level"],
        max_examples=config["attention"]["max_examples"],
        sample_seed=config["attention"]["seed"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/feature_attention.py"


# The pretrained encoder's tables: no checkpoint, no fine-tuning seed, computed once.
use rule feature_attention as pretrained_feature_attention with:
    input:
        dev=expand(rules.prepare_task.output.table, split="dev", allow_missing=True),
        parsed=rules.parse_task.output.table,
        code=job_code("features", "feature_attention"),
    output:
        features=analysis_path("features", PRETRAINED),
        token_to_token=analysis_path("token_to_token", PRETRAINED),
        cls_attention=analysis_path("cls_attention", PRETRAINED),
    log:
        "logs/pretrained_feature_attention/{model}/{task}.log",
    benchmark:
        "logs/pretrained_feature_attention/{model}/{task}.benchmark.tsv"
    params:
        condition=PRETRAINED,


rule model_figure6:
    input:
        features=feature_tables_of("{model}", "features"),
        code=job_code("features", "figure6"),
    output:
        pdf=report(
            "results/{model}/figure6.pdf",
            caption="../report/figure6.rst",
            category="4.4 Attention to linguistic features",
        ),
        png="results/{model}/figure6.png",
        features_pdf=report(
            "results/{model}/figure6_features.pdf",
            caption="../report/figure6_features.rst",
            category="4.4 Attention to linguistic features",
        ),
        features_png="results/{model}/figure6_features.png",
    log:
        "logs/model_figure6/{model}.log",
    benchmark:
        "logs/model_figure6/{model}.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tasks=TASKS,
        label=model_alias,
    script:
        "../scripts/figure6.py"


use rule model_figure6 as figure6 with:
    input:
        features=feature_tables_of(PRIMARY_MODEL, "features"),
        code=job_code("features", "figure6"),
    output:
        pdf=report(
            "results/figure6.pdf",
            caption="../report/figure6.rst",
            category="4.4 Attention to linguistic features",
        ),
        png="results/figure6.png",
        features_pdf=report(
            "results/figure6_features.pdf",
            caption="../report/figure6_features.rst",
            category="4.4 Attention to linguistic features",
        ),
        features_png="results/figure6_features.png",
    log:
        "logs/figure6/figure6.log",
    benchmark:
        "logs/figure6/figure6.benchmark.tsv"
    params:
        tasks=TASKS,
        label=PRIMARY_MODEL,


rule model_figure7:
    input:
        cls=feature_tables_of("{model}", "cls_attention"),
        tokens=feature_tables_of("{model}", "token_to_token"),
        code=job_code("features", "figure7"),
    output:
        pdf=report(
            "results/{model}/figure7.pdf",
            caption="../report/figure7.rst",
            category="4.5 Token-to-token attention",
        ),
        png="results/{model}/figure7.png",
    log:
        "logs/model_figure7/{model}.log",
    benchmark:
        "logs/model_figure7/{model}.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        tasks=TASKS,
        label=model_alias,
    script:
        "../scripts/figure7.py"


use rule model_figure7 as figure7 with:
    input:
        cls=feature_tables_of(PRIMARY_MODEL, "cls_attention"),
        tokens=feature_tables_of(PRIMARY_MODEL, "token_to_token"),
        code=job_code("features", "figure7"),
    output:
        pdf=report(
            "results/figure7.pdf",
            caption="../report/figure7.rst",
            category="4.5 Token-to-token attention",
        ),
        png="results/figure7.png",
    log:
        "logs/figure7/figure7.log",
    benchmark:
        "logs/figure7/figure7.benchmark.tsv"
    params:
        tasks=TASKS,
        label=PRIMARY_MODEL,
