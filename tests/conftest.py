"""Test setup: the library and the tiny fixtures are importable; real data is located here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))


def shared_glue_dir() -> Path:
    """../shared/data/glue beside the checkout, or HEADLAB_GLUE_DIR."""
    return Path(os.environ.get("HEADLAB_GLUE_DIR", ROOT.parent / "shared" / "data" / "glue"))


@pytest.fixture
def glue_dir() -> Path:
    folder = shared_glue_dir()
    if not folder.is_dir():
        pytest.skip(f"real GLUE data folder {folder} not found (set HEADLAB_GLUE_DIR)")
    return folder
