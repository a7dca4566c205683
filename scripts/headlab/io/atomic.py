"""The one atomic writer: every output is written under a hidden temporary name and renamed into place.

A writer gets temporary paths beside its targets (`atomic_paths`), writes whatever it writes
there (Parquet, PDF, PNG, CSV, a checkpoint folder), and only when the block succeeds are they
renamed onto the targets. A crash or kill mid-write leaves the previous complete target (or
none) and a hidden ``.<name>.*`` sibling at most, which the next write of that target deletes
(`remove_stale_siblings`). Temporary names are not created here (no mkstemp/mkdtemp), so the
writer's umask gives the outputs their usual modes.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path


def temporary_name(target: Path) -> Path:
    """An unused hidden name beside `target` (same folder, so the rename is atomic)."""
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def remove_stale_siblings(target: Path) -> None:
    """Delete hidden '.<name>.<pid>.<hex>.tmp' leftovers of an earlier attempt that was killed
    mid-write (only that exact pattern: another target's temporary is never touched)."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.\d+\.[0-9a-f]{{12}}\.tmp$")
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        if not pattern.match(stale.name):
            continue
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def _discard(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _usual_modes(tmp: Path) -> None:
    """Give `tmp` (and, for a folder, everything in it) the modes the umask gives a new file or
    folder: some writers create their files 0600 (safetensors' save_file does)."""
    mask = os.umask(0)
    os.umask(mask)
    paths = [tmp, *tmp.rglob("*")] if tmp.is_dir() else [tmp]
    for path in paths:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def _replace(tmp: Path, target: Path) -> None:
    """Rename `tmp` onto `target`; a folder target is removed first (rename cannot replace one)."""
    if tmp.is_dir() and target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_paths(*targets: str | os.PathLike[str], folders: bool = False) -> Iterator[list[Path]]:
    """Temporary paths beside each target, renamed onto their targets when the block succeeds.

    With ``folders=True`` each temporary path is created as an empty folder (for writers such as
    ``save_pretrained`` that fill a directory). On an error every temporary path is removed and
    the targets are left as they were.
    """
    paths = [Path(t) for t in targets]
    temps: list[Path] = []
    try:
        for target in paths:
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_siblings(target)
            tmp = temporary_name(target)
            if folders:
                tmp.mkdir()
            temps.append(tmp)
        yield temps
        for tmp, target in zip(temps, paths, strict=True):
            _usual_modes(tmp)
            _replace(tmp, target)
    finally:
        for tmp in temps:
            _discard(tmp)


def write_atomically(target: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call `write(tmp)` on a temporary path beside `target`, then rename it onto `target`."""
    with atomic_paths(target) as (tmp,):
        write(tmp)
    return Path(target)
