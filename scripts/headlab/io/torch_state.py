"""Torch records out and in (the pattern CNN's state_dict with its architecture), written atomically.

`write_torch_state` saves a record (a dict of tensors and plain values) with ``torch.save``
through the one atomic writer (`headlab.io.atomic`), so a failed or killed save never leaves a
half-written file under the target name; `read_torch_state` loads it back on the CPU with
``weights_only=True`` (tensors, containers and plain values only: nothing is unpickled that
could run code). torch is imported inside each function, so importing this module needs none.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from headlab.io.atomic import write_atomically


def write_torch_state(record: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save(record, path)``, atomically; the parent folder is created when missing."""
    import torch

    return write_atomically(path, lambda tmp: torch.save(record, tmp))


def read_torch_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A record written by `write_torch_state`, its tensors on the CPU (``weights_only=True``)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)
