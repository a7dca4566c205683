# Task data: GLUE splits, from the hub or local TSV files, into one normalised Parquet each.


rule prepare_task:
    input:
        tsv=local_data_file,
        code=job_code("data", "prepare_task"),
    output:
        table="resources/glue/{task}/{split}.parquet",
    log:
        "logs/prepare_task/{task}/{split}.log",
    benchmark:
        "logs/prepare_task/{task}/{split}.benchmark.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        data=data_params,
    script:
        "../scripts/prepare_task.py"
