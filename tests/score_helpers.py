"""Synthetic per-example tables of issue 21 for the analysis tests: sweeps with a `score` column
(per-example log-probability of the gold label), and per-head per-example tables (attribution
estimates, importance values).

`planted_sweep` builds one mode's sweep of every seed: the baseline's score of example i is
b_i < 0 (one vector for every seed: the same dev examples), a single head h adds the per-example
delta effects[s, h] + noise * z (z standard normal, drawn independently per seed, head and
example), a layer adds the sum of its heads' effects + noise * z. The prediction is the gold
label where the score is above log(1/2) (the gold label's probability above one half, binary)
and the other label elsewhere, so the accuracy of a mask is its share of scores above log(1/2).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from headlab.analysis.scoring import SWEEP_PREDICTIONS_SCHEMA

Mask = tuple[str, str, int | None, int | None]  # name, kind, layer, head


def sweep_masks(layers: int, heads: int, layer_masks: bool = True) -> list[Mask]:
    """The baseline, every single head L{l}-H{h}, then every layer L{l} (1-based) if `layer_masks`."""
    masks: list[Mask] = [("baseline", "baseline", None, None)]
    masks += [(f"L{l}-H{h}", "head", l, h) for l in range(1, layers + 1) for h in range(1, heads + 1)]  # noqa: E741
    return masks + [(f"L{l}", "layer", l, None) for l in range(1, layers + 1) if layer_masks]  # noqa: E741


def score_frame(
    masks: list[Mask], mode: str, seed: int, score: np.ndarray, gold: np.ndarray, examples: np.ndarray
) -> pl.DataFrame:
    """One seed's sweep rows (every mask x example, mask-major) from scores (masks, n); predictions
    from the scores (right where score > log 1/2)."""
    right = score > np.log(0.5)  # (masks, n)
    pred = np.where(right, gold[None], 1 - gold[None])  # (masks, n)
    grid = pl.DataFrame(masks, schema=["mask", "kind", "layer", "head"], orient="row").join(
        pl.DataFrame({"example": examples.astype(np.int64), "label": gold.astype(np.float64)}), how="cross"
    )
    frame = grid.with_columns(
        model=pl.lit("synthetic"),
        task=pl.lit("SYN"),
        seed=pl.lit(seed),
        mode=pl.lit(mode),
        prediction=pl.Series(pred.astype(np.float64).reshape(-1)),
        score=pl.Series(np.asarray(score, np.float64).reshape(-1)),
    )
    schema = pl.from_arrow(SWEEP_PREDICTIONS_SCHEMA.empty_table()).schema
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])


def planted_sweep(
    rng: np.random.Generator,
    effects: np.ndarray,
    layers: int,
    heads: int,
    noise: float,
    n: int,
    mode: str = "uniform",
    layer_masks: bool = True,
) -> tuple[pl.DataFrame, np.ndarray]:
    """(sweep table of seeds 0..S-1, per-example head deltas (S, H, n)) with effects (S, H);
    the layer masks only if `layer_masks`."""
    seeds = effects.shape[0]
    masks = sweep_masks(layers, heads, layer_masks)
    gold = rng.integers(0, 2, n)
    examples = np.arange(100, 100 + 3 * n, 3)  # dev rows need not be 0..n-1
    base = -np.abs(rng.normal(0.4, 0.3, n))  # (n,) log-probabilities
    frames, head_deltas = [], []
    for s in range(seeds):
        deltas = effects[s][:, None] + noise * rng.normal(size=(layers * heads, n))  # (H, n)
        layer_effects = effects[s].reshape(layers, heads).sum(1)  # (L,)
        layer_deltas = layer_effects[:, None] + noise * rng.normal(size=(layers, n))  # (L, n)
        parts = [np.zeros((1, n)), deltas] + ([layer_deltas] if layer_masks else [])
        score = base[None] + np.concatenate(parts)  # (masks, n)
        frames.append(score_frame(masks, mode, s, score, gold, examples))
        head_deltas.append(deltas)
    return pl.concat(frames), np.stack(head_deltas)


def head_table(
    values: np.ndarray, layers: int, heads: int, column: str, examples: np.ndarray, **constant: object
) -> pl.DataFrame:
    """A long table seed, layer, head, example, `column` of values (S, H, n), heads layer-major,
    with constant columns (model, task, mode, split ...)."""
    seeds, n_heads, n = values.shape
    layer = np.repeat(np.arange(1, layers + 1), heads)  # (H,)
    head = np.tile(np.arange(1, heads + 1), layers)  # (H,)
    frame = pl.DataFrame(
        {
            "seed": np.repeat(np.arange(seeds, dtype=np.int64), n_heads * n),
            "layer": np.tile(np.repeat(layer, n), seeds).astype(np.int32),
            "head": np.tile(np.repeat(head, n), seeds).astype(np.int32),
            "example": np.tile(np.asarray(examples, np.int64), seeds * n_heads),
            column: values.reshape(-1).astype(np.float64),
        }
    )
    return frame.with_columns(**{k: pl.lit(v) for k, v in constant.items()})


def sweep_examples(table: pl.DataFrame) -> np.ndarray:
    """(n,) the dev rows of a sweep table, ascending."""
    return np.sort(table.filter((pl.col("mask") == "baseline") & (pl.col("seed") == 0))["example"].to_numpy())
