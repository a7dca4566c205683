"""Which headlab a workflow runs: its own `scripts/headlab`, never another clone's.

The Snakefile puts its `scripts/` folder first on ``sys.path`` and on the jobs' ``PYTHONPATH``;
`check_library` stops the parse when ``headlab`` was nevertheless imported from elsewhere (e.g.
imported before the Snakefile ran). A job that loaded another library than its rule lists is
explained by `headlab.runtime.check_code_list`.
"""

from __future__ import annotations

import os
from pathlib import Path

import headlab
from headlab.runtime import library_message


def use_library(scripts: str | Path) -> None:
    """At parse time: `check_library`, then `scripts` first on the ``PYTHONPATH`` that every job
    inherits (once, before the paths already there)."""
    check_library(scripts)
    folder = str(Path(scripts).resolve())
    others = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != folder]
    os.environ["PYTHONPATH"] = os.pathsep.join([folder, *others])


def check_library(scripts: str | Path) -> None:
    """RuntimeError naming both folders and the fix when `headlab` was not imported from `scripts`."""
    loaded, wanted = Path(headlab.__file__).resolve().parent.parent, Path(scripts).resolve()
    if loaded != wanted:
        raise RuntimeError(library_message(loaded, wanted))
