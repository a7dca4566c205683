"""What a run left and where: the summary `make quick` prints at its end.

    python -m headlab.summary --seconds 644 --status 0 results/figure8.pdf results/table1.csv

prints the run time, where the GLUE data came from (the ``source_path`` of the prepared
tables' metadata), the figures and tables under ``results/`` (the named targets first), Table 1
itself, the command that puts these targets into one HTML report, and, when
``results/claims.md`` exists, the claims report's verdict counts (the values of the column named
``verdict`` of its Markdown tables). With a non-zero ``--status`` it says that the run failed and
where its logs are. It only reads files; it always exits 0.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq

FIGURE_SUFFIXES = (".pdf",)
TABLE_SUFFIXES = (".csv", ".md", ".parquet")
CLAIMS = Path("results") / "claims.md"


def duration(seconds: float) -> str:
    """``644`` -> ``10 min 44 s (644 s)``; under a minute just the seconds."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60} s ({whole} s)"


def data_sources(root: Path) -> list[str]:
    """Where each prepared GLUE table was read from (distinct, sorted): a folder or the hub."""
    places = set()
    for path in sorted((root / "resources" / "glue").glob("*/*.parquet")):
        try:
            record = json.loads(pq.read_schema(path).metadata[b"headlab"])
        except (OSError, KeyError, TypeError, ValueError):
            continue
        if record.get("source") == "hub":
            places.add("the Hugging Face hub (nyu-mll/glue, through datasets)")
        elif record.get("source_path"):
            places.add(str(Path(record["source_path"]).parent.parent))  # <dir>/<TASK>/<file>
    return sorted(places)


def results_files(root: Path, targets: Sequence[str], suffixes: tuple[str, ...]) -> list[str]:
    """The targets with `suffixes` that exist, then every other such file in results/ (top level)."""
    named = [t for t in targets if t.endswith(suffixes) and (root / t).is_file()]
    others = sorted(
        str(path.relative_to(root))
        for path in (root / "results").glob("*")
        if path.suffix in suffixes and path.is_file() and path.name != CLAIMS.name
    )
    return named + [name for name in others if name not in named]


def verdict_counts(text: str) -> Counter[str]:
    """Counts of the values in the ``verdict`` column of every Markdown table in `text`."""
    counts: Counter[str] = Counter()
    column = None
    for line in text.splitlines():
        cells = [cell.strip().strip("*`").strip() for cell in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|"):
            column = None
        elif column is None:
            lowered = [cell.lower() for cell in cells]
            column = lowered.index("verdict") if "verdict" in lowered else None
        elif set(line.replace("|", "").strip()) <= set("-: ") or column >= len(cells):
            continue
        elif cells[column]:
            counts[cells[column]] += 1
    return counts


def summary(
    root: Path, seconds: float, status: int, targets: Sequence[str], configfile: str = "configs/quick.yaml"
) -> str:
    """The summary text of a run of `targets` with `configfile` in `root` that took `seconds` and
    exited with `status`."""
    if status != 0:
        return (
            f"make quick failed after {duration(seconds)} (exit status {status}): the error is above; "
            "each job's log is in logs/<rule>/."
        )
    lines = [f"make quick: done in {duration(seconds)}."]
    sources = data_sources(root)
    if sources:
        lines.append(f"GLUE data from {', '.join(sources)}.")
    figures = results_files(root, targets, FIGURE_SUFFIXES)
    if figures:
        lines.append("Figures (a PNG beside each PDF; per model and mode in results/<model>/):")
        lines += [f"  {name}" for name in figures]
    tables = results_files(root, targets, TABLE_SUFFIXES)
    if tables:
        lines.append("Tables:")
        lines += [f"  {name}" for name in tables]
    table1 = root / "results" / "table1.md"
    if table1.is_file():
        lines += [f"{table1.relative_to(root)}:", *(f"  {row}" for row in table1.read_text().splitlines())]
    claims = root / CLAIMS
    if claims.is_file():
        counts = verdict_counts(claims.read_text(encoding="utf-8"))
        found = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())) or "no verdicts found"
        lines.append(f"Claims report {CLAIMS}: {found}.")
    lines.append(
        "Logs and run times: logs/<rule>/. These results with their captions in one page: "
        + " ".join(["snakemake --report report.html --configfile", configfile, "--", *targets]).strip(" -")
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m headlab.summary", description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", help="the run's targets, listed first")
    parser.add_argument("--seconds", type=float, required=True, help="the run's wall time")
    parser.add_argument("--status", type=int, default=0, help="the run's exit status")
    parser.add_argument("--root", type=Path, default=Path("."), help="the folder the run ran in")
    parser.add_argument("--configfile", default="configs/quick.yaml", help="the run's config file")
    args = parser.parse_args(argv)
    print(summary(args.root, args.seconds, args.status, args.targets, args.configfile), flush=True)


if __name__ == "__main__":
    main()
