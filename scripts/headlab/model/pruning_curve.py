"""Pruning curves (Michel et al. 2019, Sec. 6): heads removed in steps, the dev score after each.

A head is removed with the engine's `zero` mode (Michel's head mask: the head has no output);
`headlab.model.pruning` removes the same heads for real, with equal outputs. The levels
(`pruning_levels`) are the cumulative numbers of heads removed: each step removes `step` of the
heads that remain (Michel: 10 %) or of all heads (`of: total`), at least one, until `max_share`
of the heads are gone. At every level the dev set is scored with all removed heads masked.

Which heads go next is the order's choice, among the heads still there:
- `importance`: the least important by Michel's I_h, re-estimated on the sample after every
  step with the heads removed so far masked (`headlab.model.attribution`), optionally
  normalised per layer as Michel's;
- `delta`: the heads whose exact disabling costs least (Kovaleva et al.'s single-head sweep, the
  largest mean score deltas first), a fixed order. Chosen on the dev set it is scored on, its
  curve is optimistic (selection on the test data);
- `delta_heldout`: the same order cross-fitted (`cross_fitted`): the dev set is split in two seeded
  halves (`dev_halves`), each half's examples are scored by the curve whose order was chosen on
  the other half's sweep deltas, so no example scores an order chosen on it;
- `random`: a seeded random order (several draws: the null of "removing that many heads").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from headlab.model.attribution import attribution_pass, normalized_by_layer
from headlab.model.batching import Batch, restore_order
from headlab.model.engine import Controls, head_count, layer_count
from headlab.model.inference import batch_logits, inference_session
from headlab.model.interventions import Intervention

ORDERS = ("importance", "delta", "delta_heldout", "random")
# The dev halves' random stream under pruning.seed: three entries, apart from the random orders'
# two ([seed, draw]).
HALVES_STREAM = (0, 1)
# (pruned (layers, heads) bool, count) -> the next `count` heads to remove, (layer, head) 0-based
Chooser = Callable[[np.ndarray, int], list[tuple[int, int]]]


@dataclass(frozen=True)
class Level:
    """One point of a curve: `n_pruned` heads removed in all, `removed` at this step, dev logits."""

    step: int
    n_pruned: int
    removed: tuple[tuple[int, int], ...]
    logits: np.ndarray  # (examples, labels)
    # a cross-fitted curve: `removed` is what the first half's order removed (scoring the second
    # half), `also_removed` the second half's (scoring the first); None for a single order
    also_removed: tuple[tuple[int, int], ...] | None = None


def pruning_levels(total: int, step: float, of: str, max_share: float) -> list[int]:
    """Cumulative heads removed at each level, starting at 0: each step removes round(step x the
    heads remaining (of "remaining") or x all heads (of "total")), at least 1, up to max_share."""
    if not 0 < step < 1 or not 0 < max_share <= 1:
        raise ValueError(f"pruning.step {step} and pruning.max_share {max_share} must lie in (0, 1)")
    if of not in ("remaining", "total"):
        raise ValueError(f"pruning.of is {of!r}; valid: remaining, total")
    limit = math.floor(max_share * total + 1e-9)
    levels = [0]
    while levels[-1] < limit:
        base = total - levels[-1] if of == "remaining" else total
        levels.append(min(limit, levels[-1] + max(1, round(step * base))))
    return levels


def lowest_first(values: np.ndarray, pruned: np.ndarray, count: int) -> list[tuple[int, int]]:
    """The `count` heads with the lowest `values` (layers, heads) among those not pruned yet (ties:
    the lower layer, then head, first)."""
    flat = np.where(pruned.reshape(-1), np.inf, values.reshape(-1))  # (layers * heads,)
    chosen = np.argsort(flat, kind="stable")[:count]
    heads = values.shape[1]
    if np.isinf(flat[chosen]).any():
        raise ValueError(f"asked for {count} more heads but only {int((~pruned).sum())} remain")
    return [(int(i) // heads, int(i) % heads) for i in chosen]


def static_chooser(values: np.ndarray) -> Chooser:
    """Remove the heads in a fixed order: lowest `values` (layers, heads) first."""
    return lambda pruned, count: lowest_first(values, pruned, count)


def random_chooser(layers: int, heads: int, seed: int, draw: int) -> Chooser:
    """A seeded random order of all heads (depends only on seed and draw)."""
    ranks = np.random.default_rng([seed, draw]).permutation(layers * heads).reshape(layers, heads)
    return static_chooser(ranks.astype(np.float64))


def importance_chooser(
    model: PreTrainedModel,
    sample: Sequence[Batch],
    device: torch.device,
    is_regression: bool,
    normalize_layers: bool,
    progress: Callable[[int], object] | None = None,
) -> Chooser:
    """Michel's order: after every step, I_h on the sample with the removed heads masked; the least
    important of the heads that remain go next."""
    n = sum(len(b.rows) for b in sample)

    def choose(pruned: np.ndarray, count: int) -> list[tuple[int, int]]:
        mask = torch.from_numpy(pruned)  # (layers, heads)
        zero = attribution_pass(model, sample, n, device, ["zero"], is_regression, pruned=mask)["zero"]
        importance = np.abs(zero).mean(axis=0)  # (layers, heads)
        if normalize_layers:
            importance = normalized_by_layer(importance)
        if progress is not None:
            progress(1)
        return lowest_first(importance, pruned, count)

    return choose


def masked_logits(
    model: PreTrainedModel, batches: Sequence[Batch], n: int, device: torch.device, pruned: np.ndarray
) -> np.ndarray:
    """Dev logits (examples, labels) with the heads `pruned` (layers, heads) removed (zero mode)."""
    chunks = []
    with inference_session(model, device):
        for batch in batches:
            size = len(batch.rows)
            disabled = torch.from_numpy(pruned)[None].expand(size, *pruned.shape)  # (batch, layers, heads)
            controls = Controls(intervention=Intervention(disabled.contiguous(), "zero"))
            chunks.append(batch_logits(model, batch, device, controls))
    return restore_order(chunks, [b.rows for b in batches], n)


def pruning_curve(
    model: PreTrainedModel,
    batches: Sequence[Batch],
    n: int,
    device: torch.device,
    levels: Sequence[int],
    choose: Chooser,
    progress: Callable[[int], object] | None = None,
) -> list[Level]:
    """The dev logits at every level of `levels` (cumulative counts from 0), removing the heads
    `choose` names at each step."""
    layers, heads = layer_count(model), head_count(model)
    if levels[-1] > layers * heads:
        raise ValueError(f"a level removes {levels[-1]} heads; the model has {layers * heads}")
    pruned = np.zeros((layers, heads), dtype=bool)
    curve = [Level(0, 0, (), masked_logits(model, batches, n, device, pruned))]
    for step, (before, after) in enumerate(itertools.pairwise(levels), start=1):
        removed = choose(pruned.copy(), after - before)
        for layer, head in removed:
            pruned[layer, head] = True
        curve.append(Level(step, after, tuple(removed), masked_logits(model, batches, n, device, pruned)))
        if progress is not None:
            progress(1)
    return curve


def dev_halves(n: int, seed: int) -> np.ndarray:
    """(n,) bool: a seeded split of n dev positions into a first half (True, floor(n/2)) and the rest."""
    if n < 2:
        raise ValueError(f"{n} dev example(s): a held-out order needs two halves")
    first = np.zeros(n, dtype=bool)
    first[np.random.default_rng([seed, *HALVES_STREAM]).permutation(n)[: n // 2]] = True
    return first


def cross_fitted(
    chosen_on_first: list[Level], chosen_on_second: list[Level], first: np.ndarray
) -> list[Level]:
    """One curve from two orders chosen on the two halves (`first`: (examples,) bool): the first
    half's examples take the logits of the order chosen on the second half, and vice versa."""
    if [lv.n_pruned for lv in chosen_on_first] != [lv.n_pruned for lv in chosen_on_second]:
        raise ValueError("the two halves' curves have different levels")
    merged = []
    for a, b in zip(chosen_on_first, chosen_on_second, strict=True):
        logits = np.where(first[:, None], b.logits, a.logits)  # (examples, labels)
        merged.append(Level(a.step, a.n_pruned, a.removed, logits, also_removed=b.removed))
    return merged
