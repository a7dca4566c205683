"""Calibration of the patterns_repeat claim (headlab.analysis.pattern_claims) on simulated classes.

Each run draws every map's class independently, head h's with probabilities shares[h] in every
task, so the true across-head and across-task spreads are known, and runs the claim on it
(`patterns_repeat_claim`, statistics.* defaults, its own bootstrap seed). Designs:

* null: 144 heads (12 x 12), 2 tasks, the same probabilities (.1, .15, .2, .25, .3) for every
  head and task: both true spreads are 0, so "supported" (the 95 % interval above 0, a one-sided
  test at 2.5 %) should come at most 2.5 % of the time and the mean estimate should be 0;
  `uncorrected` is the mean estimate of the former definition (plain SDs of the observed
  shares), which read "supported" on every such run;
* correlated null: 48 heads, 3 tasks; in 30 % of the examples every head draws from another
  mix (mostly heterogeneous), so heads move together within an example but do not differ;
* boundary: 48 heads, 3 tasks, the block and heterogeneous probabilities shifted by (-a, 0, a)
  per task and by (-a, 0, a) per third of the heads (a = .08): the true across-head and
  across-task spreads are equal in every class, the hardest case for "supported".

`clipped` repeats each run with spreads sqrt(max(0, variance)) instead of the signed root (the
variant the module rejects). R runs per design and size, run r of design d seeded from
(d, examples, r). Run from the repository root:

    python benchmarks/pattern_claim_calibration.py --reps 500
    python benchmarks/pattern_claim_calibration.py --reps 50 --sizes 20 --designs null
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from headlab.analysis import pattern_claims
from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.significance import StatisticsSettings
from headlab.data.labels import PATTERNS
from headlab.workflow.defaults import config_defaults

TASKS = ("MRPC", "RTE", "QQP")
BASE = np.array([0.1, 0.15, 0.2, 0.25, 0.3])  # class probabilities, PATTERNS order


@dataclass(frozen=True)
class Design:
    name: str
    heads: int
    tasks: int
    draw: Callable[[np.random.Generator, int, int, int], np.ndarray]  # (rng, task, n, H) -> (n, H)


def categorical(rng: np.random.Generator, shares: np.ndarray) -> np.ndarray:
    """(n, H) class indices drawn with probabilities shares (n or 1, H, C)."""
    u = rng.random((*shares.shape[:2], 1))
    return np.minimum((u > np.cumsum(shares, axis=2)).sum(axis=2), len(PATTERNS) - 1)


def null(rng: np.random.Generator, task: int, n: int, heads: int) -> np.ndarray:
    return categorical(rng, np.broadcast_to(BASE, (n, heads, len(BASE))))


def correlated(rng: np.random.Generator, task: int, n: int, heads: int) -> np.ndarray:
    other = np.array([0.05, 0.05, 0.05, 0.15, 0.7])
    mix = np.where((rng.random(n) < 0.3)[:, None], other, BASE)  # (n, C)
    return categorical(rng, np.broadcast_to(mix[:, None], (n, heads, len(BASE))))


def boundary(rng: np.random.Generator, task: int, n: int, heads: int, a: float = 0.08) -> np.ndarray:
    shift = (task - 1) * a + np.repeat([-a, 0.0, a], heads // 3)  # (H,)
    shares = np.tile(BASE, (heads, 1))  # (H, C)
    shares[:, 3] += shift
    shares[:, 4] -= shift
    return categorical(rng, np.broadcast_to(shares, (n, heads, len(BASE))))


DESIGNS = {
    "null": Design("null", 144, 2, null),
    "correlated": Design("correlated", 48, 3, correlated),
    "boundary": Design("boundary", 48, 3, boundary),
}


def table(task: str, classes: np.ndarray) -> pl.DataFrame:
    n, h = classes.shape
    example, head = np.meshgrid(np.arange(n), np.arange(h), indexing="ij")
    return pl.DataFrame(
        {
            "model": "m",
            "task": task,
            "condition": "finetuned",
            "example": example.ravel(),
            "layer": head.ravel() // 12 + 1,
            "head": head.ravel() % 12 + 1,
            "pattern": np.array(PATTERNS)[classes.ravel()],
            "classifier": "rules",
            "confidence": 1.0,
        }
    )


def inputs(patterns: dict[str, pl.DataFrame], seed: int, resamples: int) -> ClaimInputs:
    claims = config_defaults("claims")
    settings = StatisticsSettings.of(config_defaults("statistics"))
    return ClaimInputs(
        model="m",
        tasks=list(patterns),
        pair_heads=claims["pair_heads"],
        pair_heads_named=False,
        modes=config_defaults("ablation")["modes"],
        agreement_threshold=claims["agreement_threshold"],
        no_harm_margin=claims["no_harm_margin"],
        settings=replace(settings, seed=seed, resamples=resamples or settings.resamples),
        patterns=patterns,
    )


def uncorrected(classes: list[np.ndarray]) -> float:
    """The former estimate: mean over classes of (mean over tasks of the SD over heads of the
    heads' shares - the SD over tasks of the tasks' shares), in points."""
    onehot = [np.eye(len(PATTERNS))[c] for c in classes]  # (n, H, C) each
    head = np.mean([o.mean(axis=0).std(axis=0) for o in onehot], axis=0)  # (C,)
    task = np.std([o.mean(axis=(0, 1)) for o in onehot], axis=0)  # (C,)
    return 100 * float((head - task).mean())


@contextlib.contextmanager
def clipped_root() -> Iterator[None]:
    signed = pattern_claims._root
    pattern_claims._root = lambda variance: np.sqrt(np.clip(variance, 0.0, None))
    try:
        yield
    finally:
        pattern_claims._root = signed


def rate(hits: int, runs: int) -> str:
    p = hits / runs
    return f"{100 * p:5.1f} % ± {100 * math.sqrt(p * (1 - p) / runs):.1f}"


def mean(values: list[float]) -> str:
    return f"{np.mean(values):+6.2f} ± {np.std(values, ddof=1) / math.sqrt(len(values)):.2f}"


def calibrate(index: int, design: Design, n: int, reps: int, resamples: int, clipped: bool) -> str:
    rows: dict[str, list[dict[str, object]]] = {"signed": [], "clipped": []}
    old = []
    for run in range(reps):
        rng = np.random.default_rng([index, n, run])
        classes = [design.draw(rng, t, n, design.heads) for t in range(design.tasks)]
        claim_input = inputs({t: table(t, c) for t, c in zip(TASKS, classes, strict=False)}, run, resamples)
        rows["signed"].append(pattern_claims.patterns_repeat_claim(claim_input))
        if clipped:
            with clipped_root():
                rows["clipped"].append(pattern_claims.patterns_repeat_claim(claim_input))
        old.append(uncorrected(classes))
    parts = [f"{design.name:10s} {design.heads:3d} heads {design.tasks} tasks {n:4d} examples {reps} runs"]
    for name, found in rows.items():
        if found:
            supported = sum(r["verdict"] == "supported" for r in found)
            contradicted = sum(r["verdict"] == "contradicted" for r in found)
            parts.append(
                f"  {name:8s} supported {rate(supported, reps)}  contradicted {rate(contradicted, reps)}  "
                f"mean estimate {mean([r['estimate'] for r in found])} points"
            )
    parts.append(f"  uncorrected mean estimate {mean(old)} points")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 400], help="examples (null)")
    parser.add_argument("--other-sizes", type=int, nargs="+", default=[40, 200], help="examples (others)")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=list(DESIGNS))
    parser.add_argument("--resamples", type=int, default=0, help="0: statistics.resamples' default")
    parser.add_argument("--no-clipped", action="store_true", help="skip the clipped-root variant")
    args = parser.parse_args()
    for name in args.designs:
        index = list(DESIGNS).index(name)
        for n in args.sizes if name == "null" else args.other_sizes:
            start = time.perf_counter()
            print(calibrate(index, DESIGNS[name], n, args.reps, args.resamples, not args.no_clipped))
            print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
