"""Classic GLUE TSV files -> the normalised table (`read_glue_tsv`), malformed lines skipped and reported."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import polars as pl

from headlab.data.glue_table import GlueDataError, RowBuffer, SkippedLine, clean_texts
from headlab.data.tasks import TaskSpec

_BOM = "\ufeff"
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _tsv_label(raw: str, task: TaskSpec) -> int | float | str:
    """The label value of a TSV label field, or the reason it is invalid."""
    value = raw.strip()
    if task.is_regression:
        if _FLOAT.fullmatch(value) and math.isfinite(float(value)):
            return float(value)
        return f"score {value!r} is not a finite number"
    if value in task.labels:
        return task.labels.index(value)
    return f"label {value!r} is not one of {list(task.labels)}"


def _physical_lines(handle: BinaryIO) -> Iterator[tuple[int, str | None]]:
    """(1-based line number, text without its line ending or None if not UTF-8), splitting on \\n only.

    Reading bytes keeps \\r, \\x85, \\u2028 and friends inside a line as data instead of
    letting them start a new line, so line numbers match what `wc -l` and editors report.
    """
    for number, raw in enumerate(handle, start=1):
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if line.endswith(b"\r"):
            line = line[:-1]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None
            continue
        yield number, text.removeprefix(_BOM) if number == 1 else text


def _is_header(fields: Sequence[str], task: TaskSpec) -> bool:
    names = {field.strip() for field in fields}
    return all(name in names for name in (*task.tsv_text_columns, task.tsv_label_column))


class _TsvLayout:
    """Where the text and label fields of a data line are, given the header (or its absence)."""

    def __init__(self, columns: Sequence[str], task: TaskSpec) -> None:
        self.n_fields = len(columns)
        self.text_names = task.tsv_text_columns
        self.text_positions = [columns.index(name) for name in task.tsv_text_columns]
        self.label_position = columns.index(task.tsv_label_column)

    def parse(self, text: str | None, task: TaskSpec) -> tuple[list[str], int | float] | str:
        """(texts, label) of one data line, or the reason it is skipped."""
        if text is None:
            return "not valid UTF-8"
        if not text.strip():
            return "blank line"
        fields = text.split("\t")
        if len(fields) != self.n_fields:
            return f"expected {self.n_fields} tab-separated fields, found {len(fields)}"
        texts = clean_texts([fields[i] for i in self.text_positions], self.text_names)
        if isinstance(texts, str):
            return texts
        label = _tsv_label(fields[self.label_position], task)
        if isinstance(label, str):
            return label
        return texts, label


def _expected_layout(task: TaskSpec) -> str:
    wanted = ", ".join(repr(name) for name in (*task.tsv_text_columns, task.tsv_label_column))
    positional = "\t".join(task.tsv_positional_columns)
    return (
        f"a tab-separated GLUE {task.name} file with a header naming {wanted}, "
        f"or no header and the columns [{positional}]"
    )


def _check_readable(path: Path, task: TaskSpec) -> None:
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise GlueDataError(f"GLUE {task.name} file {path} {what}; expected {_expected_layout(task)}")
    if path.stat().st_size == 0:
        raise GlueDataError(f"GLUE {task.name} file {path} is empty; expected {_expected_layout(task)}")


def read_glue_tsv(path: str | Path, task: TaskSpec) -> tuple[pl.DataFrame, list[SkippedLine]]:
    """Parse a classic GLUE TSV file of `task` into the normalised table, plus its skipped lines.

    Lines are split on tab characters only, with no CSV quoting: GLUE sentences contain
    unbalanced quote characters (MRPC, STS-B, RTE, QNLI), which a CSV reader would merge across lines.
    A leading UTF-8 byte-order mark (MRPC) is removed and line endings (\\n or \\r\\n) are cut.
    Fields are never unquoted either: the QQP files were written CSV-style (a field holding a
    quote is wrapped in quotes with its inner quotes doubled, e.g. ``"What is ""X""?"``), and
    those characters are kept verbatim, while whole-field quotes in MRPC are real quotations.

    Text fields are stripped of surrounding whitespace. This drops the trailing space every
    SST-2 sentence has in the official files (and in the hub copy), so both sources yield the
    same strings and a tokenizer sees no spurious token; inner whitespace is kept as is.

    The first line is a header iff its fields include the task's TSV text and label column
    names; otherwise the file is read with `TaskSpec.tsv_positional_columns` and line 1 is data.
    A data line is skipped (never fatal) when it is blank or not UTF-8, its field count differs
    from the header's (or the positional column count), its label is not in `task.labels`
    (not a finite number, for regression), or one of its text fields is empty.

    Raises `GlueDataError` naming the file when it is missing, empty, or has no valid row.
    """
    path = Path(path)
    _check_readable(path, task)
    rows, skipped = RowBuffer(), []
    with path.open("rb") as handle:
        lines = _physical_lines(handle)
        layout, first = _read_layout(lines, task)
        data_lines = lines if first is None else _prepend(first, lines)
        for number, text in data_lines:
            parsed = layout.parse(text, task)
            if isinstance(parsed, str):
                skipped.append(SkippedLine(number, parsed))
            else:
                rows.add(number, *parsed)
    frame = rows.frame(task)
    if frame.is_empty():
        raise GlueDataError(_no_rows_message(path, task, skipped))
    return frame, skipped


def _read_layout(
    lines: Iterator[tuple[int, str | None]], task: TaskSpec
) -> tuple[_TsvLayout, tuple[int, str | None] | None]:
    """The file's layout, and its first line when that line is data rather than a header."""
    first = next(lines)
    fields = first[1].split("\t") if first[1] is not None else []
    if _is_header(fields, task):
        return _TsvLayout([field.strip() for field in fields], task), None
    return _TsvLayout(task.tsv_positional_columns, task), first


def _prepend(
    first: tuple[int, str | None], rest: Iterator[tuple[int, str | None]]
) -> Iterator[tuple[int, str | None]]:
    yield first
    yield from rest


def _no_rows_message(path: Path, task: TaskSpec, skipped: Sequence[SkippedLine]) -> str:
    examples = "; ".join(f"line {s.line}: {s.reason}" for s in skipped[:3])
    detail = f" ({len(skipped)} data lines skipped, e.g. {examples})" if skipped else " (no data lines)"
    return f"GLUE {task.name} file {path} has no valid rows{detail}; expected {_expected_layout(task)}"
