# Relation-specific heads (Sec. 4.2, Figure 3): FrameNet target-core element links that pass
# the paper's filters, the attention each pretrained head puts on them, and the figure.


localrules:
    model_figure3,
    figure3,


rule framenet_sentences:
    input:
        corpus=framenet_corpus,
        lu_index=framenet_lu_index,
        code=job_code("framenet", "framenet_sentences"),
    output:
        table="resources/framenet/sentences.parquet",
    log:
        "logs/framenet_sentences/framenet_sentences.log",
    benchmark:
        "logs/framenet_sentences/framenet_sentences.benchmark.tsv"
    conda:
        "../envs/nlp.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        max_sentence_tokens=config["framenet"]["max_sentence_tokens"],
        max_fe_tokens=config["framenet"]["max_fe_tokens"],
        min_distance=config["framenet"]["min_distance"],
    script:
        "../scripts/framenet_sentences.py"


rule framenet_heads:
    input:
        sentences=rules.framenet_sentences.output.table,
        code=job_code("framenet", "framenet_heads"),
    output:
        table="results/{model}/framenet.parquet",
        example="results/{model}/framenet_example.parquet",
    log:
        "logs/framenet_heads/{model}.log",
    benchmark:
        "logs/framenet_heads/{model}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        model_entry=model_entry,
        batch_size=config["framenet"]["batch_size"],
        average_over=config["framenet"]["average_over"],
        percentile=config["framenet"]["percentile"],
        example_sentence=config["framenet"]["example"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/framenet_heads.py"


rule model_figure3:
    input:
        table=rules.framenet_heads.output.table,
        example=rules.framenet_heads.output.example,
        code=job_code("framenet", "figure3"),
    output:
        pdf=report(
            "results/{model}/figure3.pdf",
            caption="../report/figure3.rst",
            category="4.2 Relation-specific heads",
        ),
        png="results/{model}/figure3.png",
    log:
        "logs/model_figure3/{model}.log",
    benchmark:
        "logs/model_figure3/{model}.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        title=lambda wildcards: f"{wildcards.model}: attention on FrameNet links",
        percentile=config["framenet"]["percentile"],
    script:
        "../scripts/figure3.py"


use rule model_figure3 as figure3 with:
    input:
        table=expand(rules.framenet_heads.output.table, model=PRIMARY_MODEL),
        example=expand(rules.framenet_heads.output.example, model=PRIMARY_MODEL),
        code=job_code("framenet", "figure3"),
    output:
        pdf=report(
            "results/figure3.pdf",
            caption="../report/figure3.rst",
            category="4.2 Relation-specific heads",
        ),
        png="results/figure3.png",
    log:
        "logs/figure3/figure3.log",
    benchmark:
        "logs/figure3/figure3.benchmark.tsv"
    params:
        title=f"{PRIMARY_MODEL}: attention on FrameNet links",
        percentile=config["framenet"]["percentile"],
