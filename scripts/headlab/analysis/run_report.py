"""The run report's page: one Markdown file (``results/report/README.md``) with Table 1, whether the
fine-tuned models learn (rule learning_check), the claims card, Figures 8 and 9, the pruning,
replication, importance and attribution figures, the calibration summary, run time per rule
family, the config and its hash, library versions and each model's provenance. Every run gets
the same sections in the same order; a part the report was not given says so in its section
instead of leaving the section out.

Definitions: the figures are PNGs beside the page (`REPORT_FIGURES`: file stem -> title), shown
with the caption of their rule (``report/<stem>.rst``); the calibration summary is the
``## Summary`` section of ``docs/calibration.md`` up to its next heading (a simulation study of
the statistics, not of this run); the other terms are `headlab.analysis.run_provenance`'s.
Pure text building: reading and writing the files is the job's (``headlab.jobs.report``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from headlab.analysis.run_provenance import (
    HASH_DIGITS,
    ModelSource,
    RuleTime,
    clock,
    config_hash,
    config_yaml,
)

# Figures shown, in order: file stem (results/<stem>.png, copied beside the page) -> title.
REPORT_FIGURES = {
    "figure8": "Figure 8: the score with one head disabled",
    "figure9": "Figure 9: the score with one layer disabled",
    "pruning": "Pruning curves",
    "replication": "Do disabling effects replicate across fine-tuning seeds?",
    "importance": "Head importance (Michel et al. 2019)",
    "attribution": "Attribution patching against the exact sweep",
}
FIGURE_SECTIONS = {
    "Figures 8 and 9": ("figure8", "figure9"),
    "Pruning, replication and importance": ("pruning", "replication", "importance", "attribution"),
}
SECTIONS = (
    "Table 1",
    "Does the model learn?",
    "The claims card",
    *FIGURE_SECTIONS,
    "Calibration of the statistics",
    "Run time per rule",
    "Configuration",
    "Library versions",
    "Models and their provenance",
)
CALIBRATION_HEADING = "## Summary"
HEADING = re.compile(r"^(#{1,6})(\s)")


@dataclass(frozen=True)
class Figure:
    """A figure beside the page: its file name there and its rule's caption (None: none found)."""

    file: str
    caption: str | None = None


@dataclass(frozen=True)
class ReportParts:
    """Everything the page shows; None (or absent) where the run did not give that part."""

    written: str  # when the page was written (UTC, ISO 8601)
    config: Mapping[str, Any]
    versions: Mapping[str, str]
    models: list[ModelSource]
    times: list[RuleTime]
    logs: str = "logs"  # the folder the benchmark files were read from
    targets: int | None = None  # how many other final targets the report waited for
    table1: str | None = None  # results/table1.md
    learning: str | None = None  # results/learning.md (rule learning_check)
    claims: str | None = None  # results/claims.md
    figures: Mapping[str, Figure] = field(default_factory=dict)  # stem -> figure
    calibration: str | None = None  # the text of docs/calibration.md
    calibration_source: str = "docs/calibration.md"


def shift_headings(text: str, by: int) -> str:
    """Markdown with every ATX heading `by` levels deeper (at most 6), code fences left alone."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match:
            level = min(6, len(match.group(1)) + by)
            line = "#" * level + line[len(match.group(1)) :]
        lines.append(line)
    return "\n".join(lines)


def calibration_summary(text: str) -> str | None:
    """The ``## Summary`` section of the calibration document (its intro and targets table) up to
    the next heading, after the document's ``Date:`` line; None when there is no such section."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(CALIBRATION_HEADING)), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    body = "\n".join(lines[start + 1 : end]).strip()
    dated = next((line.strip() for line in lines[:start] if line.startswith("Date:")), None)
    return f"{dated}\n\n{body}" if dated else body


def _table(header: list[str], rows: list[list[str]], align: str = "") -> list[str]:
    """A pipe table; `align` gives one character per column (r: right-aligned)."""
    marks = ["---:" if align[i : i + 1] == "r" else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def _missing(what: str) -> list[str]:
    return [f"*Not in this report: {what}.*"]


def _embedded(text: str | None, what: str) -> list[str]:
    """A Markdown file of the run nested under a section (its headings two levels deeper)."""
    return [shift_headings(text.strip(), 2)] if text and text.strip() else _missing(f"{what} was not given")


def _figures(names: tuple[str, ...], figures: Mapping[str, Figure]) -> list[str]:
    lines: list[str] = []
    for name in names:
        lines += [f"### {REPORT_FIGURES[name]}", ""]
        figure = figures.get(name)
        if figure is None:
            lines += [*_missing(f"results/{name}.png was not given"), ""]
            continue
        lines += [f"![{REPORT_FIGURES[name]}]({figure.file})", ""]
        lines += [figure.caption.strip() if figure.caption else f"*No caption found for {name}.*", ""]
    return lines


def _calibration(parts: ReportParts) -> list[str]:
    if parts.calibration is None:
        return _missing(f"{parts.calibration_source} is absent from this workflow, so no calibration summary")
    summary = calibration_summary(parts.calibration)
    if summary is None:
        return _missing(f"{parts.calibration_source} has no `{CALIBRATION_HEADING}` section")
    intro = (
        f"Quoted from `{parts.calibration_source}`: a simulation study of the sweep statistics "
        "(whole sweeps with known true deltas), not a measurement of this run. It says how far the "
        "intervals, tests and verdicts of the claims card can be trusted."
    )
    return [intro, "", shift_headings(summary, 2)]


def _times(parts: ReportParts) -> list[str]:
    waited = (
        f"the run's {parts.targets} other targets" if parts.targets is not None else "the run's other targets"
    )
    intro = (
        f"Sums of the wall seconds (column `s`) of every `{parts.logs}/<rule>/**/*.benchmark.tsv` "
        f"present when this page was written. They are not inputs of the report: it waits for {waited} "
        "instead, so it runs last. A job's file is that of its latest run, so jobs run by earlier "
        "invocations in this folder count too; jobs run side by side, so the total is the sum of "
        "the jobs' times, not the run's wall time."
    )
    if not parts.times:
        return [intro, "", *_missing(f"no benchmark file under {parts.logs}/")]
    known = [t.seconds for t in parts.times if not math.isnan(t.seconds)]
    total = math.fsum(known)
    rows = [
        [
            t.rule,
            str(t.files),
            "unknown" if math.isnan(t.seconds) else f"{t.seconds:.2f}",
            clock(t.seconds),
            "–" if math.isnan(t.seconds) or total <= 0 else f"{100 * t.seconds / total:.1f} %",
        ]
        for t in parts.times
    ]
    jobs = sum(t.files for t in parts.times)
    rows.append(["**total**", str(jobs), f"{total:.2f}", clock(total), "100.0 %" if total > 0 else "–"])
    lines = [intro, "", *_table(["rule", "jobs", "seconds", "h:mm:ss", "share"], rows, "-rrrr")]
    unknown = [t for t in parts.times if t.problem]
    if unknown:
        lines += ["", "The total leaves out the rules whose time is unknown:", ""]
        lines += [f"- {t.rule}: {t.problem}" for t in unknown]
    return lines


def _config(parts: ReportParts) -> list[str]:
    digest = config_hash(parts.config)
    return [
        f"Config hash `{digest}`: sha256 of the config's canonical JSON (keys sorted, no spaces), "
        f"its first {HASH_DIGITS} hex digits; two runs with this hash had the same settings. "
        "The config as the run saw it (config files, `--config` and the schema's defaults):",
        "",
        "```yaml",
        config_yaml(parts.config).rstrip(),
        "```",
    ]


def _versions(parts: ReportParts) -> list[str]:
    rows = [[name, value] for name, value in parts.versions.items()]
    return [
        "Installed in the environment that wrote this page (Snakemake: the one that ran the "
        "workflow). Each Parquet table also records the versions of the job that wrote it under "
        "its `headlab` metadata key.",
        "",
        *_table(["library", "version"], rows),
    ]


def _models(parts: ReportParts) -> list[str]:
    if not parts.models:
        return _missing("the config names no model")
    lines = _table(
        ["alias", "source", "where the weights come from"],
        [[m.alias, m.source, m.where] for m in parts.models],
    )
    for model in parts.models:
        if model.pretraining:
            lines += ["", f"{model.alias}: {model.pretraining}"]
    return lines


def _listing(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def report_markdown(parts: ReportParts) -> str:
    """The whole page: a header naming the run, a contents line, then every section of SECTIONS."""
    config = parts.config
    models = ", ".join(m.alias for m in parts.models) or "no model"
    seeds = config.get("finetune", {}).get("seeds") if isinstance(config.get("finetune"), Mapping) else None
    lines = [
        f"# Run report: {models} on {_listing(config.get('tasks', 'no task'))}",
        "",
        f"Written {parts.written} by rule `run_report`; config hash `{config_hash(config)}`; "
        f"primary model {config.get('primary_model') or (parts.models[0].alias if parts.models else '–')}; "
        f"fine-tuning seeds {_listing(seeds) if seeds is not None else '–'}. The figures lie beside "
        "this page, so the folder can be committed or shared as it is.",
        "",
        "Contents: " + " · ".join(f"[{s}](#{_anchor(s)})" for s in SECTIONS),
        "",
    ]
    bodies = {
        "Table 1": _embedded(parts.table1, "results/table1.md"),
        "Does the model learn?": _embedded(parts.learning, "results/learning.md"),
        "The claims card": _embedded(parts.claims, "results/claims.md"),
        **{title: _figures(names, parts.figures) for title, names in FIGURE_SECTIONS.items()},
        "Calibration of the statistics": _calibration(parts),
        "Run time per rule": _times(parts),
        "Configuration": _config(parts),
        "Library versions": _versions(parts),
        "Models and their provenance": _models(parts),
    }
    for title in SECTIONS:
        body = bodies[title]
        while body and body[-1] == "":
            body = body[:-1]
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _anchor(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
