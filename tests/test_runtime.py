"""Typed job parameters from a snakemake object, the code-list check and `run_job`.

The snakemake object is a stand-in with Snakemake's own `Namedlist` containers, as a script
directive receives them: named entries by name, an expanded input as a list of files.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from snakemake.iocontainers import Namedlist

import headlab.io.png  # a library module surely loaded in this process (for the code-list checks)
from headlab.runtime import JobParameterError, check_code_list, convert, job_parameters, run_job
from headlab.workflow.library import check_library, use_library


class FakeSnakemake:
    """What a Snakemake script sees as ``snakemake``: the containers, log files, threads, rule."""

    def __init__(
        self,
        *,
        wildcards: Mapping[str, Any] | None = None,
        input: Mapping[str, Any] | None = None,
        output: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        log: Sequence[str] = (),
        threads: int = 1,
        rule: str = "demo_rule",
    ) -> None:
        self.wildcards = Namedlist(fromdict=dict(wildcards or {}))
        self.input = Namedlist(fromdict=dict(input or {}))
        self.output = Namedlist(fromdict=dict(output or {}))
        self.params = Namedlist(fromdict=dict(params or {}))
        self.log = Namedlist(list(log))
        self.threads = threads
        self.rule = rule


def files(*paths: str) -> Namedlist:
    """An expanded input or output: Snakemake holds it as a Namedlist of file names."""
    return Namedlist(list(paths))


@dataclass(frozen=True)
class Settings:
    rate: float
    steps: int = 1


@dataclass(frozen=True)
class Job:
    model: str  # wildcard
    task: str  # wildcard
    dev: Path  # input: expand() of one file
    tsv: Path | None  # optional input: an empty expand()
    sweeps: list[Path]  # input: several files
    table: Path  # output
    settings: Settings  # params: a mapping from the config
    named_mask: tuple[str, list[str]] | None  # params: [name, heads] from the config
    batch_size: int  # params
    log: Path | None = None
    threads: int = 1
    note: str = "default"  # not given by the rule: its default


def job_rule(**changes: Any) -> dict[str, Any]:
    """The keyword arguments of a FakeSnakemake for `Job`, with `changes` per namespace merged in."""
    namespaces: dict[str, Any] = {
        "wildcards": {"model": "tiny-bert", "task": "SST-2"},
        "input": {
            "dev": files("data/SST-2/dev.parquet"),
            "tsv": files(),
            "sweeps": files("a.parquet", "b.parquet"),
            "code": ["scripts/headlab/runtime.py"],
        },
        "output": {"table": "results/table.parquet"},
        "params": {
            "settings": {"rate": 0.5, "steps": 3},
            "named_mask": ["top", ["0-1", "2-3"]],
            "batch_size": 8,
        },
        "log": ["logs/demo.log"],
        "threads": 3,
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(namespaces.get(key), dict):
            namespaces[key] = {**namespaces[key], **value}
        else:
            namespaces[key] = value
    for key in ("wildcards", "input", "output", "params"):
        namespaces[key] = {k: v for k, v in namespaces[key].items() if v is not DROP}
    return namespaces


DROP = object()

EXPECTED_JOB = Job(
    model="tiny-bert",
    task="SST-2",
    dev=Path("data/SST-2/dev.parquet"),
    tsv=None,
    sweeps=[Path("a.parquet"), Path("b.parquet")],
    table=Path("results/table.parquet"),
    settings=Settings(rate=0.5, steps=3),
    named_mask=("top", ["0-1", "2-3"]),
    batch_size=8,
    log=Path("logs/demo.log"),
    threads=3,
)


# ---------------------------------------------------------------------------------------------
# job_parameters
# ---------------------------------------------------------------------------------------------


def test_every_field_is_found_by_name_and_converted() -> None:
    job = job_parameters(Job, FakeSnakemake(**job_rule()))
    assert job == EXPECTED_JOB  # a str is never equal to a Path, nor a list to a tuple
    assert isinstance(job.dev, Path) and isinstance(job.table, Path)
    assert all(isinstance(p, Path) for p in job.sweeps)
    assert type(job.named_mask) is tuple and type(job.named_mask[1]) is list
    assert type(job.settings) is Settings


def test_no_log_gives_none_and_threads_are_an_int() -> None:
    job = job_parameters(Job, FakeSnakemake(**job_rule(log=[], threads=2)))
    assert job.log is None
    assert job.threads == 2 and type(job.threads) is int


def test_an_optional_input_with_a_file_is_that_path() -> None:
    job = job_parameters(Job, FakeSnakemake(**job_rule(input={"tsv": files("glue/SST-2/dev.tsv")})))
    assert job.tsv == Path("glue/SST-2/dev.tsv")


def test_a_missing_field_names_the_rule_and_the_field() -> None:
    rule = FakeSnakemake(**job_rule(params={"batch_size": DROP}))
    with pytest.raises(JobParameterError, match=r"rule demo_rule: Job\.batch_size is not given"):
        job_parameters(Job, rule)


def test_a_name_in_two_namespaces_is_an_error_naming_both() -> None:
    rule = FakeSnakemake(**job_rule(params={"table": "elsewhere.parquet"}))
    with pytest.raises(JobParameterError, match=r"rule demo_rule: 'table' is given twice \(params, output\)"):
        job_parameters(Job, rule)


def test_an_entry_without_a_field_is_an_error_but_code_is_ignored() -> None:
    rule = FakeSnakemake(**job_rule(input={"extra": files("x.parquet")}))
    with pytest.raises(JobParameterError, match=r"rule demo_rule: Job has no field for \['extra'\]"):
        job_parameters(Job, rule)
    without_code = job_rule()
    without_code["input"].pop("code")
    assert job_parameters(Job, FakeSnakemake(**without_code)) == EXPECTED_JOB


def test_unread_wildcards_and_the_png_beside_a_pdf_need_no_field() -> None:
    """The class describes what the job reads: a wildcard it does not use and the PNG that the
    plotting function writes beside a PDF output are not parameters; any other PNG output is."""

    def figure_rule(png: str) -> FakeSnakemake:
        return FakeSnakemake(
            wildcards={"model": "tiny-bert", "seed": "42"},
            output={"pdf": "results/figure.pdf", "png": png},
            params={"title": "Figure 8"},
            log=["logs/figure.log"],
        )

    job = job_parameters(Figure, figure_rule("results/figure.png"))
    assert job == Figure(title="Figure 8", pdf=Path("results/figure.pdf"), log=Path("logs/figure.log"))
    with pytest.raises(JobParameterError, match=r"Figure has no field for \['png'\]"):
        job_parameters(Figure, figure_rule("results/other.png"))


@dataclass(frozen=True)
class Figure:
    title: str
    pdf: Path
    log: Path | None = None
    threads: int = 1


def test_a_rule_without_a_name_is_reported_as_unknown() -> None:
    rule = FakeSnakemake(**job_rule(params={"batch_size": DROP}))
    del rule.rule
    with pytest.raises(JobParameterError, match=r"rule \?: Job\.batch_size"):
        job_parameters(Job, rule)


# ---------------------------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ("a/b.parquet", Path, Path("a/b.parquet")),
        (files("a/b.parquet"), Path, Path("a/b.parquet")),  # an expand() of one file
        (files("a/b.parquet"), Path | None, Path("a/b.parquet")),
        (files(), Path | None, None),  # an empty optional input
        (None, Path | None, None),
        ([], list[Path], []),
        (files("a", "b", "c"), list[Path], [Path("a"), Path("b"), Path("c")]),
        (("a", "b"), list[str], ["a", "b"]),
        (["a", "b"], tuple[str, ...], ("a", "b")),
        (["top", ("0-1", "2-3")], tuple[str, list[str]], ("top", ["0-1", "2-3"])),
        (["top", ["0-1"]], tuple[str, list[str]] | None, ("top", ["0-1"])),
        (None, tuple[str, list[str]] | None, None),
        ({"rate": 0.25}, Settings, Settings(rate=0.25, steps=1)),
        ({"rate": 0.25, "steps": 4}, Settings | None, Settings(rate=0.25, steps=4)),
        (MappingProxyType({"x": 1}), dict, {"x": 1}),
        ({"SST-2": ["accuracy"]}, dict[str, list[str]], {"SST-2": ["accuracy"]}),
        (7, str, "7"),
        (7, int, 7),
        ("43", int, 43),  # a wildcard such as {seed}
    ],
)
def test_convert(value: Any, annotation: Any, expected: Any) -> None:
    result = convert("field", value, annotation)
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(expected, list | tuple):
        assert [type(item) for item in result] == [type(item) for item in expected]


@pytest.mark.parametrize(
    ("value", "annotation", "message"),
    [
        (files(), Path, "expected one path, got 0"),
        (files("a", "b"), Path, "expected one path, got 2"),
        (None, Path, "does not allow None"),
        (["top"], tuple[str, list[str]], "expected 2 items, got 1"),
        ("4x", int, "'4x' is not an integer"),
    ],
)
def test_convert_errors_name_the_field(value: Any, annotation: Any, message: str) -> None:
    with pytest.raises(JobParameterError, match=rf"^rule r: field: (.* )?{message}"):
        convert("rule r: field", value, annotation)


def test_a_nested_dataclass_is_built_from_the_mapping_of_a_params_entry() -> None:
    job = job_parameters(Job, FakeSnakemake(**job_rule(params={"settings": {"rate": 1e-3}})))
    assert job.settings == Settings(rate=1e-3, steps=1)


# ---------------------------------------------------------------------------------------------
# The code list and run_job
# ---------------------------------------------------------------------------------------------


def headlab_files_loaded() -> set[Path]:
    """Independently of the runtime: the files of the headlab modules in sys.modules."""
    found = set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "headlab" or name.startswith("headlab.")) and path:
            found.add(Path(path).resolve())
    return found


PNG_FILE = Path(headlab.io.png.__file__).resolve()


def test_check_code_list_names_a_loaded_module_missing_from_the_list() -> None:
    loaded = headlab_files_loaded()
    assert PNG_FILE in loaded
    listed = sorted(str(p) for p in loaded - {PNG_FILE})
    with pytest.raises(RuntimeError, match="rule some_rule") as error:
        check_code_list(listed, "some_rule")
    assert f"[{str(PNG_FILE)!r}]" in str(error.value)  # that one, and only that one


def test_check_code_list_names_both_libraries_when_another_clone_was_loaded(tmp_path: Path) -> None:
    """A job of clone B that imported clone A's headlab (A's `pip install -e` first on the path):
    the error says so, names both folders and the fix, instead of listing every module."""
    other = tmp_path / "clone-b" / "scripts"
    listed = [str(other / "headlab" / p.relative_to(PNG_FILE.parents[1])) for p in headlab_files_loaded()]
    with pytest.raises(RuntimeError, match="rule some_rule: this workflow's library is") as error:
        check_code_list(listed, "some_rule")
    message = str(error.value)
    assert f"{other.resolve()}/headlab" in message and f"{PNG_FILE.parents[2]}/headlab" in message
    assert f"PYTHONPATH={other.resolve()}" in message


def test_check_code_list_passes_when_every_loaded_module_is_listed(tmp_path: Path) -> None:
    listed = [str(p) for p in headlab_files_loaded()]
    check_code_list(listed, "some_rule")
    # listed files that were not loaded are fine; relative and absolute spellings are the same file
    relative = [os.path.relpath(p) for p in listed]
    check_code_list([*relative, str(tmp_path / "never_loaded.py")], "some_rule")


@dataclass(frozen=True)
class Small:
    model: str
    table: Path
    log: Path | None = None
    threads: int = 1


@dataclass
class Seen:
    jobs: list[Small] = field(default_factory=list)
    omp: list[str | None] = field(default_factory=list)


SEEN = Seen()


def small_job(job: Small, logger: logging.Logger) -> str:
    SEEN.jobs.append(job)
    SEEN.omp.append(os.environ.get("OMP_NUM_THREADS"))
    logger.info("scoring %s into %s", job.model, job.table)
    logger.warning("a warning of %s", job.model)
    return f"done {job.model}"


@pytest.fixture
def job_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """run_job sets the 'headlab' logger, sys.excepthook, OMP_NUM_THREADS and torch's threads:
    put them back afterwards."""
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    logger = logging.getLogger("headlab")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    SEEN.jobs.clear()
    SEEN.omp.clear()
    yield
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    if torch is not None and torch_threads is not None:
        torch.set_num_threads(torch_threads)


def small_rule(tmp_path: Path, code: list[str] | None) -> FakeSnakemake:
    inputs: dict[str, Any] = {} if code is None else {"code": code}
    return FakeSnakemake(
        wildcards={"model": "tiny-bert"},
        input=inputs,
        output={"table": str(tmp_path / "out.parquet")},
        log=[str(tmp_path / "logs" / "deep" / "small.log")],
        threads=2,
        rule="small_rule",
    )


@pytest.mark.usefixtures("job_process_state")
def test_run_job_logs_into_the_rule_log_file(tmp_path: Path) -> None:
    result = run_job(small_job, small_rule(tmp_path, code=None))

    assert result == "done tiny-bert"
    log = tmp_path / "logs" / "deep" / "small.log"
    assert SEEN.jobs == [Small(model="tiny-bert", table=tmp_path / "out.parquet", log=log, threads=2)]
    assert SEEN.omp == ["2"]  # the rule's threads
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"INFO scoring tiny-bert into {tmp_path / 'out.parquet'}")
    assert lines[1].endswith("WARNING a warning of tiny-bert")


@pytest.mark.usefixtures("job_process_state")
def test_run_job_checks_the_code_list_after_the_job(tmp_path: Path) -> None:
    listed = [str(p) for p in headlab_files_loaded()]
    assert run_job(small_job, small_rule(tmp_path, code=listed)) == "done tiny-bert"

    incomplete = [p for p in listed if Path(p) != PNG_FILE]
    with pytest.raises(RuntimeError, match=r"rule small_rule: .*png\.py"):
        run_job(small_job, small_rule(tmp_path, code=incomplete))
    assert len(SEEN.jobs) == 2  # the job ran before the check failed


def test_check_library_stops_a_workflow_whose_headlab_comes_from_elsewhere(tmp_path: Path) -> None:
    """At parse time: the workflow's scripts/ folder is not where headlab was imported from."""
    check_library(PNG_FILE.parents[2])  # this checkout's own library: fine
    with pytest.raises(RuntimeError, match="this workflow's library is") as error:
        check_library(tmp_path / "scripts")
    assert str(PNG_FILE.parents[2]) in str(error.value) and f"PYTHONPATH={tmp_path}" in str(error.value)


def test_use_library_puts_the_workflows_library_first_on_the_jobs_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = PNG_FILE.parents[2]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/elsewhere/scripts", str(own)]))
    use_library(own)
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(own), "/elsewhere/scripts"]
