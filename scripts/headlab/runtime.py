"""What every job needs: its typed parameters from the snakemake object, a log file, progress bars, threads.

A job is a function ``job(params, logger)`` whose first argument is a frozen dataclass of
everything the rule hands it: wildcards, inputs, outputs, params, ``log`` and ``threads``, by
field name. `run_job` builds that object from the ``snakemake`` object of a Snakemake script
(`job_parameters`), so an adapter script is two lines and no argument list is written twice;
tests build the dataclass by keyword. After the job, `run_job` checks that every library module
the job loaded is listed in the rule's ``code`` input, the list that makes an edited module
rerun the job (derived by `headlab.workflow.dependencies`).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

P = TypeVar("P")
# Entries of a rule that are not job parameters: the library modules it depends on.
NOT_PARAMETERS = frozenset({"code"})
NAMESPACES = ("wildcards", "params", "input", "output")


class JobParameterError(TypeError):
    """A rule and its job's parameter class disagree (a missing, unknown or ambiguous name)."""


def job_logger(log_path: str | Path | None, name: str = "headlab") -> logging.Logger:
    """A logger that writes to the job's log file (and stderr when there is none)."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    handler: logging.Handler
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_path, mode="w")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    _log_uncaught_exceptions(logger)
    return logger


def _log_uncaught_exceptions(logger: logging.Logger) -> None:
    """A job that dies still leaves its traceback in its log (what --show-failed-logs prints)."""
    default_hook = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        logger.error("job failed: %s", error, exc_info=(kind, error, trace))
        default_hook(kind, error, trace)

    sys.excepthook = hook


def log_stream(logger: logging.Logger) -> TextIO:
    """The stream behind the logger's first handler, for tqdm to draw into."""
    for handler in logger.handlers:
        stream = getattr(handler, "stream", None)
        if stream is not None:
            return stream
    return sys.stderr


def progress_bar(logger: logging.Logger, total: int, desc: str) -> tqdm:
    """A tqdm bar written into the job's log, refreshed at most every 5 s (logs stay short)."""
    return tqdm(
        total=total, desc=desc, file=log_stream(logger), mininterval=5.0, ascii=True, dynamic_ncols=False
    )


def limit_threads(threads: int) -> None:
    """Use exactly the cores Snakemake gave the job: torch reads OMP_NUM_THREADS when it is first
    imported (the data and plotting environments never import it); if it already is, it is told."""
    count = max(1, int(threads))
    os.environ["OMP_NUM_THREADS"] = str(count)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(count)


# ---------------------------------------------------------------------------------------------
# Typed job parameters
# ---------------------------------------------------------------------------------------------


def _optional(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        allows_none = len(args) < len(typing.get_args(annotation))
        return (args[0] if len(args) == 1 else annotation), allows_none
    return annotation, False


def convert(name: str, value: Any, annotation: Any) -> Any:
    """`value` (as Snakemake holds it) as the field's annotated type.

    Paths: a string, or an expanded input of exactly one file; ``Path | None``: an absent or
    empty input is None; ``list[Path]``/``list[str]``: any sequence; a dataclass: from a mapping;
    ``dict``: a plain dict; ``int`` from a string (a wildcard). Other values are passed as they are.
    """
    inner, allows_none = _optional(annotation)
    is_sequence = isinstance(value, list | tuple)
    if value is None or (allows_none and is_sequence and len(value) == 0 and inner is Path):
        if not allows_none:
            raise JobParameterError(f"{name}: no value, and the field does not allow None")
        return None
    origin = typing.get_origin(inner)
    if inner is Path:
        if is_sequence:
            if len(value) != 1:
                raise JobParameterError(f"{name}: expected one path, got {len(value)}: {list(value)}")
            value = value[0]
        return Path(str(value))
    args = typing.get_args(inner)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise JobParameterError(f"{name}: expected {len(args)} items, got {len(value)}")
        return tuple(convert(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin in (list, tuple):
        if isinstance(value, str | os.PathLike):
            value = [value]  # one file given where a list is expected
        item = (args or (Any,))[0]
        items = [convert(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict or inner is dict:
        return dict(value)
    if dataclasses.is_dataclass(inner) and isinstance(value, Mapping):
        return inner(**dict(value))
    if inner is str and not isinstance(value, str):
        return str(value)
    if inner is int and isinstance(value, str):  # a wildcard, e.g. {seed}
        try:
            return int(value)
        except ValueError as error:
            raise JobParameterError(f"{name}: {value!r} is not an integer") from error
    return value


def _entries(snakemake: Any) -> dict[str, list[tuple[str, Any]]]:
    """name -> [(namespace, value)] over wildcards, params, inputs, outputs, log and threads."""
    found: dict[str, list[tuple[str, Any]]] = {}
    for namespace in NAMESPACES:
        for name, value in getattr(snakemake, namespace).items():
            if name not in NOT_PARAMETERS:
                found.setdefault(name, []).append((namespace, value))
    logs = list(snakemake.log)
    found.setdefault("log", []).append(("log", Path(logs[0]) if logs else None))
    found.setdefault("threads", []).append(("threads", int(snakemake.threads)))
    return found


def _implicit_entries(snakemake: Any) -> set[str]:
    """Rule entries a job need not take: the wildcards (they are part of the paths it is given),
    ``log`` and ``threads``, and each output that is the PNG beside a PDF output (the plotting
    function writes it, `headlab.plots.common.save_figure`)."""
    outputs = {name: str(value) for name, value in snakemake.output.items()}
    pdfs = {value[: -len(".pdf")] for value in outputs.values() if value.endswith(".pdf")}
    companions = {name for name, value in outputs.items() if value.endswith(".png") and value[:-4] in pdfs}
    return {*snakemake.wildcards.keys(), "log", "threads", *companions}


def job_parameters(cls: type[P], snakemake: Any) -> P:
    """An instance of the dataclass `cls` from a Snakemake script's ``snakemake`` object.

    Every field is looked up by name among the wildcards, params, inputs and outputs (plus
    ``log``, the first log file, and ``threads``). The class describes what the job reads: a
    wildcard, the log, the threads and the PNG beside a PDF output may have no field. A name
    found in two of them, any other rule entry the class has no field for, or a field without
    default that the rule does not give, is an error naming the rule and the name.
    """
    rule = getattr(snakemake, "rule", "?")
    hints = typing.get_type_hints(cls)
    found = _entries(snakemake)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    implicit = _implicit_entries(snakemake)
    unknown = [n for n in found if n not in fields and n not in implicit]
    if unknown:
        raise JobParameterError(f"rule {rule}: {cls.__name__} has no field for {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, field in fields.items():
        where = found.get(name, [])
        if len(where) > 1:
            places = ", ".join(namespace for namespace, _ in where)
            raise JobParameterError(f"rule {rule}: {name!r} is given twice ({places})")
        if not where:
            no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if no_default:
                raise JobParameterError(f"rule {rule}: {cls.__name__}.{name} is not given by the rule")
            continue
        values[name] = convert(f"rule {rule}: {name}", where[0][1], hints[name])
    return cls(**values)


def parameter_class(job: Callable[..., Any]) -> type:
    """The dataclass annotated on a job's first argument."""
    first = next(iter(inspect.signature(job).parameters))
    cls = typing.get_type_hints(job).get(first)
    if not dataclasses.is_dataclass(cls):
        raise JobParameterError(f"{job.__name__}: its first argument is not annotated with a dataclass")
    return cls


def loaded_library_files() -> set[Path]:
    """The files of every headlab module imported in this process."""
    files = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "headlab" or name.startswith("headlab.")) and path:
            files.add(Path(path).resolve())
    return files


def library_message(loaded: Path, wanted: Path) -> str:
    """What happened and what to do when Python imported headlab from the `scripts/` folder
    `loaded` but the workflow's library lies in `wanted`."""
    return (
        f"this workflow's library is {wanted}/headlab, but Python imported headlab from {loaded}/headlab "
        "(an editable install of another clone comes first on the path). Run Snakemake with "
        f"PYTHONPATH={wanted}, or `pip install -e` this clone ({wanted.parent}) in the environment."
    )


def _scripts_folder(path: Path) -> Path | None:
    """The folder above the `headlab` package that a library file belongs to, or None."""
    return next((parent.parent for parent in Path(path).parents if parent.name == "headlab"), None)


def check_code_list(code: list[str], rule: str) -> None:
    """Every headlab module this job loaded must be in the rule's ``code`` input (else editing it
    would not rerun the job): an error naming the missing modules, or, when the job loaded
    another clone's library than its rule lists, an error saying so and what to do."""
    listed = {Path(p).resolve() for p in code}
    loaded = loaded_library_files()
    roots = {_scripts_folder(p) for p in loaded} - {None}
    wanted = {_scripts_folder(p) for p in listed} - {None}
    if len(roots) == 1 and len(wanted) == 1 and roots != wanted:
        raise RuntimeError(f"rule {rule}: {library_message(roots.pop(), wanted.pop())}")  # type: ignore[arg-type]
    missing = sorted(str(p) for p in loaded - listed)
    if missing:
        raise RuntimeError(
            f"rule {rule}: the job loaded library modules that its code input does not list: {missing}"
            " (headlab.workflow.dependencies derives the list from import statements)"
        )


def run_job(job: Callable[[Any, logging.Logger], Any], snakemake: Any) -> Any:
    """Build the job's parameters from `snakemake`, log into the rule's log file, limit threads,
    run it, then check the rule's code list."""
    params = job_parameters(parameter_class(job), snakemake)
    logger = job_logger(getattr(params, "log", None))
    limit_threads(int(snakemake.threads))
    result = job(params, logger)
    code = snakemake.input.get("code")
    if code is not None:
        check_code_list(list(code), getattr(snakemake, "rule", "?"))
    return result
