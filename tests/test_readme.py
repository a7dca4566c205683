"""The README's layout table names exactly the library's modules, and each has a docstring."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "scripts" / "headlab"
MAX_LINES = 420  # "about 400"


def library_modules() -> set[str]:
    """package/module names of every library module (top-level ones as 'top level/name')."""
    names = set()
    for path in LIBRARY.rglob("*.py"):
        if path.name == "__init__.py":
            continue
        relative = path.relative_to(LIBRARY)
        package = relative.parts[0] + "/" if len(relative.parts) > 1 else "top level"
        names.add(f"{package}:{path.stem}")
    return names


def readme_modules() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| package | modules |") :]
    table = table[: table.index("\n\n")]
    names = set()
    for line in table.splitlines()[2:]:
        package, modules = (cell.strip() for cell in line.strip("|").split("|", 1))
        package = package.strip("`")
        # module names are the backticked words at the start of a list item
        for item in re.split(r",\s*(?![^()]*\))", modules):
            match = re.match(r"\s*(?:[^`,()]*: )?`(\w+)`", item)  # after an optional "what they are: "
            if match:
                names.add(f"{package}:{match.group(1)}")
    return names


def test_readme_layout_lists_every_library_module_and_no_other() -> None:
    on_disk, in_readme = library_modules(), readme_modules()
    assert on_disk - in_readme == set(), "modules missing from the README layout table"
    assert in_readme - on_disk == set(), "the README layout table names modules that do not exist"


def test_every_module_says_its_job_and_stays_small() -> None:
    for path in sorted(LIBRARY.rglob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert docstring and docstring.strip(), f"{path} has no docstring"
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert lines <= MAX_LINES, f"{path} has {lines} lines (more than about 400)"
