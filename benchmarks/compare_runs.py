"""Compare two runs of the workflow file by file: the check that a restructuring changed no number.

    python benchmarks/compare_runs.py BEFORE_WORKDIR AFTER_WORKDIR

Every file under the first run's ``results/`` (and ``resources/``) is matched with the second
run's, through the path renames of the `Renames` mapping, and compared:

- Parquet tables: ``polars.testing.assert_frame_equal`` with ``check_exact=True`` (tolerance 0)
  after the mapping's column renames and value renames, with the key-value metadata left out
  (it holds paths, times and library versions);
- CSV tables: the same, read with polars; Markdown and other text: equal text after the value
  renames;
- PNG images: equal decoded pixels; PDFs are not compared (they embed a creation time);
- checkpoints (``model.safetensors``): every tensor equal (``torch.equal``); their JSON equal.

The renames of issue 19 (one vocabulary, one key per example) are the default mapping; the
first run's per-example ``example`` positions (0..n-1 in the sampled dev table) are mapped to the
dev table's ``row`` of the same run. A summary line per kind of file is printed; the exit status
is 1 when any file differs or is missing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal


@dataclass(frozen=True)
class Renames:
    """What a restructuring renamed: path patterns (regex -> replacement), columns and values."""

    paths: list[tuple[str, str]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> old value -> new
    # Tables whose `example` column held positions in the sampled dev table (path regex).
    positional_examples: str = r"$^"


ISSUE_19 = Renames(
    paths=[
        (r"/finetuned-pretrained(/|$)", r"/checkpoint-finetuned\1"),
        (r"/finetuned-random(/|$)", r"/checkpoint-scratch\1"),
        (r"/training-pretrained\.parquet$", "/training-finetuned.parquet"),
        (r"/training-random\.parquet$", "/training-scratch.parquet"),
    ],
    columns={"variant": "condition", "finetuned_random": "scratch", "finetuned_pretrained": "finetuned"},
    values={"condition": {"finetuned-pretrained": "finetuned", "finetuned-random": "scratch"}},
    positional_examples=r"(^|/)(predictions|sweep-predictions|mask-.+-predictions|framenet-predictions)\.parquet$",
)


def dev_rows(workdir: Path, task: str) -> pl.Series:
    """The `row` of each example of a run's sampled dev table, in table order."""
    return pl.read_parquet(workdir / "resources" / "glue" / task / "dev.parquet", columns=["row"])["row"]


def mapped_table(old: pl.DataFrame, relative: str, before: Path, renames: Renames) -> pl.DataFrame:
    """The first run's table as the second run would write it."""
    table = old.rename({c: n for c, n in renames.columns.items() if c in old.columns})
    for column, mapping in renames.values.items():
        if column in table.columns and table[column].dtype == pl.String:
            table = table.with_columns(pl.col(column).replace(mapping))
    if re.search(renames.positional_examples, relative) and "example" in table.columns:
        rows = dev_rows(before, table["task"][0]) if table.height else pl.Series([], dtype=pl.Int64)
        table = table.with_columns(pl.col("example").map_elements(lambda i: rows[i], return_dtype=pl.Int64))
    return table


def compare_parquet(a: Path, b: Path, relative: str, before: Path, renames: Renames) -> None:
    expected = mapped_table(pl.read_parquet(a), relative, before, renames)
    assert_frame_equal(expected, pl.read_parquet(b), check_exact=True)


def compare_csv(a: Path, b: Path, relative: str, before: Path, renames: Renames) -> None:
    expected = mapped_table(pl.read_csv(a), relative, before, renames)
    assert_frame_equal(expected, pl.read_csv(b), check_exact=True)


def compare_text(a: Path, b: Path, relative: str, before: Path, renames: Renames) -> None:
    old, new = a.read_text(encoding="utf-8"), b.read_text(encoding="utf-8")
    if old != new:
        raise AssertionError(f"text differs ({len(old)} vs {len(new)} characters)")


def compare_png(a: Path, b: Path, relative: str, before: Path, renames: Renames) -> None:
    import matplotlib.image as image
    import numpy as np

    old, new = image.imread(a), image.imread(b)
    if old.shape != new.shape or not np.array_equal(old, new):
        raise AssertionError(f"pixels differ: shapes {old.shape} vs {new.shape}")


def compare_safetensors(a: Path, b: Path, relative: str, before: Path, renames: Renames) -> None:
    import torch
    from safetensors.torch import load_file

    old, new = load_file(a), load_file(b)
    if sorted(old) != sorted(new) or not all(torch.equal(old[k], new[k]) for k in old):
        raise AssertionError("tensors differ")


def compare_json(a: Path, b: Path, relative: str, before: Path, renames: Renames) -> None:
    if json.loads(a.read_text()) != json.loads(b.read_text()):
        raise AssertionError("JSON differs")


Comparer = Callable[[Path, Path, str, Path, Renames], None]
COMPARERS: dict[str, Comparer] = {
    ".parquet": compare_parquet,
    ".csv": compare_csv,
    ".md": compare_text,
    ".txt": compare_text,
    ".png": compare_png,
    ".safetensors": compare_safetensors,
    ".json": compare_json,
}


def new_path(relative: str, renames: Renames) -> str:
    for pattern, replacement in renames.paths:
        relative = re.sub(pattern, replacement, relative)
    return relative


def compare_runs(before: Path, after: Path, renames: Renames = ISSUE_19) -> tuple[Counter[str], list[str]]:
    """(files compared per suffix, problems) over results/ and resources/ of the first run."""
    compared: Counter[str] = Counter()
    problems: list[str] = []
    for top in ("results", "resources"):
        for a in sorted((before / top).rglob("*")):
            if not a.is_file() or a.name.startswith(".") or a.suffix not in COMPARERS:
                continue
            relative = str(a.relative_to(before))
            b = after / new_path(relative, renames)
            if not b.exists():
                problems.append(f"{relative}: missing in the second run (as {b.relative_to(after)})")
                continue
            try:
                COMPARERS[a.suffix](a, b, relative, before, renames)
            except AssertionError as error:
                problems.append(f"{relative}: {str(error).splitlines()[0] if str(error) else 'differs'}")
                continue
            compared[a.suffix] += 1
    return compared, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="the first run's working directory")
    parser.add_argument("after", type=Path, help="the second run's working directory")
    args = parser.parse_args(argv)
    compared, problems = compare_runs(args.before, args.after)
    for suffix, count in sorted(compared.items()):
        print(f"{suffix:>12}: {count} equal")
    for problem in problems:
        print(f"DIFFERS {problem}")
    print(f"{sum(compared.values())} files equal, {len(problems)} differ or are missing")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
