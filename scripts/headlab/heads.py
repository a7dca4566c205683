"""Head and layer names: the one formatter and parser, and what a head mask names (no torch).

Names are 1-based like the paper ("L2-H12" = layer 2, head 12; "L1" = every head of layer 1);
inside a mask the heads are 0-based (layer, head) pairs, the indices the engine uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

KINDS = ("baseline", "head", "layer", "named", "random")  # random: a null set of the FrameNet experiment
_NAME = re.compile(r"^L(?P<layer>\d+)(?:-H(?P<head>\d+))?$")


def head_name(layer: int, head: int) -> str:
    """'L{layer}-H{head}' of a 1-based layer and head."""
    return f"L{layer}-H{head}"


def layer_name(layer: int) -> str:
    """'L{layer}' of a 1-based layer."""
    return f"L{layer}"


def head_names(heads: Iterable[tuple[int, int]]) -> str:
    """'L1-H2,L3-H4' of 1-based (layer, head) pairs, in the given order."""
    return ",".join(head_name(layer, head) for layer, head in heads)


def parse_name(name: str) -> tuple[int, int | None]:
    """(layer, head) of 'L2-H12', (layer, None) of 'L3' (1-based); ValueError otherwise."""
    match = _NAME.match(str(name).strip())
    if not match:
        raise ValueError(f"{name!r} is not a head or layer name: expected 'L<layer>-H<head>' or 'L<layer>'")
    return int(match["layer"]), None if match["head"] is None else int(match["head"])


@dataclass(frozen=True)
class HeadMask:
    """Which heads one disabling experiment replaces."""

    name: str
    kind: str
    heads: frozenset[tuple[int, int]]  # 0-based (layer, head)
    layer: int | None = None  # 1-based, for kind head/layer
    head: int | None = None  # 1-based, for kind head

    @property
    def first_layer(self) -> int | None:
        """The lowest (0-based) layer the mask touches: everything below it is unchanged."""
        return min(layer for layer, _ in self.heads) if self.heads else None


def marked_heads(table: Any, column: str = "top") -> list[tuple[int, int]]:
    """The (layer, head) pairs, 1-based and sorted, that a head table (a polars DataFrame with
    `layer`, `head` and the boolean `column`) marks: e.g. the FrameNet heads of framenet.parquet."""
    rows = table.filter(table[column]).select("layer", "head").rows()
    return sorted((int(layer), int(head)) for layer, head in rows)
