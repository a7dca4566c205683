# Fine-tuning (from pretrained and from random weights), one job per seed of finetune.seeds
# (from random weights: of finetune.scratch_seeds), and Table 1 scores with per-example
# predictions of every seed.


rule finetune:
    input:
        train="resources/glue/{task}/train.parquet",
        code=job_code("finetune", "finetune"),
    output:
        checkpoint=directory(
            "results/{model}/{task}/seed-{seed}/checkpoint-{condition}"
        ),
        training_log="results/{model}/{task}/seed-{seed}/training-{condition}.parquet",
    log:
        "logs/finetune/{model}/{task}/seed-{seed}/{condition}.log",
    benchmark:
        "logs/finetune/{model}/{task}/seed-{seed}/{condition}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=720,
    params:
        model_entry=model_entry,
        settings=training_settings,
        max_length=config["max_length"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/finetune.py"


rule evaluate:
    input:
        dev="resources/glue/{task}/dev.parquet",
        scratch=scratch_checkpoint,
        finetuned=expand(
            rules.finetune.output.checkpoint, condition=FINETUNED, allow_missing=True
        ),
        code=job_code("finetune", "evaluate"),
    output:
        scores="results/{model}/{task}/seed-{seed}/scores.parquet",
        predictions="results/{model}/{task}/seed-{seed}/predictions.parquet",
    log:
        "logs/evaluate/{model}/{task}/seed-{seed}.log",
    benchmark:
        "logs/evaluate/{model}/{task}/seed-{seed}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model_entry=model_entry,
        pooling=lambda wildcards: training_settings(wildcards)["pooling"],
        max_length=config["max_length"],
        batch_size=config["evaluation"]["batch_size"],
        device=config["device"],
        precision=config["precision"],
    script:
        "../scripts/evaluate.py"
