# The report of a run: results/report/README.md with the PNGs it shows copied beside it (a folder
# that stands alone). It waits for every other target of `all`, so that its run-time table, read
# from the logs/**/*.benchmark.tsv present when it runs (not inputs), covers the whole run.
from headlab.analysis.run_report import REPORT_FIGURES
from snakemake import __version__ as SNAKEMAKE_VERSION

RUN_REPORT = "results/report/README.md"
# The calibration study of the statistics (a repository document, not an output): quoted when
# the workflow has it, else the page says it is absent.
CALIBRATION = Path(workflow.basedir) / "docs" / "calibration.md"


localrules:
    run_report,


rule run_report:
    input:
        table1="results/table1.md",
        learning=rules.learning_check.output.md,
        claims="results/claims.md",
        pngs=expand("results/{name}.png", name=list(REPORT_FIGURES)),
        captions=expand(
            str(Path(workflow.basedir) / "report" / "{name}.rst"),
            name=list(REPORT_FIGURES),
        ),
        calibration=str(CALIBRATION) if CALIBRATION.is_file() else [],
        targets=[target for target in get_final_output() if target != RUN_REPORT],
        code=job_code("report", "run_report"),
    output:
        readme=RUN_REPORT,
        copies=expand("results/report/{name}.png", name=list(REPORT_FIGURES)),
    log:
        "logs/run_report/run_report.log",
    benchmark:
        "logs/run_report/run_report.benchmark.tsv"
    # the model jobs' environment: its torch and transformers versions are the ones reported
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=config,
        logs="logs",
        snakemake_version=SNAKEMAKE_VERSION,
        calibration_source="docs/calibration.md",
    script:
        "../scripts/run_report.py"
