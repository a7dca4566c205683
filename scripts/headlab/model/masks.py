"""Head masks: the sets of heads a disabling experiment replaces, built for a model's shape.

What a mask is and how heads are named: `headlab.heads`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from headlab.heads import HeadMask, head_name, layer_name, parse_name

if TYPE_CHECKING:
    import torch


class MaskError(ValueError):
    """A mask that names a head or layer the model does not have, or cannot be parsed."""


def baseline_mask() -> HeadMask:
    return HeadMask("baseline", "baseline", frozenset())


def single_head_masks(layers: int, heads: int) -> list[HeadMask]:
    return [
        HeadMask(
            head_name(layer + 1, head + 1), "head", frozenset({(layer, head)}), layer=layer + 1, head=head + 1
        )
        for layer in range(layers)
        for head in range(heads)
    ]


def single_layer_masks(layers: int, heads: int) -> list[HeadMask]:
    return [
        HeadMask(layer_name(layer + 1), "layer", frozenset((layer, h) for h in range(heads)), layer=layer + 1)
        for layer in range(layers)
    ]


def sweep_masks(layers: int, heads: int) -> list[HeadMask]:
    """The baseline, every single head and every single layer (Figures 8 and 9)."""
    return [baseline_mask(), *single_head_masks(layers, heads), *single_layer_masks(layers, heads)]


def parse_named_mask(
    name: str, tokens: Sequence[str], layers: int, heads: int, key: str = "masks"
) -> HeadMask:
    """A config mask such as ["L2-H12", "L4-H1"]; "L3" alone means all heads of layer 3."""
    if not tokens:
        raise MaskError(f"{key}.{name} is empty; list heads like 'L2-H12' or whole layers like 'L3'")
    chosen: set[tuple[int, int]] = set()
    for i, token in enumerate(tokens):
        where = f"{key}.{name}[{i}] = {token!r}"
        try:
            layer, head = parse_name(token)
        except ValueError:
            raise MaskError(f"{where}: expected 'L<layer>-H<head>' or 'L<layer>' (1-based)") from None
        if not 1 <= layer <= layers:
            raise MaskError(f"{where}: layer {layer} does not exist; the model has layers 1..{layers}")
        if head is None:
            chosen.update((layer - 1, h) for h in range(heads))
            continue
        if not 1 <= head <= heads:
            raise MaskError(f"{where}: head {head} does not exist; the model has heads 1..{heads}")
        chosen.add((layer - 1, head - 1))
    return HeadMask(name, "named", frozenset(chosen))


def mask_tensor(masks: Sequence[HeadMask], layers: int, heads: int) -> torch.Tensor:
    """Bool (masks, layers, heads): True where the mask disables the head."""
    import torch  # deferred: config checks parse masks without torch

    out = torch.zeros(len(masks), layers, heads, dtype=torch.bool)
    for i, mask in enumerate(masks):
        for layer, head in mask.heads:
            out[i, layer, head] = True
    return out


def framenet_masks(
    top: Sequence[tuple[int, int]], layers: int, heads: int, sets: int, seed: int
) -> list[HeadMask]:
    """The Sec. 5 experiment's masks: the baseline, "framenet" (the FrameNet relation heads
    `top`, 1-based (layer, head)) and `sets` seeded random sets of as many distinct heads
    ("random-1", ...; kind random), the null of "disabling that many heads"."""
    if not top:
        raise MaskError("the FrameNet table marks no top head (framenet.percentile): nothing to disable")
    chosen = frozenset((layer - 1, head - 1) for layer, head in top)
    if any(not (0 <= layer < layers and 0 <= head < heads) for layer, head in chosen):
        raise MaskError(f"FrameNet heads {sorted(top)} do not fit a model of {layers} x {heads} heads")
    rng = np.random.default_rng(seed)
    masks = [baseline_mask(), HeadMask("framenet", "named", chosen)]
    for index in range(sets):
        flat = rng.choice(layers * heads, size=len(chosen), replace=False)
        drawn = frozenset((int(f) // heads, int(f) % heads) for f in flat)
        masks.append(HeadMask(f"random-{index + 1}", "random", drawn))
    return masks
