"""The simulated sweeps of the calibration benchmark (`benchmarks/calibration.py`): designs whose
answer is known.

Each generator draws a whole sweep (12 x 12 heads + 12 layers + the baseline, 400 dev examples
crossed with 3 fine-tuning seeds: the same examples and gold labels in every seed) and returns
its predictions table (`headlab.analysis.scoring.SWEEP_PREDICTIONS_SCHEMA`) with its `Truth`.

Exact nulls (classification): the baseline is right on the "easy" examples and wrong on the
"hard" ones in every seed; on an "ambiguous" pool it is a fair coin. A null mask changes the
baseline's prediction only on pool examples ("flips"), chosen independently of the coin, so on
every example (baseline, mask) are exchangeable: every metric's true delta is 0 and a swap
permutation test is exact. Regression (STS-B): gold ~ U(0, 5), the baseline gold + a shared
error + a seed's error; a null mask redraws the seed's error on some examples.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.data.tasks import get_task

EXAMPLES = 400
SEEDS = 3
LAYERS = HEADS = 12
POOL = 100  # ambiguous examples: the baseline's prediction is a fair coin there
HARD = 48  # examples the baseline gets wrong in every seed (room for planted gains)
FLIPS = 12  # expected null flips per mask per seed (dense designs)
POINT = 0.01  # one point of accuracy
MU = 2 * POINT  # the planted head's true delta
PLANTED_HEAD = "L3-H7"
PLANTED_CHANGES = 8  # examples the planted head fixes (design planted): +2 points
LAYER_CHANGES = 20  # examples each layer breaks (design real_layers): -5 points
REGRESSION_SHARED_SD, REGRESSION_SEED_SD = 0.8, 0.6  # the baseline's error: shared + per seed
REGRESSION_SHARE = 0.1  # examples a null mask redraws (regression_null)
DISCORDANT = 4  # differing predictions per mask per seed (four_discordant)
MODE_SD = 1.5 * POINT  # spread of the true per-head deltas (mode_agreement)
MODES = ("uniform", "zero")
TOP_K = 10  # config ablation.top_k
AGREEMENT_THRESHOLD = 0.5  # config claims.agreement_threshold
POSITIVE_SHARE = {"SST-2": 0.5, "MRPC": 0.68}  # of gold labels (MRPC dev is about 68 % positive)
SWEEP_KINDS = ("head", "layer")
ESTIMATES = ("random_head", "best_head_naive", "best_head_split", "best_head_cross_seed")

Mask = tuple[str, str, int | None, int | None]  # name, kind, layer, head
Record = tuple[str, str, float]  # metric, quantity, value


def sweep_masks(layers: int = LAYERS, heads: int = HEADS) -> list[Mask]:
    """The baseline, every single head L{l}-H{h}, then every layer L{l} (1-based)."""
    masks: list[Mask] = [("baseline", "baseline", None, None)]
    masks += [(f"L{lay}-H{h}", "head", lay, h) for lay in range(1, layers + 1) for h in range(1, heads + 1)]
    masks += [(f"L{layer}", "layer", layer, None) for layer in range(1, layers + 1)]
    return masks


MASKS = sweep_masks()
NAMES = [m[0] for m in MASKS]
HEAD_NAMES = [m[0] for m in MASKS if m[1] == "head"]
HEAD_ROWS = np.array([i for i, m in enumerate(MASKS) if m[1] == "head"])
LAYER_ROWS = np.array([i for i, m in enumerate(MASKS) if m[1] == "layer"])
MASK_FRAME = pl.DataFrame(
    {
        "mask": NAMES,
        "kind": [m[1] for m in MASKS],
        "layer": pl.Series([m[2] for m in MASKS], dtype=pl.Int32),
        "head": pl.Series([m[3] for m in MASKS], dtype=pl.Int32),
    }
)


@dataclass(frozen=True)
class Layout:
    """The dev examples of one replicate, the same in every seed."""

    gold: np.ndarray  # (n,) gold labels (class indices as floats, or scores)
    pool: np.ndarray  # (POOL,) ambiguous examples: the baseline's prediction is a fair coin
    hard: np.ndarray  # (HARD,) examples the baseline gets wrong in every seed
    easy: np.ndarray  # the rest: the baseline is right in every seed


@dataclass(frozen=True)
class Truth:
    """The true deltas of a simulated sweep; a mask not named has true delta 0 (every metric)."""

    task: str
    metrics: tuple[str, ...]  # the metrics the truth holds for (the statistics' metrics)
    seeds: int
    pooled: dict[str, float] = field(default_factory=dict)  # mask -> mean delta over seeds' population
    per_seed: dict[str, np.ndarray] = field(default_factory=dict)  # mask -> (seeds,) each seed's delta
    planted: tuple[str, ...] = ()  # masks with an effect (every other head or layer is null)
    correlation: dict[str, float] = field(default_factory=dict)  # mode designs: statistic -> truth


# ---------------------------------------------------------------- the simulated sweeps


def layout(rng: np.random.Generator, task: str, n: int = EXAMPLES) -> Layout:
    """Gold labels and the pool / hard / easy split of n examples (a classification task)."""
    order = rng.permutation(n)
    gold = (rng.random(n) < POSITIVE_SHARE[task]).astype(np.float64)
    return Layout(
        gold, np.sort(order[:POOL]), np.sort(order[POOL : POOL + HARD]), np.sort(order[POOL + HARD :])
    )


def baseline_right(rng: np.random.Generator, where: Layout, seeds: int, shared_coin: bool) -> np.ndarray:
    """(seeds, n) whether the baseline is right: easy yes, hard no, the pool a fair coin (one
    coin for every seed when `shared_coin`)."""
    right = np.ones((seeds, where.gold.size), dtype=bool)
    right[:, where.hard] = False
    right[:, where.pool] = rng.random((1 if shared_coin else seeds, POOL)) < 0.5  # (seeds | 1, POOL)
    return right


def exactly(rng: np.random.Generator, counts: np.ndarray, width: int) -> np.ndarray:
    """(*counts.shape, width) True at counts[...] positions drawn without replacement."""
    ranks = rng.random((*counts.shape, width)).argsort(-1).argsort(-1)  # a random permutation per row
    return ranks < np.minimum(counts, width)[..., None]


def dense_flips(rng: np.random.Generator, seeds: int) -> np.ndarray:
    """(seeds, masks, POOL): each pool example flips with probability FLIPS / POOL."""
    return rng.random((seeds, len(MASKS), POOL)) < FLIPS / POOL


def sweep_right(base: np.ndarray, where: Layout, flips: np.ndarray) -> np.ndarray:
    """(seeds, masks, n) correctness: the baseline's, with the pool flips (masks only)."""
    flips = flips.copy()
    flips[:, 0] = False  # the baseline row is the baseline
    right = np.repeat(base[:, None], len(MASKS), axis=1)  # (seeds, masks, n)
    right[:, :, where.pool] ^= flips
    return right


def sweep_table(task: str, pred: np.ndarray, gold: np.ndarray, mode: str = "uniform") -> pl.DataFrame:
    """The predictions table (SWEEP_PREDICTIONS_SCHEMA) of pred (seeds, masks, n), MASKS order."""
    seeds, masks, n = pred.shape
    rows = np.tile(np.repeat(np.arange(masks), n), seeds)  # (seeds * masks * n,) each row's mask
    meta = MASK_FRAME.select(pl.all().gather(pl.Series(rows)))
    frame = pl.DataFrame(
        {
            "model": "synthetic",
            "task": task,
            "seed": np.repeat(np.arange(seeds, dtype=np.int64), masks * n),
            "mode": mode,
        }
    )
    return pl.concat([frame, meta], how="horizontal").with_columns(
        example=pl.Series(np.tile(np.arange(n, dtype=np.int64), seeds * masks)),
        prediction=pl.Series(pred.reshape(-1).astype(np.float64)),  # (seeds * masks * n,) seed-major
        label=pl.Series(np.tile(gold.astype(np.float64), seeds * masks)),
        score=pl.lit(float("nan"), pl.Float64),  # no logits behind these predictions
    )


def classification_table(
    task: str, right: np.ndarray, gold: np.ndarray, mode: str = "uniform"
) -> pl.DataFrame:
    """The table of correctness (seeds, masks, n) of a binary task: right -> gold, else 1 - gold."""
    return sweep_table(task, np.where(right, gold[None, None], 1.0 - gold[None, None]), gold, mode)


def _null(
    rng: np.random.Generator, task: str, seeds: int, flips: Callable[[], np.ndarray], shared: bool = False
) -> tuple[pl.DataFrame, Truth]:
    """A null sweep: the baseline (`baseline_right`) and the masks' pool flips from `flips`."""
    where = layout(rng, task)
    base = baseline_right(rng, where, seeds, shared)
    table = classification_table(task, sweep_right(base, where, flips()), where.gold)
    return table, Truth(task, get_task(task).metrics, seeds)


def _check_classification(task: str) -> None:
    if task not in POSITIVE_SHARE:
        raise ValueError(
            f"design needs a binary classification task ({sorted(POSITIVE_SHARE)}), got {task!r}"
        )


def dense_null(
    rng: np.random.Generator, task: str = "SST-2", seeds: int = SEEDS
) -> tuple[pl.DataFrame, Truth]:
    """Design 1: every head and layer flips each pool example with probability FLIPS / POOL,
    independently in every seed."""
    _check_classification(task)
    return _null(rng, task, seeds, lambda: dense_flips(rng, seeds))


def sparse_null(
    rng: np.random.Generator, rate: float, task: str = "SST-2", seeds: int = SEEDS
) -> tuple[pl.DataFrame, Truth]:
    """Design 2: Poisson(rate) flips per mask per seed, on pool examples drawn at random."""
    _check_classification(task)
    return _null(rng, task, seeds, lambda: exactly(rng, rng.poisson(rate, (seeds, len(MASKS))), POOL))


def shared_flips(rng: np.random.Generator, seeds: int, keep: float) -> np.ndarray:
    """(seeds, masks, POOL): each mask's own FLIPS pool examples, each flipped in a seed with
    probability `keep`, plus fresh flips elsewhere so that a seed flips FLIPS on average."""
    own = exactly(rng, np.full((1, len(MASKS)), FLIPS), POOL)  # (1, masks, POOL)
    kept = own & (rng.random((seeds, len(MASKS), POOL)) < keep)
    fresh = ~own & (rng.random((seeds, len(MASKS), POOL)) < FLIPS * (1 - keep) / (POOL - FLIPS))
    return kept | fresh


def shared_null(
    rng: np.random.Generator, keep: float, task: str = "SST-2", seeds: int = SEEDS
) -> tuple[pl.DataFrame, Truth]:
    """Design 3: the baseline's coin on the pool is shared by every seed and each mask flips
    mostly the same examples in every seed (`shared_flips`): the seeds' deltas are correlated
    through the examples, which resampling the seeds independently ignores."""
    _check_classification(task)
    return _null(rng, task, seeds, lambda: shared_flips(rng, seeds, keep), shared=True)


def plant(rng: np.random.Generator, right: np.ndarray, where: Layout, change: int) -> None:
    """Change |change| examples of a mask's correctness row (n,) in place: change > 0 fixes
    hard examples (wrong -> right), change < 0 breaks easy ones (right -> wrong)."""
    among = where.hard if change > 0 else where.easy
    right[rng.choice(among, size=min(abs(change), among.size), replace=False)] = change > 0


def planted_counts(
    rng: np.random.Generator, delta: np.ndarray, where: Layout
) -> tuple[np.ndarray, np.ndarray]:
    """(changes, true deltas), like delta: each example that can change does so independently,
    so the count is binomial with expectation delta * n (clipped to the examples there are to
    change; the clipped value / n is the true delta): a new sample of examples would hold
    another count, which is what the intervals are about."""
    n = where.gold.size
    expected = np.clip(np.asarray(delta) * n, -where.easy.size, where.hard.size)
    pool = np.where(expected > 0, where.hard.size, where.easy.size)
    counts = rng.binomial(pool, np.abs(expected) / pool)
    return np.sign(expected).astype(np.int64) * counts, expected / n


def seed_spread(
    rng: np.random.Generator, tau: float, task: str = "SST-2", seeds: int = SEEDS
) -> tuple[pl.DataFrame, Truth]:
    """Design 4: dense nulls plus head PLANTED_HEAD whose seed-s true delta is MU + tau_s,
    tau_s ~ N(0, (tau points)^2); its pooled truth is MU (the mean over the seeds' population)."""
    _check_classification(task)
    where = layout(rng, task)
    right = sweep_right(baseline_right(rng, where, seeds, False), where, dense_flips(rng, seeds))
    changes, truth = planted_counts(rng, MU + rng.normal(0, tau * POINT, seeds), where)
    row = NAMES.index(PLANTED_HEAD)
    for s in range(seeds):
        plant(rng, right[s, row], where, int(changes[s]))
    return classification_table(task, right, where.gold), Truth(
        task, get_task(task).metrics, seeds, {PLANTED_HEAD: MU}, {PLANTED_HEAD: truth}, (PLANTED_HEAD,)
    )


def planted(
    rng: np.random.Generator,
    same_examples: bool,
    task: str = "SST-2",
    seeds: int = SEEDS,
    changes: int = PLANTED_CHANGES,
) -> tuple[pl.DataFrame, Truth]:
    """Design 5: dense nulls plus head PLANTED_HEAD fixing `changes` hard examples in every seed
    (PLANTED_CHANGES: +2 points): the same examples in every seed or different ones."""
    _check_classification(task)
    where = layout(rng, task)
    right = sweep_right(baseline_right(rng, where, seeds, False), where, dense_flips(rng, seeds))
    row = NAMES.index(PLANTED_HEAD)
    fixed = rng.choice(where.hard, changes, replace=False)
    for s in range(seeds):
        chosen = fixed if same_examples else rng.choice(where.hard, changes, replace=False)
        right[s, row, chosen] = True
    delta = changes / where.gold.size
    return classification_table(task, right, where.gold), Truth(
        task,
        get_task(task).metrics,
        seeds,
        {PLANTED_HEAD: delta},
        {PLANTED_HEAD: np.full(seeds, delta)},
        (PLANTED_HEAD,),
    )


def real_layers(
    rng: np.random.Generator, task: str = "SST-2", seeds: int = SEEDS
) -> tuple[pl.DataFrame, Truth]:
    """Design 6: dense nulls, and every layer mask breaks its own LAYER_CHANGES easy examples in
    every seed (-5 points); the heads stay null."""
    _check_classification(task)
    where = layout(rng, task)
    right = sweep_right(baseline_right(rng, where, seeds, False), where, dense_flips(rng, seeds))
    for row in LAYER_ROWS:
        right[:, row, rng.choice(where.easy, LAYER_CHANGES, replace=False)] = False
    delta = -LAYER_CHANGES / where.gold.size
    layers = tuple(NAMES[r] for r in LAYER_ROWS)
    return classification_table(task, right, where.gold), Truth(
        task,
        get_task(task).metrics,
        seeds,
        dict.fromkeys(layers, delta),
        {name: np.full(seeds, delta) for name in layers},
        layers,
    )


def regression_sweep(
    rng: np.random.Generator, seeds: int, redrawn: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(pred (seeds, masks, n), gold (n,)): gold ~ U(0, 5), the baseline gold + a shared error +
    the seed's error; a mask redraws the seed's error where `redrawn` (seeds, masks, n)."""
    n = redrawn.shape[2]
    gold = rng.uniform(0, 5, n)
    shared = gold + rng.normal(0, REGRESSION_SHARED_SD, n)
    base = shared[None] + rng.normal(0, REGRESSION_SEED_SD, (seeds, n))  # (seeds, n)
    fresh = shared[None, None] + rng.normal(0, REGRESSION_SEED_SD, redrawn.shape)  # (seeds, masks, n)
    redrawn = redrawn.copy()
    redrawn[:, 0] = False
    return np.where(redrawn, fresh, base[:, None]), gold


def regression_null(
    rng: np.random.Generator, task: str = "STS-B", seeds: int = SEEDS
) -> tuple[pl.DataFrame, Truth]:
    """Design 7: every mask redraws the baseline's seed error on ~REGRESSION_SHARE of the
    examples (independently per seed): exchangeable with the baseline, true delta 0."""
    redrawn = rng.random((seeds, len(MASKS), EXAMPLES)) < REGRESSION_SHARE
    pred, gold = regression_sweep(rng, seeds, redrawn)
    return sweep_table(task, pred, gold), Truth(task, get_task(task).metrics, seeds)


def four_discordant(
    rng: np.random.Generator, task: str = "SST-2", seeds: int = SEEDS
) -> tuple[pl.DataFrame, Truth]:
    """Design 8: every mask differs from the baseline on exactly DISCORDANT examples per seed
    (pool flips; for a regression task, redrawn predictions)."""
    counts = np.full((seeds, len(MASKS)), DISCORDANT)
    if get_task(task).is_regression:
        pred, gold = regression_sweep(rng, seeds, exactly(rng, counts, EXAMPLES))
        return sweep_table(task, pred, gold), Truth(task, get_task(task).metrics, seeds)
    _check_classification(task)
    return _null(rng, task, seeds, lambda: exactly(rng, counts, POOL))


def mode_agreement(
    rng: np.random.Generator, identical: bool, task: str = "SST-2", seeds: int = SEEDS
) -> tuple[pl.DataFrame, Truth]:
    """Design 9: modes MODES of one sweep (the same baseline), every head with a true delta
    ~ N(0, MODE_SD^2) drawn once (the same in both modes when `identical`), planted per seed as
    in seed_spread, plus each mode's own dense null flips. Truth: the correlations (Pearson,
    Spearman) of the two modes' true per-head deltas."""
    _check_classification(task)
    where = layout(rng, task)
    base = baseline_right(rng, where, seeds, False)
    first = rng.normal(0, MODE_SD, HEAD_ROWS.size)
    true = {
        mode: first if identical or i == 0 else rng.normal(0, MODE_SD, HEAD_ROWS.size)
        for i, mode in enumerate(MODES)
    }
    tables = []
    for mode in MODES:
        right = sweep_right(base, where, dense_flips(rng, seeds))
        changes, _ = planted_counts(rng, np.broadcast_to(true[mode], (seeds, HEAD_ROWS.size)), where)
        for s in range(seeds):
            for column, row in enumerate(HEAD_ROWS):
                plant(rng, right[s, row], where, int(changes[s, column]))
        tables.append(classification_table(task, right, where.gold, mode))
    a, b = (true[mode] for mode in MODES)
    correlation = {
        "pearson": float(np.corrcoef(a, b)[0, 1]),
        "spearman": float(stats.spearmanr(a, b).statistic),
    }
    return pl.concat(tables), Truth(task, ("accuracy",), seeds, correlation=correlation)
