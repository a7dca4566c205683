"""The summary `make quick` ends with (`headlab.summary`): run time, data source, where the figures
and tables are, Table 1, and the claims report's verdict counts only when that report exists."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from headlab.io.parquet import write_table
from headlab.summary import duration, main, summary, verdict_counts

TARGETS = ["results/figure8.pdf", "results/figure9.pdf", "results/table1.csv"]
CLAIMS = """# Claims

| claim | section | verdict | evidence |
| --- | --- | :---: | --- |
| disabling a head helps | 4.6 | **supported** | 3 of 3 tasks |
| the last layers change most | 4.3 | not supported | |
| vertical patterns dominate | 4.1 | supported | |

Notes, not a table.

| other | verdict |
|---|---|
| a second table | inconclusive |
"""


def finished_run(root: Path) -> Path:
    results = root / "results"
    (results / "minilm").mkdir(parents=True)
    for name in ("figure8.pdf", "figure8.png", "figure9.pdf", "figure9.png", "table1.csv"):
        (results / name).write_bytes(b"x")
    (results / "minilm" / "figure8_uniform.pdf").write_bytes(b"x")
    (results / "ablation.parquet").write_bytes(b"x")
    (results / "table1.md").write_text("| model | task |\n| --- | --- |\n| minilm | MRPC |\n")
    table = pa.table({"row": [1]})
    for task in ("MRPC", "RTE"):
        write_table(
            table,
            root / "resources" / "glue" / task / "dev.parquet",
            {"source": "local", "source_path": f"/data/glue_data/{task}/dev.tsv"},
        )
    return root


def test_duration_reads_like_the_readme() -> None:
    assert duration(644) == "10 min 44 s (644 s)"
    assert duration(12.4) == "12 s"


def test_summary_of_a_finished_run_without_claims(tmp_path: Path) -> None:
    text = summary(finished_run(tmp_path), 644, 0, TARGETS)
    lines = text.splitlines()
    assert lines[0] == "make quick: done in 10 min 44 s (644 s)."
    assert "GLUE data from /data/glue_data." in lines
    figures = lines.index("Figures (a PNG beside each PDF; per model and mode in results/<model>/):")
    assert lines[figures + 1 : figures + 3] == ["  results/figure8.pdf", "  results/figure9.pdf"]
    tables = lines.index("Tables:")
    assert lines[tables + 1 : tables + 4] == [
        "  results/table1.csv",
        "  results/ablation.parquet",
        "  results/table1.md",
    ]
    assert lines[lines.index("results/table1.md:") + 3] == "  | minilm | MRPC |"  # Table 1 itself
    assert lines[-1].endswith(
        "snakemake --report report.html --configfile configs/quick.yaml -- " + " ".join(TARGETS)
    )
    assert "claims" not in text.lower()  # no report yet: no claims line


def test_summary_counts_the_verdicts_when_the_claims_report_exists(tmp_path: Path) -> None:
    root = finished_run(tmp_path)
    (root / "results" / "claims.md").write_text(CLAIMS)
    assert verdict_counts(CLAIMS) == {"supported": 2, "not supported": 1, "inconclusive": 1}
    text = summary(root, 60, 0, TARGETS)
    assert "Claims report results/claims.md: 1 inconclusive, 1 not supported, 2 supported." in text
    assert "  results/claims.md" not in text  # reported once, not also as a table


def test_summary_of_a_failed_run_points_at_the_error(tmp_path: Path) -> None:
    text = summary(tmp_path, 11, 1, TARGETS)
    assert text.startswith("make quick failed after 11 s (exit status 1)")


def test_main_prints_and_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--seconds", "5", "--status", "0", "--root", str(finished_run(tmp_path)), *TARGETS])
    assert capsys.readouterr().out.startswith("make quick: done in 5 s.")
