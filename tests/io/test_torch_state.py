"""`headlab.io.torch_state`: the saved record reads back equal, importing it needs no torch, and a
failed save leaves the previous file and no temporary behind (as tests/io/test_atomic.py checks
for every writer)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from headlab.io.torch_state import read_torch_state, write_torch_state

ROOT = Path(__file__).resolve().parents[2]


def record(k: int) -> dict[str, object]:
    generator = torch.Generator().manual_seed(k)
    return {
        "state_dict": {"w": torch.randn(3, 2, generator=generator), "n": torch.tensor(k)},
        "channels": [2, 3],
        "batch_norm": True,
        "size": 4 + k,
        "classes": ["a", "b"],
    }


def assert_same(got: dict[str, object], expected: dict[str, object]) -> None:
    assert list(got) == list(expected)
    for key, value in expected.items():
        if key == "state_dict":
            assert list(got[key]) == list(value)  # type: ignore[arg-type]
            for name, tensor in value.items():  # type: ignore[attr-defined]
                assert torch.equal(got[key][name], tensor) and got[key][name].dtype == tensor.dtype  # type: ignore[index]
        else:
            assert got[key] == value


def test_round_trip_in_a_new_folder(tmp_path: Path) -> None:
    target = tmp_path / "new" / "model.pt"
    assert write_torch_state(record(1), target) == target
    assert_same(read_torch_state(target), record(1))
    assert_same(torch.load(target, map_location="cpu", weights_only=True), record(1))  # the plain format
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.pt"]


def test_importing_it_loads_no_torch() -> None:
    code = "import sys, headlab.io.torch_state; sys.exit('torch' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(ROOT / "scripts")},
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()


def test_a_failed_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.pt"
    write_torch_state(record(1), target)
    before = target.read_bytes()
    original = torch.save

    def half_then_fail(obj: object, where: object) -> None:
        buffer = io.BytesIO()
        original(obj, buffer)
        Path(str(where)).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_torch_state(record(2), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
