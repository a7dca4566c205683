"""GLUE data in, one normalised table out.

Both sources of a GLUE split, the classic TSV files and the Hugging Face dataset
``nyu-mll/glue``, are turned into the same table (a polars DataFrame, and the Parquet file
written from it), rows in source order:

=========  ==================  ===========================================================
column     type                meaning
=========  ==================  ===========================================================
row        Int64               TSV: 1-based physical line number in the file (the header,
                               when present, is line 1); hub: the ``idx`` column (or
                               0..n-1 when the dataset has none)
text_a     Utf8                first sentence (surrounding whitespace stripped)
text_b     Utf8, nullable      second sentence; null for single-sentence tasks
label      Int64 | Float64     class index into ``TaskSpec.labels``; the score (Float64)
                               for regression tasks
=========  ==================  ===========================================================

A malformed input line never crashes a run: it is skipped and reported as a `SkippedLine`.
Missing or empty inputs, or inputs without a single valid row, raise `GlueDataError`.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import polars as pl
import pyarrow as pa

from headlab.parquet_io import write_table
from headlab.tasks import SplitSpec, TaskSpec, get_task

HUB_DATASET = "nyu-mll/glue"
COLUMNS = ("row", "text_a", "text_b", "label")
MAX_SKIPPED_IN_METADATA = 50
SOURCES = ("hub", "local")

_BOM = "\ufeff"
_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")

LOGGER = logging.getLogger(__name__)


class GlueDataError(ValueError):
    """A GLUE input that cannot be used at all: missing, empty, or without one valid row."""


@dataclass(frozen=True)
class SkippedLine:
    """One input line (TSV: physical line number; hub: row id) that was left out, and why."""

    line: int
    reason: str


class HubDataset(Protocol):
    """What `normalise_hub_dataset` needs of a `datasets.Dataset`."""

    @property
    def column_names(self) -> list[str]: ...

    def __getitem__(self, key: str) -> Iterable[Any]: ...

    def __len__(self) -> int: ...


# --------------------------------------------------------------------------------------------
# Schemas


def polars_schema(task: TaskSpec) -> dict[str, pl.DataType]:
    """The normalised DataFrame schema of `task` (label Float64 for regression, else Int64)."""
    label = pl.Float64() if task.is_regression else pl.Int64()
    return {"row": pl.Int64(), "text_a": pl.Utf8(), "text_b": pl.Utf8(), "label": label}


def arrow_schema(task: TaskSpec) -> pa.Schema:
    """The fixed Parquet schema of `task`'s normalised table."""
    label = pa.float64() if task.is_regression else pa.int64()
    return pa.schema(
        [
            pa.field("row", pa.int64(), nullable=False),
            pa.field("text_a", pa.string(), nullable=False),
            pa.field("text_b", pa.string(), nullable=True),
            pa.field("label", label, nullable=False),
        ]
    )


class _Rows:
    """Column buffers for the normalised table, filled one valid example at a time."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}

    def add(self, row: int, texts: Sequence[str], label: int | float) -> None:
        self.columns["row"].append(row)
        self.columns["text_a"].append(texts[0])
        self.columns["text_b"].append(texts[1] if len(texts) > 1 else None)
        self.columns["label"].append(label)

    def frame(self, task: TaskSpec) -> pl.DataFrame:
        return pl.DataFrame(self.columns, schema=polars_schema(task))


# --------------------------------------------------------------------------------------------
# Field validation shared by both sources


def _clean_texts(raw: Sequence[str], names: Sequence[str]) -> list[str] | str:
    """Texts with surrounding whitespace stripped, or the reason the example is unusable."""
    texts = [text.strip() for text in raw]
    for name, text in zip(names, texts, strict=True):
        if not text:
            return f"empty text in column {name!r}"
    return texts


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


def _hub_label(raw: Any, task: TaskSpec) -> int | float | str:
    """The label value of a hub label cell, or the reason it is invalid."""
    if task.is_regression:
        valid = isinstance(raw, Real) and not isinstance(raw, bool) and math.isfinite(raw)
        return float(raw) if valid else f"score {raw!r} is not a finite number"
    if isinstance(raw, Integral) and not isinstance(raw, bool) and 0 <= raw < task.num_labels:
        return int(raw)
    return f"label {raw!r} is not a class index in 0..{task.num_labels - 1}"


# --------------------------------------------------------------------------------------------
# Classic GLUE TSV files


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
        texts = _clean_texts([fields[i] for i in self.text_positions], self.text_names)
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
    rows, skipped = _Rows(), []
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


def _split_spec(task: TaskSpec, split: str) -> SplitSpec:
    if split not in task.splits:
        raise GlueDataError(
            f"unknown split {split!r} for GLUE {task.name}; valid splits: {list(task.splits)}"
        )
    return task.splits[split]


def _listing(folder: Path, pattern: str) -> str:
    names = sorted(p.name for p in folder.glob(pattern)) if folder.is_dir() else []
    return ", ".join(names) if names else "none"


def local_split_path(
    data_dir: str | Path, task: TaskSpec, split: str, overrides: Mapping[str, str] | None = None
) -> Path:
    """Path of `split` of `task` in the classic layout ``<data_dir>/<TASK>/<file>``.

    `overrides` maps split names to file names inside the task folder, replacing the standard
    names (e.g. ``{"dev": "subset_23497.tsv"}`` for the QQP subset). Raises `GlueDataError` when
    the split, the task folder or the file is unknown or missing; the message lists the .tsv
    files (or task folders) that do exist.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(task.splits))
    if unknown:
        raise GlueDataError(f"file overrides for unknown splits {unknown}; valid splits: {list(task.splits)}")
    file_name = overrides.get(split, _split_spec(task, split).file)
    folder = Path(data_dir) / task.name
    if not folder.is_dir():
        raise GlueDataError(
            f"GLUE {task.name} folder {folder} does not exist (looking for {file_name}); "
            f"folders in {Path(data_dir)}: {_listing(Path(data_dir), '*/')}"
        )
    path = folder / file_name
    if not path.is_file():
        raise GlueDataError(
            f"GLUE {task.name} {split} file {path} does not exist; "
            f".tsv files in {folder}: {_listing(folder, '*.tsv')}"
        )
    return path


# --------------------------------------------------------------------------------------------
# Hugging Face hub


def read_hub_dataset(dataset: HubDataset, task: TaskSpec) -> tuple[pl.DataFrame, list[SkippedLine]]:
    """Map a ``nyu-mll/glue`` dataset of `task` into the normalised table, plus its skipped rows.

    ``row`` is the dataset's ``idx`` column (0..n-1 when absent); a skipped row's ``line`` is
    that row id. Texts are stripped like TSV texts; rows with an empty text or a label outside
    the task's classes (e.g. the -1 of unlabelled test splits) are skipped. Raises
    `GlueDataError` when a needed column is missing.
    """
    names = list(dataset.column_names)
    missing = [name for name in (*task.hub_text_columns, "label") if name not in names]
    if missing:
        raise GlueDataError(f"hub dataset for GLUE {task.name} lacks columns {missing}; it has {names}")
    texts = [list(dataset[name]) for name in task.hub_text_columns]
    labels = list(dataset["label"])
    ids = [int(i) for i in dataset["idx"]] if "idx" in names else list(range(len(labels)))
    rows, skipped = _Rows(), []
    for position, row in enumerate(ids):
        parsed = _hub_example([column[position] for column in texts], labels[position], task)
        if isinstance(parsed, str):
            skipped.append(SkippedLine(row, parsed))
        else:
            rows.add(row, *parsed)
    return rows.frame(task), skipped


def _hub_example(raw_texts: Sequence[Any], raw_label: Any, task: TaskSpec) -> tuple[list[str], Any] | str:
    if not all(isinstance(text, str) for text in raw_texts):
        return "text is not a string"
    texts = _clean_texts(raw_texts, task.hub_text_columns)
    if isinstance(texts, str):
        return texts
    label = _hub_label(raw_label, task)
    return label if isinstance(label, str) else (texts, label)


def normalise_hub_dataset(dataset: HubDataset, task: TaskSpec) -> pl.DataFrame:
    """The normalised table of a hub dataset; skipped rows are logged (see `read_hub_dataset`)."""
    frame, skipped = read_hub_dataset(dataset, task)
    if skipped:
        LOGGER.warning("%s: skipped %d hub rows, first: %s", task.name, len(skipped), skipped[0])
    return frame


def _load_hub_dataset(task: TaskSpec, split: str, revision: str | None) -> HubDataset:
    import datasets  # deferred: a heavy import that local runs do not need

    hub_name = _split_spec(task, split).hub
    try:
        return datasets.load_dataset(HUB_DATASET, task.hub_config, split=hub_name, revision=revision)
    except Exception as error:
        raise GlueDataError(
            f"could not load {HUB_DATASET} config {task.hub_config!r} split {hub_name!r} "
            f"(revision {revision or 'default'}): {error}"
        ) from error


def hub_split(task: TaskSpec, split: str, revision: str | None = None) -> pl.DataFrame:
    """Download (or read from the datasets cache) `split` of `task` and normalise it."""
    return normalise_hub_dataset(_load_hub_dataset(task, split, revision), task)


# --------------------------------------------------------------------------------------------
# Sampling and the Snakemake entry point


def sample_rows(df: pl.DataFrame, cap: int | None, seed: int) -> pl.DataFrame:
    """`cap` rows drawn uniformly without replacement (numpy default_rng(seed)), in original order.

    Returns `df` unchanged when `cap` is None or not smaller than its height.
    """
    if cap is None or cap >= df.height:
        return df
    if cap < 1:
        raise ValueError(f"cap must be a positive number of rows or None, got {cap}")
    chosen = np.random.default_rng(seed).choice(df.height, size=cap, replace=False)
    return df[np.sort(chosen)]


def read_sample(path: str | Path, cap: int | None, seed: int) -> pl.DataFrame:
    """A normalised split Parquet, sampled like `sample_rows` (the attention jobs' dev sample)."""
    return sample_rows(pl.read_parquet(path), cap, seed)


def _load(
    task: TaskSpec,
    split: str,
    source: str,
    data_dir: str | Path | None,
    file_overrides: Mapping[str, str] | None,
    hub_revision: str | None,
) -> tuple[pl.DataFrame, list[SkippedLine], str]:
    """(table, skipped lines, source description) of one split from `source`."""
    if source == "hub":
        frame, skipped = read_hub_dataset(_load_hub_dataset(task, split, hub_revision), task)
        where = f"{HUB_DATASET}/{task.hub_config}/{_split_spec(task, split).hub}"
        return frame, skipped, where
    if source == "local":
        if data_dir is None:
            raise GlueDataError(f"source 'local' for GLUE {task.name} {split} needs a data_dir")
        path = local_split_path(data_dir, task, split, file_overrides)
        frame, skipped = read_glue_tsv(path, task)
        return frame, skipped, str(path)
    raise GlueDataError(f"unknown data source {source!r}; valid sources: {list(SOURCES)}")


def _label_counts(frame: pl.DataFrame, task: TaskSpec) -> dict[str, int] | None:
    if task.is_regression:
        return None
    counts = Counter(frame.get_column("label").to_list())
    return {name: counts.get(index, 0) for index, name in enumerate(task.labels)}


def to_arrow(frame: pl.DataFrame, task: TaskSpec) -> pa.Table:
    """The normalised DataFrame as an Arrow table with the fixed `arrow_schema`."""
    return frame.select(COLUMNS).to_arrow().cast(arrow_schema(task))


def prepare_split(
    task_name: str,
    split: str,
    source: str,
    data_dir: str | Path | None,
    file_overrides: Mapping[str, str] | None,
    cap: int | None,
    seed: int,
    hub_revision: str | None,
    output: str | Path,
    log: logging.Logger | None = None,
) -> dict[str, Any]:
    """Load one split of a GLUE task, sample at most `cap` rows, write it as Parquet.

    `source` is "hub" (``nyu-mll/glue`` at `hub_revision`) or "local" (classic TSV files under
    `data_dir`, with optional `file_overrides` {split: file name}). The Parquet file at `output`
    has the fixed `arrow_schema` and carries the returned metadata dict (see
    `headlab.parquet_io.write_table`). Counts and every skipped line are logged to `log`.
    """
    log = log or LOGGER
    task = get_task(task_name)
    frame, skipped, where = _load(task, split, source, data_dir, file_overrides, hub_revision)
    _log_skipped(log, where, skipped)
    sampled = sample_rows(frame, cap, seed)
    metadata: dict[str, Any] = {
        "task": task.name,
        "split": split,
        "source": source,
        "source_path": where,
        "hub_revision": hub_revision if source == "hub" else None,
        "n_read": frame.height + len(skipped),
        "n_valid": frame.height,
        "n_skipped": len(skipped),
        "skipped": [asdict(s) for s in skipped[:MAX_SKIPPED_IN_METADATA]],
        "cap": cap,
        "seed": seed,
        "n_written": sampled.height,
        "labels": list(task.labels),
        "label_counts": _label_counts(sampled, task),
    }
    write_table(to_arrow(sampled, task), output, metadata)
    log.info(
        "%s %s from %s: read %d, skipped %d, valid %d, wrote %d (cap %s, seed %d) to %s",
        task.name,
        split,
        where,
        metadata["n_read"],
        len(skipped),
        frame.height,
        sampled.height,
        cap,
        seed,
        output,
    )
    return metadata


def _log_skipped(log: logging.Logger, where: str, skipped: Sequence[SkippedLine]) -> None:
    for item in skipped:
        log.warning("%s:%d: %s", where, item.line, item.reason)
