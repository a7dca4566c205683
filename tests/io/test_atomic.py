"""Fault injection for the one atomic writer (`headlab.io.atomic`) and every writer built on it.

Each writer is run once to completion, then again with its underlying write replaced by one that
writes part of the file (real bytes, into the temporary path it was given) and raises. The target
must then hold exactly its previous bytes and no hidden ``.<name>.*`` sibling may remain (the
error is caught, so the temporary path is cleaned up; only a killed process leaves one behind,
which the next write removes). Outputs get the modes `open()`/`mkdir()` give under the umask.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from matplotlib.figure import Figure
from transformers import BertForSequenceClassification, BertTokenizer

from headlab.analysis.table1 import TABLE1_SCHEMA, table1_markdown
from headlab.data.labels import LABEL_SCHEMA, read_labels, write_labels
from headlab.io.atomic import atomic_paths, write_atomically
from headlab.io.parquet import read_metadata, write_table, write_table_chunks
from headlab.io.png import png_bytes, write_png
from headlab.io.text import write_csv, write_text
from headlab.io.torch_state import write_torch_state
from headlab.measure.pattern_cnn import PatternCNN, cnn_record, load_cnn
from headlab.model.finetune import save_checkpoint
from headlab.plots.common import PNG_DPI, save_figure
from tiny import tiny_classifier, tiny_tokenizer

STALE_PID = 4_194_303  # above Linux's default pid_max: a process that is surely gone
STALE_HEX = "0123456789ab"

Snapshot = dict[str, bytes]  # relative path ("" for a plain file) -> bytes


class InjectedFault(OSError):
    """The error the patched write raises after writing part of its file."""


def hidden_siblings(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*"))


def snapshot(path: Path) -> Snapshot:
    """The bytes of a file, or of every file under a folder (by relative path)."""
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return {"": path.read_bytes()}


def is_temporary_of(path: Path, target: Path) -> bool:
    return path.parent == target.parent and path.name.startswith(f".{target.name}.")


@dataclass
class Fault:
    """What the patched write saw: the temporary paths it wrote part of before raising."""

    targets: list[Path]
    partial: list[Path] = field(default_factory=list)

    def write_part(self, tmp: Path, data: bytes) -> None:
        """Write the first half of `data` (at least one byte) into `tmp`, then raise."""
        assert any(is_temporary_of(Path(tmp), t) for t in self.targets), tmp
        Path(tmp).parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data[: max(1, len(data) // 2)])
        self.fail(Path(tmp))

    def fail(self, tmp: Path) -> None:
        assert tmp.exists(), f"the patched write left nothing in {tmp}"
        self.partial.append(tmp)
        raise InjectedFault(f"disk full while writing {tmp}")


@dataclass
class Case:
    """A writer under test.

    targets: the output paths beside `folder`; write(k, targets): write version k completely;
    check(k, targets): assert the targets hold version k, complete; inject(monkeypatch, fault):
    make the next write fail part-way; kept: indices of targets that must keep their previous
    content on that failure (the others are complete in one version or the other);
    folders: whether the targets are folders.
    """

    name: str
    targets: Callable[[Path], list[Path]]
    write: Callable[[int, list[Path]], object]
    check: Callable[[int, list[Path]], None]
    inject: Callable[[pytest.MonkeyPatch, Fault], None]
    kept: tuple[int, ...] | None = None
    folders: bool = False

    def kept_targets(self, targets: list[Path]) -> list[Path]:
        return targets if self.kept is None else [targets[i] for i in self.kept]


def patch_path_method(monkeypatch: pytest.MonkeyPatch, method: str, fault: Fault) -> None:
    """Path.<method>(data) writes half of its data into our temporaries, then raises."""
    original = getattr(Path, method)

    def partial(self: Path, data: str | bytes, *args: object, **kwargs: object) -> int:
        if not any(is_temporary_of(self, t) for t in fault.targets):
            return original(self, data, *args, **kwargs)
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        fault.write_part(self, raw)
        raise AssertionError("unreachable")

    monkeypatch.setattr(Path, method, partial)


def patch_write_csv(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    """polars' DataFrame.write_csv writes half of the real CSV into the temporary, then raises."""
    original = pl.DataFrame.write_csv

    def partial(self: pl.DataFrame, file: object = None, **kwargs: object) -> str | None:
        if file is None or not any(is_temporary_of(Path(str(file)), t) for t in fault.targets):
            return original(self, file, **kwargs)
        fault.write_part(Path(str(file)), original(self, None, **kwargs).encode("utf-8"))
        raise AssertionError("unreachable")

    monkeypatch.setattr(pl.DataFrame, "write_csv", partial)


# ---------------------------------------------------------------------------------------------
# Parquet
# ---------------------------------------------------------------------------------------------

PARQUET_SCHEMA = pa.schema([("x", pa.int64()), ("s", pa.string())])


def parquet_version(k: int, rows: int = 6) -> pa.Table:
    return pa.table({"x": [k * 100 + i for i in range(rows)], "s": [f"v{k}-{i}" for i in range(rows)]})


def check_parquet(k: int, targets: list[Path]) -> None:
    (target,) = targets
    assert pq.read_table(target).replace_schema_metadata(None).equals(parquet_version(k))
    assert read_metadata(target)["version"] == k


def inject_parquet(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    original = pq.write_table

    def partial(table: pa.Table, where: object, *args: object, **kwargs: object) -> None:
        original(table, where, *args, **kwargs)  # the real file, then cut to its first half
        tmp = Path(str(where))
        size = tmp.stat().st_size
        os.truncate(tmp, size // 2)
        fault.fail(tmp)

    monkeypatch.setattr(pq, "write_table", partial)


def chunk_version(k: int) -> list[pa.Table]:
    table = parquet_version(k, rows=9)
    return [table.slice(0, 3), table.slice(3, 3), table.slice(6, 3)]


def check_chunks(k: int, targets: list[Path]) -> None:
    (target,) = targets
    assert pq.ParquetFile(target).num_row_groups == len(chunk_version(k))
    assert pq.read_table(target).replace_schema_metadata(None).equals(parquet_version(k, rows=9))
    assert read_metadata(target)["version"] == k


# The chunks case has no patch of its own: its version-2 iterator raises after the first chunk.
FAILING_CHUNKS: dict[str, Fault] = {}


def write_chunks(k: int, targets: list[Path]) -> object:
    (target,) = targets
    fault = FAILING_CHUNKS.pop(str(target), None)
    chunks: Iterator[pa.Table] = iter(chunk_version(k))
    if fault is not None:
        chunks = raising_after_first(chunk_version(k), target, fault)
    return write_table_chunks(chunks, PARQUET_SCHEMA, target, {"version": k})


def raising_after_first(chunks: list[pa.Table], target: Path, fault: Fault) -> Iterator[pa.Table]:
    yield chunks[0]
    # The writer has opened its temporary file and written the first row group into it.
    (tmp,) = hidden_siblings(target)
    assert tmp.read_bytes().startswith(b"PAR1")
    fault.fail(tmp)


def inject_chunks(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    (target,) = fault.targets
    monkeypatch.setitem(FAILING_CHUNKS, str(target), fault)  # removed at teardown if unused


# ---------------------------------------------------------------------------------------------
# Checkpoint folder
# ---------------------------------------------------------------------------------------------

MODEL_FILES = ("config.json", "model.safetensors")
TOKENIZERS: dict[int, BertTokenizer] = {}


def write_checkpoint(k: int, targets: list[Path]) -> object:
    (folder,) = targets
    tokenizer = TOKENIZERS.pop(k, None) or tiny_tokenizer()
    return save_checkpoint(tiny_classifier(seed=k), tokenizer, folder)


def check_checkpoint(k: int, targets: list[Path]) -> None:
    (folder,) = targets
    expected = tiny_classifier(seed=k).state_dict()
    loaded = BertForSequenceClassification.from_pretrained(folder).state_dict()
    assert loaded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(loaded[name], tensor), name
    assert BertTokenizer.from_pretrained(folder).get_vocab() == tiny_tokenizer().get_vocab()


def inject_checkpoint(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    """The next checkpoint's tokenizer writes part of its vocabulary after the model, then raises."""
    tokenizer = tiny_tokenizer()
    vocab = "".join(f"{token}\n" for token in tokenizer.get_vocab()).encode("utf-8")

    def partial(staging: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        staging = Path(staging)
        for name in MODEL_FILES:  # the model was saved into the same staging folder first
            assert (staging / name).is_file(), name
        (staging / "vocab.txt").write_bytes(vocab[: len(vocab) // 2])
        fault.fail(staging)

    monkeypatch.setattr(tokenizer, "save_pretrained", partial)
    monkeypatch.setitem(TOKENIZERS, 1, tokenizer)


# ---------------------------------------------------------------------------------------------
# Figures (PDF + PNG)
# ---------------------------------------------------------------------------------------------

FIGURES: dict[int, Figure] = {}


def figure_version(k: int) -> Figure:
    figure = Figure(figsize=(2, 2))
    axes = figure.add_subplot()
    axes.plot([0, 1, 2], [k, 2 * k + 1, k * k])
    axes.set_title(f"version {k}")
    return figure


def figure_bytes(k: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    options = {"dpi": PNG_DPI} if fmt == "png" else {}
    figure_version(k).savefig(buffer, format=fmt, **options)
    return buffer.getvalue()


def figure_targets(folder: Path) -> list[Path]:
    return [folder / "figure.pdf", folder / "figure.png"]


def write_figure(k: int, targets: list[Path]) -> object:
    return save_figure(FIGURES.pop(k, None) or figure_version(k), targets[0])


def check_figure(k: int, targets: list[Path]) -> None:
    pdf, png = targets
    assert pdf.read_bytes() == figure_bytes(k, "pdf")
    assert png.read_bytes() == figure_bytes(k, "png")


def inject_figure(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    """The next figure's PNG save writes half a PNG, after its PDF was written, then raises."""
    figure = figure_version(1)
    original = figure.savefig

    def partial(where: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        if kwargs.get("format") != "png":
            return original(where, *args, **kwargs)
        pdf_tmp = [p for p in hidden_siblings(fault.targets[0]) if p.is_file()]
        assert len(pdf_tmp) == 1 and pdf_tmp[0].read_bytes() == figure_bytes(1, "pdf")
        fault.write_part(Path(where), figure_bytes(1, "png"))

    monkeypatch.setattr(figure, "savefig", partial)
    monkeypatch.setitem(FIGURES, 1, figure)


# ---------------------------------------------------------------------------------------------
# Table 1 (CSV + Markdown), PNG maps, the pattern CNN, the labels CSV
# ---------------------------------------------------------------------------------------------


def table1_version(k: int) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "model": f"model-{k}",
                "task": task,
                "metric": "Acc",
                "pretrained": f"{50 + k}.0",
                "scratch": f"{60 + k}.5",
                "finetuned": f"{70 + k}.9",
                "n_dev": 100 + i,
            }
            for i, task in enumerate(["SST-2", "RTE"])
        ],
        schema=TABLE1_SCHEMA,
    )


def table1_targets(folder: Path) -> list[Path]:
    return [folder / "table1.csv", folder / "table1.md"]


def write_table1_version(k: int, targets: list[Path]) -> object:
    write_csv(table1_version(k), targets[0])
    write_text(table1_markdown(table1_version(k)), targets[1])
    return None


def check_table1(k: int, targets: list[Path]) -> None:
    csv, md = targets
    assert csv.read_bytes() == table1_version(k).write_csv().encode("utf-8")
    assert md.read_bytes() == table1_markdown(table1_version(k)).encode("utf-8")


def png_version(k: int) -> np.ndarray:
    return np.arange(12, dtype=np.float64).reshape(3, 4) * (k + 1) % 5


def check_png(k: int, targets: list[Path]) -> None:
    assert targets[0].read_bytes() == png_bytes(png_version(k), scale=2)


CNN_CHANNELS = (2, 3)
CNN_SIZE = 4


def cnn_version(k: int) -> PatternCNN:
    torch.manual_seed(k)
    return PatternCNN(CNN_CHANNELS, batch_norm=True).eval()


def check_cnn(k: int, targets: list[Path]) -> None:
    model, size = load_cnn(targets[0])
    assert size == CNN_SIZE
    expected = cnn_version(k).state_dict()
    assert model.state_dict().keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(model.state_dict()[name], tensor), name


def inject_torch_save(monkeypatch: pytest.MonkeyPatch, fault: Fault) -> None:
    original = torch.save

    def partial(obj: object, where: object, *args: object, **kwargs: object) -> None:
        buffer = io.BytesIO()
        original(obj, buffer, *args, **kwargs)
        fault.write_part(Path(str(where)), buffer.getvalue())

    monkeypatch.setattr(torch, "save", partial)


def labels_version(k: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "map_id": [f"m{k}-{i}" for i in range(4)],
            "label": ["vertical", "diagonal", "heterogeneous", "block"],
            "annotator": [f"ann{k}"] * 4,
            "time": [f"2024-01-0{i + 1}T00:00:0{k}Z" for i in range(4)],
        },
        schema=LABEL_SCHEMA,
    )


def check_labels(k: int, targets: list[Path]) -> None:
    assert targets[0].read_bytes() == labels_version(k).write_csv().encode("utf-8")
    assert read_labels(targets[0]).equals(labels_version(k))


def single(name: str) -> Callable[[Path], list[Path]]:
    return lambda folder: [folder / name]


CASES = [
    Case(
        "write_table",
        single("table.parquet"),
        lambda k, t: write_table(parquet_version(k), t[0], {"version": k}),
        check_parquet,
        inject_parquet,
    ),
    Case("write_table_chunks", single("chunks.parquet"), write_chunks, check_chunks, inject_chunks),
    Case(
        "save_checkpoint",
        single("checkpoint"),
        write_checkpoint,
        check_checkpoint,
        inject_checkpoint,
        folders=True,
    ),
    Case("save_figure", figure_targets, write_figure, check_figure, inject_figure),
    Case(
        "write_csv + write_text of Table 1 (CSV fails)",
        table1_targets,
        write_table1_version,
        check_table1,
        lambda mp, fault: patch_write_csv(mp, fault),
    ),
    Case(
        "write_csv + write_text of Table 1 (Markdown fails)",
        table1_targets,
        write_table1_version,
        check_table1,
        lambda mp, fault: patch_path_method(mp, "write_text", fault),
        kept=(1,),
    ),
    Case(
        "write_png",
        single("map.png"),
        lambda k, t: write_png(t[0], png_version(k), scale=2),
        check_png,
        lambda mp, fault: patch_path_method(mp, "write_bytes", fault),
    ),
    Case(
        "write_torch_state of the CNN",
        single("cnn.pt"),
        lambda k, t: write_torch_state(cnn_record(cnn_version(k), CNN_SIZE, CNN_CHANNELS), t[0]),
        check_cnn,
        inject_torch_save,
    ),
    Case(
        "write_labels",
        single("labels.csv"),
        lambda k, t: write_labels(labels_version(k), t[0]),
        check_labels,
        lambda mp, fault: patch_write_csv(mp, fault),
    ),
]


@pytest.fixture(autouse=True)
def reproducible_pdf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Matplotlib dates PDFs by SOURCE_DATE_EPOCH when set, so equal figures give equal bytes."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")


@pytest.fixture(params=CASES, ids=[case.name for case in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


def fail_write(case: Case, targets: list[Path], monkeypatch: pytest.MonkeyPatch) -> Fault:
    """Version 1 with the injected fault: the writer raises it, and had written part of a temporary."""
    fault = Fault(targets)
    with monkeypatch.context() as patch:
        case.inject(patch, fault)
        with pytest.raises(InjectedFault):
            case.write(1, targets)
    assert fault.partial, "the fault was not injected: the writer did not call the patched write"
    return fault


def assert_no_temporaries(targets: list[Path], fault: Fault) -> None:
    for tmp in fault.partial:
        assert not tmp.exists(), f"{tmp} left behind after an error"
    for target in targets:
        assert hidden_siblings(target) == [], target


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


def test_failed_rewrite_keeps_the_previous_complete_target(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = case.targets(tmp_path / "out")
    case.write(0, targets)
    case.check(0, targets)
    before = {target: snapshot(target) for target in targets}

    fault = fail_write(case, targets, monkeypatch)

    for target in case.kept_targets(targets):
        assert snapshot(target) == before[target], f"{target} changed by a failed write"
    for target in targets:
        if target not in case.kept_targets(targets):  # written completely before the failure
            assert snapshot(target) in (before[target], snapshot_of_version(case, 1, tmp_path, target))
    assert_no_temporaries(targets, fault)
    # and the writer still works afterwards
    case.write(1, targets)
    case.check(1, targets)
    assert_no_temporaries(targets, Fault(targets))


def snapshot_of_version(case: Case, k: int, tmp_path: Path, target: Path) -> Snapshot:
    """The bytes `target` has when version k is written without a fault (in a scratch folder)."""
    scratch = case.targets(tmp_path / f"reference-{k}")
    case.write(k, scratch)
    return snapshot(scratch[case.targets(target.parent).index(target)])


def test_failed_first_write_leaves_no_target(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = case.targets(tmp_path / "out")
    fault = fail_write(case, targets, monkeypatch)
    for target in case.kept_targets(targets):
        assert not target.exists(), f"{target} exists after a failed first write"
    for target in targets:
        if target not in case.kept_targets(targets) and target.exists():
            assert snapshot(target) == snapshot_of_version(case, 1, tmp_path, target)
    assert_no_temporaries(targets, fault)


@pytest.mark.parametrize("before", [False, True], ids=["no-target", "previous-target"])
def test_next_write_removes_what_a_killed_write_left(case: Case, tmp_path: Path, before: bool) -> None:
    targets = case.targets(tmp_path / "out")
    if before:
        case.write(0, targets)
    stale = [t.parent / f".{t.name}.{STALE_PID}.{STALE_HEX}.tmp" for t in targets]
    for path in stale:  # what a process killed mid-write leaves: a partial hidden sibling
        path.parent.mkdir(parents=True, exist_ok=True)
        if case.folders:
            path.mkdir()
            (path / "config.json").write_bytes(b'{"hidden_si')
        else:
            path.write_bytes(b"PAR1\x00partial")
    assert all(hidden_siblings(t) for t in targets)

    case.write(1, targets)

    case.check(1, targets)
    for path in stale:
        assert not path.exists(), f"stale {path} survived the next write"
    for target in targets:
        assert hidden_siblings(target) == [], target


def umask_modes(folder: Path) -> tuple[int, int]:
    """(file mode, folder mode) that open() and mkdir() give under the current umask."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / "probe-file"
    with open(probe, "w"):
        pass
    (folder / "probe-dir").mkdir()
    return stat.S_IMODE(probe.stat().st_mode), stat.S_IMODE((folder / "probe-dir").stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027], ids=["umask-022", "umask-027"])
def test_outputs_get_the_usual_modes(case: Case, tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        file_mode, folder_mode = umask_modes(tmp_path / "probe")
        targets = case.targets(tmp_path / "out")
        case.write(0, targets)
    finally:
        os.umask(old)
    assert file_mode == 0o666 & ~mask and folder_mode == 0o777 & ~mask
    for target in targets:
        paths = [target, *target.rglob("*")] if target.is_dir() else [target]
        for path in paths:
            expected = folder_mode if path.is_dir() else file_mode
            assert stat.S_IMODE(path.stat().st_mode) == expected, f"{path}: {oct(path.stat().st_mode)}"


# ---------------------------------------------------------------------------------------------
# The primitives themselves
# ---------------------------------------------------------------------------------------------


def test_write_atomically_gives_the_writer_a_hidden_sibling(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "out.txt"
    seen: list[Path] = []

    def write(tmp: Path) -> None:
        seen.append(tmp)
        assert not target.exists()
        tmp.write_text("complete\n", encoding="utf-8")

    assert write_atomically(target, write) == target
    (tmp,) = seen
    assert is_temporary_of(tmp, target) and tmp.name.endswith(".tmp")
    assert target.read_text(encoding="utf-8") == "complete\n"
    assert not tmp.exists()


def test_atomic_paths_replaces_all_targets_only_when_the_block_succeeds(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")
    with pytest.raises(InjectedFault), atomic_paths(a, b) as (a_tmp, b_tmp):
        a_tmp.write_bytes(b"new a")
        b_tmp.write_bytes(b"new")
        raise InjectedFault("mid-block")
    assert (a.read_bytes(), b.read_bytes()) == (b"old a", b"old b")
    assert hidden_siblings(a) == hidden_siblings(b) == []
    with atomic_paths(a, b) as (a_tmp, b_tmp):
        a_tmp.write_bytes(b"new a")
        b_tmp.write_bytes(b"new b")
    assert (a.read_bytes(), b.read_bytes()) == (b"new a", b"new b")


def test_atomic_folder_replaces_a_previous_folder_whole(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    target.mkdir()
    (target / "only-in-old").write_bytes(b"old")
    with atomic_paths(target, folders=True) as (staging,):
        assert staging.is_dir() and list(staging.iterdir()) == []
        (staging / "new").write_bytes(b"new")
    assert snapshot(target) == {"new": b"new"}
    assert hidden_siblings(target) == []
