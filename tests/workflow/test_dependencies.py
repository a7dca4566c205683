"""The code lists of jobs (`headlab.workflow.dependencies`): exact on a synthetic package, and on
the real library a superset of what each job really imports (checked in a fresh interpreter)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from headlab.workflow.dependencies import job_closure, job_code, module_closure, module_file

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
JOBS = SCRIPTS / "headlab" / "jobs"

# A synthetic library: two jobs of one job module import different modules in their bodies.
SYNTHETIC = {
    "__init__.py": '"""The package."""\n',
    "common.py": "import json\n\n\ndef shared() -> str:\n    return json.dumps({})\n",
    "typing_only.py": "class Thing:\n    pass\n",
    "unrelated.py": "import headlab.deep\n",
    "util.py": "import os\n",
    "other.py": "import headlab.util\n\n\ndef helper() -> None:\n    pass\n",
    "deep.py": "VALUE = 1\n",
    # every job runs through headlab.runtime.run_job, so each job's list has it (and its imports)
    "runtime.py": "import logging\n\nimport headlab.logs\n",
    "logs.py": "import logging\n",
    "pkg/__init__.py": "",
    "pkg/submodule.py": (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    import headlab.unrelated\n"
    ),
    "pkg/unused.py": "import headlab.unrelated\n",
    "chain/__init__.py": "",
    "chain/a.py": "import headlab.chain.b\n",
    "chain/b.py": "from headlab.chain import c\n",
    # a deferred import inside a library function may run, so it is followed
    "chain/c.py": "def later() -> int:\n    from headlab.deep import VALUE\n\n    return VALUE\n",
    "jobs/__init__.py": "",
    "jobs/rules.py": textwrap.dedent(
        """\
        from __future__ import annotations

        import logging
        import typing
        from dataclasses import dataclass
        from typing import TYPE_CHECKING

        from headlab.common import shared

        if TYPE_CHECKING:
            from headlab.typing_only import Thing

        if typing.TYPE_CHECKING:
            import headlab.unrelated


        @dataclass(frozen=True)
        class First:
            name: str


        @dataclass(frozen=True)
        class Second:
            name: str


        def first(job: First, logger: logging.Logger) -> None:
            from headlab.pkg import submodule

            import headlab.chain.a

            shared()


        def second(job: Second, logger: logging.Logger) -> Thing | None:
            from headlab.other import helper

            helper()
            return None
        """
    ),
    "jobs/relative.py": textwrap.dedent(
        """\
        from dataclasses import dataclass


        @dataclass(frozen=True)
        class Relative:
            name: str


        def relative(job: Relative, logger: object) -> None:
            from . import other
        """
    ),
}

COMMON = {
    "headlab",
    "headlab.jobs",
    "headlab.jobs.rules",
    "headlab.common",
    "headlab.runtime",
    "headlab.logs",
}
EXPECTED = {
    "first": COMMON
    | {
        "headlab.pkg",
        "headlab.pkg.submodule",
        "headlab.chain",
        "headlab.chain.a",
        "headlab.chain.b",
        "headlab.chain.c",
        "headlab.deep",
    },
    "second": COMMON | {"headlab.other", "headlab.util"},
}


def write_package(root: Path, files: dict[str, str]) -> Path:
    """The files under root/headlab; returns that folder (the `root=` of the functions)."""
    package = root / "headlab"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return package


def file_of(package: Path, name: str) -> str:
    """Independently of module_file: a package's __init__.py, else the module's .py file."""
    parts = name.split(".")[1:]
    folder = package.joinpath(*parts)
    return str(folder / "__init__.py" if folder.is_dir() else folder.with_suffix(".py"))


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return write_package(tmp_path, SYNTHETIC)


@pytest.mark.parametrize("function", sorted(EXPECTED))
def test_job_closure_is_exactly_its_own_imports_and_their_closure(package: Path, function: str) -> None:
    assert job_closure("headlab.jobs.rules", function, root=package) == EXPECTED[function]


@pytest.mark.parametrize("function", sorted(EXPECTED))
def test_job_code_lists_the_files_sorted(package: Path, function: str) -> None:
    expected = sorted(file_of(package, name) for name in EXPECTED[function])
    assert job_code("rules", function, root=package) == expected
    assert all(Path(path).is_file() for path in expected)


def test_module_closure_follows_a_chain_and_adds_package_inits(package: Path) -> None:
    assert module_closure(["headlab.chain.a"], root=package) == {
        "headlab",
        "headlab.chain",
        "headlab.chain.a",
        "headlab.chain.b",
        "headlab.chain.c",
        "headlab.deep",
    }
    # TYPE_CHECKING-only imports are not followed
    assert module_closure(["headlab.pkg.submodule"], root=package) == {
        "headlab",
        "headlab.pkg",
        "headlab.pkg.submodule",
    }


def test_module_file(package: Path) -> None:
    assert module_file("headlab", package) == package / "__init__.py"
    assert module_file("headlab.pkg", package) == package / "pkg" / "__init__.py"
    assert module_file("headlab.chain.c", package) == package / "chain" / "c.py"
    assert module_file("headlab.chain.c.later", package) is None  # a name, not a module
    assert module_file("json", package) is None


def test_a_relative_import_in_the_job_raises(package: Path) -> None:
    with pytest.raises(ValueError, match="relative import"):
        job_closure("headlab.jobs.relative", "relative", root=package)


def test_a_relative_import_in_a_reached_module_raises(tmp_path: Path) -> None:
    files = dict(SYNTHETIC)
    files["chain/b.py"] = "from . import c\n"
    package = write_package(tmp_path, files)
    with pytest.raises(ValueError, match="relative import"):
        job_closure("headlab.jobs.rules", "first", root=package)
    assert job_closure("headlab.jobs.rules", "second", root=package) == EXPECTED["second"]


def test_unknown_module_or_function_raises(package: Path) -> None:
    with pytest.raises(ValueError, match="no function 'absent'"):
        job_closure("headlab.jobs.rules", "absent", root=package)
    with pytest.raises(ValueError, match="not a module"):
        job_closure("headlab.jobs.missing", "first", root=package)


# ---------------------------------------------------------------------------------------------
# The real library: what a job imports when it runs is in its code list
# ---------------------------------------------------------------------------------------------


def dataclass_names(tree: ast.Module) -> set[str]:
    def is_dataclass(decorator: ast.expr) -> bool:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        return (isinstance(target, ast.Name) and target.id == "dataclass") or (
            isinstance(target, ast.Attribute) and target.attr == "dataclass"
        )

    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef) and any(is_dataclass(d) for d in node.decorator_list)
    }


def job_functions() -> list[tuple[str, str]]:
    """(job module, function) for each top-level function whose first parameter is annotated with a
    dataclass defined in its module."""
    found = []
    for path in sorted(JOBS.glob("*.py")):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = dataclass_names(tree)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.args.args:
                annotation = node.args.args[0].annotation
                name = ast.unparse(annotation).strip("'\"") if annotation is not None else None
                if name in classes:
                    found.append((path.stem, node.name))
    return found


def function_imports(module: str, function: str) -> list[str]:
    """The import statements inside the job function (nested blocks too), TYPE_CHECKING ones left out."""
    tree = ast.parse((JOBS / f"{module}.py").read_text(encoding="utf-8"))
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    statements: list[str] = []

    def visit(item: ast.AST) -> None:
        if isinstance(item, ast.If) and "TYPE_CHECKING" in ast.unparse(item.test):
            for child in item.orelse:
                visit(child)
            return
        if isinstance(item, ast.Import | ast.ImportFrom):
            statements.append(ast.unparse(item))
        for child in ast.iter_child_nodes(item):
            visit(child)

    for statement in node.body:
        visit(statement)
    return statements


CHILD = textwrap.dedent(
    """\
    import importlib, json, sys
    sys.path.insert(0, sys.argv[1])
    try:
        importlib.import_module(sys.argv[2])
        for statement in json.loads(sys.argv[3]):
            exec(statement, {})
    except ModuleNotFoundError as error:
        print(json.dumps({"missing": error.name, "error": repr(error)}))
        raise SystemExit(3)
    loaded = {
        name: module.__file__
        for name, module in sorted(sys.modules.items())
        if (name == "headlab" or name.startswith("headlab.")) and getattr(module, "__file__", None)
    }
    print(json.dumps({"loaded": loaded}))
    """
)

JOB_FUNCTIONS = job_functions()


def import_in_fresh_interpreter(module: str, function: str) -> subprocess.CompletedProcess[str]:
    statements = function_imports(module, function)
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(SCRIPTS), f"headlab.jobs.{module}", json.dumps(statements)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def import_runs() -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    """Every job's imports, each in its own interpreter, run a few at a time."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        runs = pool.map(lambda job: import_in_fresh_interpreter(*job), JOB_FUNCTIONS)
        return dict(zip(JOB_FUNCTIONS, runs, strict=True))


def test_the_jobs_folder_has_jobs() -> None:
    assert JOB_FUNCTIONS, f"no job functions found in {JOBS}"


@pytest.mark.parametrize(("module", "function"), JOB_FUNCTIONS, ids=[f"{m}:{f}" for m, f in JOB_FUNCTIONS])
def test_what_a_job_imports_is_in_its_code_list(
    module: str, function: str, import_runs: dict[tuple[str, str], subprocess.CompletedProcess[str]]
) -> None:
    run = import_runs[module, function]
    if run.returncode == 3:
        report = json.loads(run.stdout.strip().splitlines()[-1])
        missing = report["missing"] or ""
        assert missing != "headlab" and not missing.startswith("headlab."), (
            f"{module}:{function}: a library module fails to import: {report['error']}\n{run.stderr}"
        )
        # every dependency of a job is declared in pyproject.toml: one that does not import is a
        # broken install, not a reason to skip (tests/test_suite.py)
        pytest.fail(f"{module}:{function}: dependency {missing!r} does not import ({report['error']})")
    assert run.returncode == 0, f"{module}:{function}: imports failed\n{run.stdout}\n{run.stderr}"
    loaded = json.loads(run.stdout.strip().splitlines()[-1])["loaded"]
    assert f"headlab.jobs.{module}" in loaded
    listed = {Path(path).resolve() for path in job_code(module, function)}
    unlisted = {name: path for name, path in loaded.items() if Path(path).resolve() not in listed}
    assert not unlisted, f"{module}:{function} loads modules its code list lacks: {unlisted}"
