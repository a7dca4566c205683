"""Text outputs (CSV, Markdown), each written atomically through `headlab.io.atomic`."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from headlab.io.atomic import write_atomically


def write_csv(table: pl.DataFrame, path: str | os.PathLike[str]) -> Path:
    """The table as CSV (header line, comma-separated)."""
    return write_atomically(path, table.write_csv)


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """A UTF-8 text file (Markdown and the like)."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
