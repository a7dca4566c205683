"""The masks of the Sec. 5 FrameNet experiment (`headlab.model.masks.framenet_masks`).

Proved here:

* the masks are, in order, the baseline, "framenet" (kind named: the given 1-based (layer, head)
  pairs as 0-based heads) and `sets` random masks "random-1", ... (kind random), each of exactly
  as many distinct heads as "framenet" has, all inside the model (duplicates in `top` count once);
* the random sets are seeded: the same seed gives the same sets, another seed other sets, and
  over many sets every head of the model is drawn;
* an empty top list, or a head outside the model (layer or head 0, or beyond the model), raises
  MaskError.
"""

from __future__ import annotations

from collections import Counter

import pytest

from headlab.heads import HeadMask
from headlab.model.masks import MaskError, framenet_masks, mask_tensor

LAYERS, HEADS = 3, 4
TOP = [(2, 3), (1, 1), (3, 4)]  # 1-based (layer, head)


def random_sets(masks: list[HeadMask]) -> list[frozenset[tuple[int, int]]]:
    return [m.heads for m in masks[2:]]


def test_baseline_then_framenet_then_random_sets() -> None:
    masks = framenet_masks(TOP, LAYERS, HEADS, sets=6, seed=0)
    assert len(masks) == 2 + 6
    baseline, framenet, *drawn = masks
    assert (baseline.name, baseline.kind, baseline.heads) == ("baseline", "baseline", frozenset())
    assert (framenet.name, framenet.kind) == ("framenet", "named")
    # 1-based (2, 3), (1, 1), (3, 4) are 0-based (1, 2), (0, 0), (2, 3)
    assert framenet.heads == frozenset({(1, 2), (0, 0), (2, 3)})
    assert framenet.first_layer == 0
    assert [m.name for m in drawn] == [f"random-{i}" for i in range(1, 7)]
    every_head = {(layer, head) for layer in range(LAYERS) for head in range(HEADS)}
    for mask in drawn:
        assert mask.kind == "random"
        assert len(mask.heads) == len(TOP)  # a frozenset: distinct heads
        assert mask.heads <= every_head
        assert mask.layer is None and mask.head is None


def test_random_sets_fit_the_engine_mask_tensor() -> None:
    masks = framenet_masks(TOP, LAYERS, HEADS, sets=5, seed=1)
    tensor = mask_tensor(masks, LAYERS, HEADS)
    assert tuple(tensor.shape) == (7, LAYERS, HEADS)
    assert tensor.sum(dim=(1, 2)).tolist() == [0] + [len(TOP)] * 6


def test_duplicate_top_heads_count_once() -> None:
    masks = framenet_masks([(1, 2), (1, 2), (3, 1)], LAYERS, HEADS, sets=4, seed=0)
    assert masks[1].heads == frozenset({(0, 1), (2, 0)})
    assert all(len(s) == 2 for s in random_sets(masks))


def test_no_random_set() -> None:
    masks = framenet_masks(TOP, LAYERS, HEADS, sets=0, seed=0)
    assert [m.name for m in masks] == ["baseline", "framenet"]


def test_every_head_disabled_at_once() -> None:
    top = [(layer, head) for layer in range(1, LAYERS + 1) for head in range(1, HEADS + 1)]
    masks = framenet_masks(top, LAYERS, HEADS, sets=3, seed=0)
    assert all(s == masks[1].heads for s in random_sets(masks))  # the only set of 12 heads


def test_same_seed_same_sets_other_seed_other_sets() -> None:
    first = framenet_masks(TOP, LAYERS, HEADS, sets=10, seed=5)
    again = framenet_masks(TOP, LAYERS, HEADS, sets=10, seed=5)
    other = framenet_masks(TOP, LAYERS, HEADS, sets=10, seed=6)
    assert first == again
    assert random_sets(first) != random_sets(other)
    assert first[:2] == other[:2]  # the baseline and "framenet" do not depend on the seed


def test_many_sets_draw_every_head() -> None:
    masks = framenet_masks([(1, 1)], LAYERS, HEADS, sets=300, seed=2)
    counts = Counter(head for s in random_sets(masks) for head in s)
    assert set(counts) == {(layer, head) for layer in range(LAYERS) for head in range(HEADS)}
    # 300 single heads over 12: 25 each on average; none is drawn nearly always or almost never
    assert min(counts.values()) > 5 and max(counts.values()) < 60


def test_empty_top_is_an_error() -> None:
    with pytest.raises(MaskError, match=r"no top head"):
        framenet_masks([], LAYERS, HEADS, sets=3, seed=0)


@pytest.mark.parametrize(
    "outside",
    [(LAYERS + 1, 1), (1, HEADS + 1), (0, 1), (1, 0)],
    ids=["layer-beyond", "head-beyond", "layer-zero", "head-zero"],
)
def test_head_outside_the_model_is_an_error(outside: tuple[int, int]) -> None:
    with pytest.raises(MaskError, match=r"do not fit a model of 3 x 4 heads"):
        framenet_masks([(1, 1), outside], LAYERS, HEADS, sets=3, seed=0)
