"""The library modules a job depends on, derived from import statements (no module is imported).

A rule lists these as its ``code`` input, so that editing one reruns exactly the jobs whose
numbers it can change (Snakemake compares contents). For a job function ``jobs/<module>.py:
<function>`` the closure starts from the job module's top-level imports and the imports inside
that function (jobs import their heavy modules inside the function, so that a figure job of a
rules file does not depend on the model code of its neighbours), then follows every import of
every library module reached, at any depth (a module's deferred imports may run). Imports under
``if TYPE_CHECKING:`` never run and are left out. Each module brings its package ``__init__``
files. `headlab.runtime.check_code_list` checks the result against what a job really loaded.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "headlab"
LIBRARY_ROOT = Path(__file__).resolve().parents[1]  # scripts/headlab
RUNNER = f"{PACKAGE}.runtime"


def module_file(name: str, root: Path = LIBRARY_ROOT) -> Path | None:
    """The file of library module `name` (``headlab.model.engine``); None outside the library."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")[1:]
    folder = root.joinpath(*parts)
    if (folder / "__init__.py").is_file():
        return folder / "__init__.py"
    candidate = root.joinpath(*parts[:-1], parts[-1] + ".py") if parts else root / "__init__.py"
    return candidate if candidate.is_file() else None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(node: ast.AST) -> list[str]:
    """Module names an import statement can load: ``from a.b import c`` gives a.b and a.b.c."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    if isinstance(node, ast.ImportFrom) and node.level:
        raise ValueError("relative imports are not used in headlab (the closure could not follow them)")
    return []


def _imports(nodes: list[ast.stmt], skip_functions: bool) -> list[str]:
    """Imports in `nodes`, recursively; with `skip_functions`, not those inside def bodies."""
    found: list[str] = []
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if skip_functions and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        found += _imported_names(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _packages_of(name: str) -> list[str]:
    """headlab.model.engine -> [headlab, headlab.model]."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _library_modules(names: list[str], root: Path) -> list[str]:
    """The names among `names` that are library modules (a ``from x import name`` may be either)."""
    return [n for n in names if module_file(n, root) is not None]


def module_closure(start: list[str], root: Path = LIBRARY_ROOT) -> set[str]:
    """Every library module reachable from the modules `start` through import statements."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name, root)
        assert path is not None, name
        imported = _imports(_tree(path).body, skip_functions=False)
        todo += _library_modules(imported, root) + _packages_of(name)
    return seen


def job_closure(module: str, function: str, root: Path = LIBRARY_ROOT) -> set[str]:
    """The library modules job `function` of job module `module` (``headlab.jobs.ablation``) needs."""
    path = module_file(module, root)
    if path is None:
        raise ValueError(f"{module} is not a module of the library under {root}")
    tree = _tree(path)
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    if not body:
        raise ValueError(f"{module} has no function {function!r}")
    start = _imports(tree.body, skip_functions=True) + _imports(body[0].body, skip_functions=False)
    # The job module itself is not followed (its other jobs' imports are not this job's).
    # Every job runs through headlab.runtime.run_job (the adapters' one call).
    own = {module, *_packages_of(module)}
    reached = _library_modules(start, root) + _packages_of(module) + [RUNNER]
    return own | module_closure(reached, root)


def job_code(rules_file: str, function: str, root: Path = LIBRARY_ROOT) -> list[str]:
    """The files of `job_closure` for ``headlab.jobs.<rules_file>:<function>``, sorted."""
    names = job_closure(f"{PACKAGE}.jobs.{rules_file}", function, root)
    return sorted(str(module_file(name, root)) for name in names)
