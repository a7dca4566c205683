"""The library's package rules, as the README states them: import arrows only point down, and the
packages that the table rules run (no-torch environment) never load torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "scripts" / "headlab"
# Each package (or top-level module) and the headlab packages it may import besides itself.
BASE = {"conditions", "heads", "io"}  # leaves: they import nothing of headlab but io itself
ALLOWED: dict[str, set[str]] = {
    "conditions": set(),
    "heads": set(),
    "runtime": set(),
    "io": set(),
    "data": BASE,
    "model": BASE | {"data"},
    "analysis": BASE | {"data"},
    "measure": BASE | {"data", "model", "analysis"},
    "plots": BASE | {"analysis"},
    "jobs": BASE | {"data", "model", "analysis", "measure", "plots", "runtime"},
    "workflow": BASE | {"data", "model", "runtime"},
    "annotate": BASE | {"data"},
    "summary": set(),
}
# What the no-torch environment (envs/tables.yaml) imports: every module of these.
TORCH_FREE = ("conditions", "heads", "io", "data", "analysis", "plots", "workflow", "annotate", "summary")


def unit(module: Path) -> str:
    """The package (or top-level module) of a library file: 'analysis', 'conditions', ..."""
    parts = module.relative_to(LIBRARY).parts
    return parts[0] if len(parts) > 1 else module.stem


def imported_units(module: Path) -> set[tuple[str, int]]:
    """(unit, line) of every headlab import in the file, function-level ones included,
    `if TYPE_CHECKING:` blocks left out."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for child in block.body
        for node in ast.walk(child)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "headlab" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def library_modules() -> list[Path]:
    return sorted(p for p in LIBRARY.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_library_module_belongs_to_a_known_package() -> None:
    assert {unit(m) for m in library_modules() if m.name != "__init__.py" or m.parent != LIBRARY} <= set(
        ALLOWED
    )


def test_imports_only_point_down() -> None:
    wrong = [
        f"{module.relative_to(LIBRARY)}:{line} imports headlab.{target}"
        for module in library_modules()
        for target, line in sorted(imported_units(module))
        if target != unit(module) and target in ALLOWED and target not in ALLOWED[unit(module)]
    ]
    assert wrong == [], "\n".join(wrong)


def test_the_checker_sees_function_level_imports_and_skips_type_checking(tmp_path: Path) -> None:
    """The checker itself, on a hand-written module: an import inside a function counts (the
    rules' code lists count it too); one under `if TYPE_CHECKING:` does not."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "from headlab.data.tasks import get_task\n"
        "if TYPE_CHECKING:\n"
        "    from headlab.measure.maps import sample_maps\n"
        "def f():\n"
        "    from headlab.model.engine import head_count\n"
        "    return head_count\n",
        encoding="utf-8",
    )
    assert imported_units(probe) == {("data", 2), ("model", 6)}


@pytest.mark.parametrize("package", TORCH_FREE)
def test_table_packages_never_load_torch(package: str) -> None:
    """Importing every module of the package in a fresh interpreter leaves torch unloaded."""
    names = [
        "headlab." + ".".join(m.relative_to(LIBRARY).with_suffix("").parts)
        for m in library_modules()
        if unit(m) == package and m.name != "__init__.py"
    ] or [f"headlab.{package}"]
    code = "import sys\n" + "".join(f"import {n}\n" for n in names) + "print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", f"importing {package} loads torch"
