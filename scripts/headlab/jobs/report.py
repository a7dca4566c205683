"""Job of rules/report.smk: the report of a run, ``results/report/README.md``, with the PNGs it shows
copied beside it (so the folder stands alone).

It reads Table 1, the learning check, the claims card, the figures and their captions, the
calibration document when the workflow has one, and every ``logs/**/*.benchmark.tsv`` present
when it runs (not inputs: the rule waits for the run's other targets instead); the page itself
is built by `headlab.analysis.run_report`.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunReport:
    pngs: list[Path]  # results/<stem>.png of each REPORT_FIGURES stem
    captions: list[Path]  # report/<stem>.rst, the same stems
    targets: list[Path]  # the run's other final targets: waited for, not read
    config: dict[str, Any]  # the run's config
    logs: Path  # the folder whose **/*.benchmark.tsv are summed per rule
    snakemake_version: str  # of the Snakemake that parsed the workflow
    readme: Path
    copies: list[Path]  # results/report/<stem>.png
    table1: Path | None = None  # results/table1.md (None: the page says it was not given)
    learning: Path | None = None  # results/learning.md
    claims: Path | None = None  # results/claims.md
    calibration: Path | None = None  # docs/calibration.md, when the workflow has it
    calibration_source: str = "docs/calibration.md"
    log: Path | None = None
    threads: int = 1


def run_report(job: RunReport, logger: logging.Logger) -> None:
    """Rule run_report: copy the figures beside the page, then write the page."""
    from headlab.analysis.run_provenance import library_versions, model_sources, rule_times
    from headlab.analysis.run_report import REPORT_FIGURES, Figure, ReportParts, report_markdown
    from headlab.io.atomic import write_atomically
    from headlab.io.text import write_text

    if [p.name for p in job.pngs] != [p.name for p in job.copies]:
        raise ValueError(f"the copies {job.copies} are not the figures {job.pngs} under the same names")
    unknown = sorted({p.stem for p in job.pngs} - set(REPORT_FIGURES))
    if unknown:
        raise ValueError(f"figures {unknown} are not among the report's {list(REPORT_FIGURES)}")
    captions = {path.stem: path.read_text(encoding="utf-8") for path in job.captions}
    figures = {}
    for source, copy in zip(job.pngs, job.copies, strict=True):
        write_atomically(copy, lambda tmp, source=source: shutil.copyfile(source, tmp))
        figures[source.stem] = Figure(copy.name, captions.get(source.stem))
    benchmarks = sorted(job.logs.rglob("*.benchmark.tsv")) if job.logs.is_dir() else []
    texts = {path.relative_to(job.logs).as_posix(): path.read_text(encoding="utf-8") for path in benchmarks}
    parts = ReportParts(
        written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        config=job.config,
        versions=library_versions({"snakemake": job.snakemake_version}),
        models=model_sources(list(job.config.get("models", []))),
        times=rule_times(texts),
        logs=str(job.logs),
        targets=len(job.targets),
        table1=job.table1.read_text(encoding="utf-8") if job.table1 else None,
        learning=job.learning.read_text(encoding="utf-8") if job.learning else None,
        claims=job.claims.read_text(encoding="utf-8") if job.claims else None,
        figures=figures,
        calibration=job.calibration.read_text(encoding="utf-8") if job.calibration else None,
        calibration_source=job.calibration_source,
    )
    write_text(report_markdown(parts), job.readme)
    logger.info(
        "run report written to %s: %d figures, %d benchmark files of %d rules",
        job.readme,
        len(figures),
        len(benchmarks),
        len(parts.times),
    )
