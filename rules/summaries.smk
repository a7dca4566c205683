# What a run says: Figures 8 and 9, the mode-agreement figure, Table 1 and the claims. They only
# read tables; quick, so they run on the submitting host.


localrules:
    figure8,
    figure9,
    model_figure8,
    model_figure9,
    table1,
    learning_check,
    collect_ablation,
    figure_mode_agreement,


rule model_figure8:
    input:
        statistics=statistics_of("{model}", "{mode}"),
        code=job_code("summaries", "plot_ablation"),
    output:
        pdf=report(
            "results/{model}/figure8_{mode}.pdf",
            caption="../report/figure8.rst",
            category="4.6 Disabling heads",
        ),
        png="results/{model}/figure8_{mode}.png",
    log:
        "logs/model_figure8/{model}/{mode}.log",
    benchmark:
        "logs/model_figure8/{model}/{mode}.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        kind="heads",
        metrics=figure_metrics(TASKS),
        title=figure_title("head"),
    script:
        "../scripts/plot_ablation.py"


use rule model_figure8 as model_figure9 with:
    output:
        pdf=report(
            "results/{model}/figure9_{mode}.pdf",
            caption="../report/figure9.rst",
            category="4.6 Disabling heads",
        ),
        png="results/{model}/figure9_{mode}.png",
    log:
        "logs/model_figure9/{model}/{mode}.log",
    benchmark:
        "logs/model_figure9/{model}/{mode}.benchmark.tsv"
    params:
        kind="layers",
        metrics=figure_metrics(TASKS),
        title=figure_title("layer"),


use rule model_figure8 as figure8 with:
    input:
        statistics=statistics_of(PRIMARY_MODEL, MODES[0]),
        code=job_code("summaries", "plot_ablation"),
    output:
        pdf=report(
            "results/figure8.pdf",
            caption="../report/figure8.rst",
            category="4.6 Disabling heads",
        ),
        png="results/figure8.png",
    log:
        "logs/figure8/figure8.log",
    benchmark:
        "logs/figure8/figure8.benchmark.tsv"
    params:
        kind="heads",
        metrics=figure_metrics(TASKS),
        title=f"{PRIMARY_MODEL}: one head disabled ({MODES[0]})",


use rule model_figure8 as figure9 with:
    input:
        statistics=statistics_of(PRIMARY_MODEL, MODES[0]),
        code=job_code("summaries", "plot_ablation"),
    output:
        pdf=report(
            "results/figure9.pdf",
            caption="../report/figure9.rst",
            category="4.6 Disabling heads",
        ),
        png="results/figure9.png",
    log:
        "logs/figure9/figure9.log",
    benchmark:
        "logs/figure9/figure9.benchmark.tsv"
    params:
        kind="layers",
        metrics=figure_metrics(TASKS),
        title=f"{PRIMARY_MODEL}: one layer disabled ({MODES[0]})",


rule table1:
    input:
        scores=expand(
            rules.evaluate.output.scores, model=MODELS, task=TASKS, seed=SEEDS
        ),
        code=job_code("summaries", "table1"),
    output:
        csv=report(
            "results/table1.csv",
            caption="../report/table1.rst",
            category="4.3 Table 1",
        ),
        md="results/table1.md",
    log:
        "logs/table1/table1.log",
    benchmark:
        "logs/table1/table1.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        task_metrics={t: list(get_task(t).metrics) for t in TASKS},
    script:
        "../scripts/table1.py"


# Does each fine-tuned model learn its task? Every seed against the best constant prediction and
# the pre-trained encoder, by paired standard errors (headlab.analysis.learning_check).
rule learning_check:
    input:
        predictions=expand(
            rules.evaluate.output.predictions, model=MODELS, task=TASKS, seed=SEEDS
        ),
        code=job_code("summaries", "learning_check"),
    output:
        table="results/learning.parquet",
        md="results/learning.md",
    log:
        "logs/learning_check/learning_check.log",
    benchmark:
        "logs/learning_check/learning_check.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        regression_tasks=[t for t in TASKS if get_task(t).is_regression],
    script:
        "../scripts/learning_check.py"


rule claims:
    input:
        predictions=expand(
            rules.evaluate.output.predictions,
            model=PRIMARY_MODEL,
            task=TASKS,
            seed=SEEDS,
        ),
        statistics=statistics_of(PRIMARY_MODEL, MODES[0]),
        selections=expand(
            rules.sweep_statistics.output.selection,
            model=PRIMARY_MODEL,
            task=TASKS,
            mode=MODES[0],
        ),
        attention=expand(
            rules.attention_stats.output.table,
            model=PRIMARY_MODEL,
            task=TASKS,
            condition=FINETUNED,
            seed=SEEDS,
        ),
        drift=expand(
            rules.attention_drift.output.table,
            model=PRIMARY_MODEL,
            task=TASKS,
            seed=SEEDS,
        ),
        patterns=expand(
            analysis_path("patterns", config["patterns"]["condition"], ANALYSIS_SEED),
            model=PRIMARY_MODEL,
            task=TASKS,
        ),
        features=feature_tables_of(PRIMARY_MODEL, "features"),
        token_to_token=feature_tables_of(PRIMARY_MODEL, "token_to_token"),
        cls_attention=feature_tables_of(PRIMARY_MODEL, "cls_attention"),
        agreement=agreement_tables(PRIMARY_MODEL),
        framenet_heads=(
            [] if FRAMENET_MISSING else f"results/{PRIMARY_MODEL}/framenet.parquet"
        ),
        framenet_sentences=(
            [] if FRAMENET_MISSING else "resources/framenet/sentences.parquet"
        ),
        framenet_effect=framenet_effect_table(PRIMARY_MODEL),
        replication=expand(
            rules.importance_summary.output.replication,
            model=PRIMARY_MODEL,
            task=TASKS,
        ),
        screens=expand(
            rules.importance_summary.output.agreement, model=PRIMARY_MODEL, task=TASKS
        ),
        prunable=expand(
            rules.importance_summary.output.prunable, model=PRIMARY_MODEL, task=TASKS
        ),
        code=job_code("summaries", "claims"),
    output:
        table=report(
            "results/claims.parquet",
            caption="../report/claims.rst",
            category="Claims",
        ),
        md=report(
            "results/claims.md",
            caption="../report/claims.rst",
            category="Claims",
        ),
    log:
        "logs/claims/claims.log",
    benchmark:
        "logs/claims/claims.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        model=PRIMARY_MODEL,
        tasks=TASKS,
        pair_heads=config["claims"]["pair_heads_by_model"].get(
            PRIMARY_MODEL, config["claims"]["pair_heads"]
        ),
        pair_heads_named=PRIMARY_MODEL in config["claims"]["pair_heads_by_model"],
        metrics=figure_metrics(TASKS),
        settings=config["statistics"],
        claim_settings=config["claims"],
        modes=MODES,
        framenet_missing=FRAMENET_MISSING,
    script:
        "../scripts/claims.py"


rule figure_mode_agreement:
    input:
        statistics=expand(
            "results/{model}/{task}/ablation/{mode}/statistics.parquet",
            model=PRIMARY_MODEL,
            task=TASKS,
            mode=MODES,
        ),
        agreement=expand(
            "results/{model}/{task}/ablation/agreement.parquet",
            model=MODELS,
            task=TASKS,
        ),
        code=job_code("summaries", "plot_agreement"),
    output:
        table="results/mode_agreement.parquet",
        pdf=report(
            "results/mode_agreement.pdf",
            caption="../report/mode_agreement.rst",
            category="4.6 Disabling heads",
        ),
        png="results/mode_agreement.png",
    log:
        "logs/figure_mode_agreement/figure_mode_agreement.log",
    benchmark:
        "logs/figure_mode_agreement/figure_mode_agreement.benchmark.tsv"
    conda:
        "../envs/tables.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        metrics=figure_metrics(TASKS),
        title=f"{PRIMARY_MODEL}: per-head deltas under each disabling mode (mean over seeds)",
    script:
        "../scripts/plot_agreement.py"
