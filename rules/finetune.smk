# Fine-tuning (from pretrained and from random weights) and Table 1 scores.


rule finetune:
    input:
        train="resources/glue/{task}/train.parquet",
        code=job_code("finetune", "finetune"),
    output:
        checkpoint=directory("results/{model}/{task}/finetuned-{init}"),
        training_log="results/{model}/{task}/training-{init}.parquet",
    log:
        "logs/finetune/{model}/{task}/{init}.log",
    benchmark:
        "logs/finetune/{model}/{task}/{init}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=720,
    params:
        model_entry=model_entry,
        settings=config["finetune"],
        max_length=config["max_length"],
        device=config["device"],
    script:
        "../scripts/finetune.py"


rule evaluate:
    input:
        dev="resources/glue/{task}/dev.parquet",
        random=expand(
            rules.finetune.output.checkpoint, init="random", allow_missing=True
        ),
        pretrained=expand(
            rules.finetune.output.checkpoint, init="pretrained", allow_missing=True
        ),
        code=job_code("finetune", "evaluate"),
    output:
        scores="results/{model}/{task}/scores.parquet",
    log:
        "logs/evaluate/{model}/{task}.log",
    benchmark:
        "logs/evaluate/{model}/{task}.benchmark.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        model_entry=model_entry,
        max_length=config["max_length"],
        batch_size=config["evaluation"]["batch_size"],
        seed=config["finetune"]["seed"],
        device=config["device"],
    script:
        "../scripts/evaluate.py"
