"""Calibration of the sweep statistics: simulated sweeps whose answer is known.

Each design draws a whole sweep (12 x 12 heads + 12 layers + the baseline, 400 dev examples
crossed with 3 fine-tuning seeds: the same examples and gold labels in every seed) with a known
true delta for every mask, runs it through `headlab.analysis.sweep_statistics` (or, for the
mode designs, `headlab.analysis.mode_agreement` and the `modes_agree` claim) and scores the
answers: interval coverage, false-positive rates, family-wise false discoveries, the existence
test's size and power, the bias of the best-head estimates. R replicates, each a fresh draw
seeded from (design index, replicate index). Run from the repository root:

    python benchmarks/calibration.py --reps 200 --workers 2 --output docs/calibration.md
    python benchmarks/calibration.py --designs dense_null seed_spread --reps 20

Exact nulls (classification): the baseline is right on the "easy" examples and wrong on the
"hard" ones in every seed; on an "ambiguous" pool it is a fair coin. A null mask changes the
baseline's prediction only on pool examples ("flips"), chosen independently of the coin, so on
every example (baseline, mask) are exchangeable: every metric's true delta is 0 and a swap
permutation test is exact. The pool is 25 % of the examples and 12 % are hard (the baseline's
accuracy is about 75 %), so that planted gains of up to 12 points have wrong examples to fix.
Regression (STS-B): gold ~ U(0, 5), the baseline gold + a shared error + a seed's error; a null
mask redraws the seed's error on some examples (exchangeable with the baseline's).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


sys.path.insert(0, str(Path(__file__).resolve().parent))  # the designs beside this file

from calibration_designs import (
    DISCORDANT,
    EXAMPLES,
    FLIPS,
    HEADS,
    LAYER_CHANGES,
    LAYERS,
    MODE_SD,
    MU,
    PLANTED_CHANGES,
    PLANTED_HEAD,
    POINT,
    REGRESSION_SHARE,
    SEEDS,
    Record,
    Truth,
    dense_null,
    four_discordant,
    mode_agreement,
    planted,
    real_layers,
    regression_null,
    seed_spread,
    shared_null,
    sparse_null,
)
from calibration_scoring import (
    evaluate_agreement,
    evaluate_sweep,
)

if TYPE_CHECKING:  # the statistics are imported where they run: the designs do not need them
    from headlab.analysis.sweep_statistics import StatisticsSettings

# ---------------------------------------------------------------- designs and replicates


@dataclass(frozen=True)
class Design:
    name: str
    make: Callable[..., tuple[pl.DataFrame, Truth]]  # (rng, task=...) -> (predictions, truth)
    tasks: tuple[str, ...]
    note: str
    evaluate: Callable[[pl.DataFrame, Truth, StatisticsSettings], list[Record]] = evaluate_sweep


NULL_TASKS = ("SST-2", "MRPC")
DESIGNS: dict[str, Design] = {
    d.name: d
    for d in [
        Design("dense_null", dense_null, NULL_TASKS, f"Every mask flips ~{FLIPS} pool examples per seed."),
        *(
            Design(
                f"sparse_null_{r}", partial(sparse_null, rate=r), NULL_TASKS, f"Poisson({r}) flips per mask."
            )
            for r in (4, 10)
        ),
        *(
            Design(
                f"shared_null_{keep}",
                partial(shared_null, keep=keep),
                NULL_TASKS,
                f"Baseline coin shared by the seeds; each mask's own {FLIPS} examples flip in a seed "
                f"with probability {keep} (plus fresh flips): seeds correlated through the examples.",
            )
            for keep in (0.9, 0.7)
        ),
        *(
            Design(
                f"seed_spread_{tau}",
                partial(seed_spread, tau=tau),
                ("SST-2",),
                f"{PLANTED_HEAD}: seed delta {MU / POINT:g} + N(0, {tau}^2) points; truth {MU / POINT:g}.",
            )
            for tau in (0, 1, 2, 3)
        ),
        Design(
            "seed_spread_2_s5",
            partial(seed_spread, tau=2, seeds=5),
            ("SST-2",),
            f"As seed_spread_2 with 5 seeds; truth {MU / POINT:g} points.",
        ),
        *(
            Design(
                f"planted_{label}",
                partial(planted, same_examples=same),
                ("SST-2",),
                f"{PLANTED_HEAD} fixes {PLANTED_CHANGES} hard examples (+2 points), {label} examples "
                "in every seed.",
            )
            for label, same in (("same", True), ("different", False))
        ),
        Design(
            "real_layers",
            real_layers,
            ("SST-2",),
            f"Every layer breaks {LAYER_CHANGES} examples (-5 points); heads null.",
        ),
        Design(
            "regression_null",
            regression_null,
            ("STS-B",),
            f"Each mask redraws ~{REGRESSION_SHARE:.0%} of the predictions (exchangeable).",
        ),
        Design(
            "four_discordant",
            four_discordant,
            ("SST-2", "MRPC", "STS-B"),
            f"Every mask differs from the baseline on exactly {DISCORDANT} examples per seed.",
        ),
        *(
            Design(
                f"mode_agreement_{label}",
                partial(mode_agreement, identical=same),
                ("SST-2",),
                f"Two modes; true per-head deltas N(0, {MODE_SD / POINT:g}^2 points), {label} in both.",
                evaluate_agreement,
            )
            for label, same in (("identical", True), ("independent", False))
        ),
        *(
            Design(
                f"power_different_{points}pt",
                partial(planted, same_examples=False, changes=points * PLANTED_CHANGES // 2),
                ("SST-2",),
                f"As planted_different with +{points} points ({points * PLANTED_CHANGES // 2} examples): "
                "where the existence test's power reaches 80 %.",
            )
            for points in (3, 4)
        ),
    ]
}


def design_rng(name: str, replicate: int, task_index: int = 0) -> np.random.Generator:
    """The generator of one replicate of a design (and one of its tasks)."""
    return np.random.default_rng([list(DESIGNS).index(name), replicate, task_index])


def run_replicate(
    name: str, replicate: int, settings: StatisticsSettings
) -> tuple[list[tuple[str, ...]], float]:
    """((task, metric, quantity, value) records, seconds) of one replicate of a design."""
    design = DESIGNS[name]
    start = time.perf_counter()
    settings = replace(settings, seed=settings.seed + replicate)
    records = []
    for index, task in enumerate(design.tasks):
        table, truth = design.make(design_rng(name, replicate, index), task=task)
        records += [(task, *record) for record in design.evaluate(table, truth, settings)]
    return records, time.perf_counter() - start


# ---------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class Quantity:
    label: str
    kind: str  # binary: one 0/1 per replicate | share: a rate within a replicate | mean
    unit: str  # percent | points | raw
    target: str


QUANTITIES: dict[str, Quantity] = {
    "coverage_pooled_null": Quantity(
        "pooled interval covers 0, null masks (pooled over masks)", "share", "percent", "95 %"
    ),
    "coverage_pooled_planted": Quantity(
        "pooled interval covers the truth, planted mask(s)", "share", "percent", "95 %"
    ),
    "coverage_seed_null": Quantity(
        "per-seed interval covers 0, null masks (pooled over masks and seeds)", "share", "percent", "95 %"
    ),
    "coverage_seed_planted": Quantity(
        "per-seed interval covers the seed's truth, planted mask(s) (pooled over seeds)",
        "share",
        "percent",
        "95 %",
    ),
    "fpr_pooled": Quantity("pooled p < alpha, null masks (pooled over masks)", "share", "percent", "<= 5 %"),
    "fpr_seed": Quantity(
        "per-seed p < alpha, null masks (pooled over masks and seeds)", "share", "percent", "<= 5 %"
    ),
    "undefined": Quantity("undefined (NaN) intervals, all masks and scopes", "share", "percent", "0 %"),
    "fwer_heads": Quantity("any null head significant (pooled, BH)", "binary", "percent", "<= 5 %"),
    "fwer_layers": Quantity("any null layer significant (pooled, BH)", "binary", "percent", "<= 5 %"),
    "power_heads": Quantity("planted head(s) significant (pooled, BH)", "share", "percent", "high"),
    "power_layers": Quantity(
        "planted layers significant (pooled, BH; pooled over layers)", "share", "percent", "high"
    ),
    "exists_false": Quantity("some_head_improves p < alpha, no head improves", "binary", "percent", "<= 5 %"),
    "exists_power": Quantity(
        "some_head_improves p < alpha, a head improves (power)", "binary", "percent", "high"
    ),
    "exists_contradicted": Quantity(
        "some_head_improves contradicted (ci_high < 0)", "binary", "percent", "low"
    ),
    "bias_random_head": Quantity("random_head: delta - truth", "mean", "points", "0"),
    "bias_best_head_naive": Quantity(
        "best_head_naive: delta - truth of the chosen head", "mean", "points", "> 0 (biased)"
    ),
    "bias_best_head_split": Quantity(
        "best_head_split: delta - truth of the chosen head", "mean", "points", "0"
    ),
    "bias_best_head_cross_seed": Quantity(
        "best_head_cross_seed: delta - mean truth of the chosen heads", "mean", "points", "0"
    ),
    "coverage_random_head": Quantity("random_head interval covers the truth", "binary", "percent", "95 %"),
    "coverage_best_head_naive": Quantity(
        "best_head_naive interval covers the truth", "binary", "percent", "(descriptive)"
    ),
    "coverage_best_head_split": Quantity(
        "best_head_split interval covers the truth", "binary", "percent", "95 %"
    ),
    "coverage_best_head_cross_seed": Quantity(
        "best_head_cross_seed interval covers the truth", "binary", "percent", "95 %"
    ),
    "mode_supported_true": Quantity(
        "modes_agree supported (true deltas identical)", "binary", "percent", ">= 80 %"
    ),
    "mode_supported_false": Quantity(
        "modes_agree supported (true deltas independent)", "binary", "percent", "<= 5 %"
    ),
    "mode_contradicted": Quantity("modes_agree contradicted", "binary", "percent", "-"),
    "mode_coverage": Quantity(
        "pooled correlation interval covers the true correlation", "binary", "percent", "95 %"
    ),
    "mode_error": Quantity("pooled correlation - true correlation", "mean", "raw", "0"),
}


def summarize(values: list[float], kind: str) -> tuple[float, float]:
    """(mean, Monte Carlo SE): binomial for a per-replicate 0/1, else the spread over replicates."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if kind == "binary":
        return mean, math.sqrt(mean * (1 - mean) / x.size)
    return mean, float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")


def aggregate(
    name: str, results: list[tuple[list[tuple[str, ...]], float]], workers: int
) -> dict[str, object]:
    """The summary of a design's replicates: one row per task x metric x quantity."""
    values: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for records, _ in results:
        for task, metric, quantity, value in records:
            values[(task, metric, quantity)].append(float(value))
    order = list(QUANTITIES)
    tasks = DESIGNS[name].tasks
    rows = []
    for (task, metric, quantity), found in sorted(
        values.items(), key=lambda kv: (tasks.index(kv[0][0]), kv[0][1], order.index(kv[0][2]))
    ):
        spec = QUANTITIES[quantity]
        mean, se = summarize(found, spec.kind)
        rows.append(
            {
                "task": task,
                "metric": metric,
                "quantity": quantity,
                "estimate": mean,
                "se": se,
                "n": len(found),
            }
        )
    seconds = [s for _, s in results]
    return {
        "name": name,
        "reps": len(results),
        "workers": workers,
        "replicate_s": float(np.mean(seconds)) if seconds else float("nan"),
        "rows": rows,
    }


class Progress:
    """tqdm on stderr when installed, else a line per 10 replicates."""

    def __init__(self, total: int, description: str) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()
        try:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=description, file=sys.stderr)
        except ImportError:
            self.bar = None

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update()
        elif self.done % 10 == 0 or self.done == self.total:
            elapsed = time.perf_counter() - self.start
            print(f"{self.done}/{self.total} replicates ({elapsed:.0f} s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def worker_threads(workers: int) -> Iterator[None]:
    """Limit the BLAS and Polars threads of spawned workers to their share of the CPUs."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    share = str(max(1, (os.cpu_count() or 1) // workers))
    for name in names:
        os.environ.setdefault(name, share)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_designs(
    names: list[str], reps: int | dict[str, int], settings: StatisticsSettings, workers: int = 2
) -> list[dict[str, object]]:
    """The summaries of several designs, replicates spread over `workers` processes; `reps` one
    count for every design or a count per design name."""
    count = reps if isinstance(reps, dict) else dict.fromkeys(names, reps)
    jobs = [(name, r) for name in names for r in range(count[name])]
    results: dict[str, list[tuple[list[tuple[str, ...]], float]]] = {name: [] for name in names}
    progress = Progress(len(jobs), ", ".join(names) if len(names) <= 2 else f"{len(names)} designs")
    if workers <= 1:
        for name, r in jobs:
            results[name].append(run_replicate(name, r, settings))
            progress.update()
    else:
        with worker_threads(workers), ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(run_replicate, name, r, settings): name for name, r in jobs}
            for future in as_completed(futures):
                results[futures[future]].append(future.result())
                progress.update()
    progress.close()
    return [aggregate(name, results[name], workers) for name in names]


def run_design(name: str, reps: int, settings: StatisticsSettings, workers: int = 2) -> dict[str, object]:
    """The summary of one design (see `aggregate`)."""
    return run_designs([name], reps, settings, workers)[0]


# ---------------------------------------------------------------- output


def _format(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "-"
    if unit == "percent":
        return f"{100 * value:.1f} %"
    return f"{100 * value:+.2f}" if unit == "points" else f"{value:+.3f}"


def _format_se(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{100 * value:.2f}" if unit in ("percent", "points") else f"{value:.3f}"


def markdown(result: dict[str, object]) -> str:
    """One design's table."""
    design = DESIGNS[str(result["name"])]
    lines = [
        f"### {design.name}",
        "",
        f"{design.note} R = {result['reps']} replicates; "
        f"{result['replicate_s']:.1f} s per replicate (one worker, every task).",
        "",
        "| task | metric | quantity | estimate | MC SE | target |",
        "|---|---|---|--:|--:|---|",
    ]
    for row in result["rows"]:
        spec = QUANTITIES[row["quantity"]]
        unit = " (points)" if spec.unit == "points" else ""
        lines.append(
            f"| {row['task']} | {row['metric']} | {spec.label}{unit} | {_format(row['estimate'], spec.unit)} "
            f"| {_format_se(row['se'], spec.unit)} | {spec.target} |"
        )
    return "\n".join(lines)


HOW_TO_READ = (
    "How to read: every design simulates whole sweeps whose true deltas are known and runs them through "
    "`sweep_statistics` (or the mode-agreement claim); each row is a Monte Carlo estimate over R replicates "
    "with its Monte Carlo standard error (MC SE, in the unit of the estimate: percentage points of a rate, "
    "or points of accuracy/F1/correlation x 100 for a bias). A 0/1 per replicate (any significant null "
    "head, the existence test, a best-head interval's coverage, a claim's verdict) has the binomial SE "
    "sqrt(p (1 - p) / R). Rates pooled over masks (and seeds) are first averaged within a replicate and "
    "their SE is the spread of those averages over the R replicates (the masks of one replicate share "
    "the baseline, so they are not independent trials). Null masks have true delta 0 for every metric; "
    "a calibrated interval covers the truth in about 95 % of cases and a level-alpha test rejects a null "
    "in at most about 5 %: a value more than 2-3 SE on the wrong side of its target is a miscalibration. "
    "Bias is the mean of (estimate - true delta of the head(s) it chose), in points."
)


def document(
    results: list[dict[str, object]], command: str, seconds: float, settings: StatisticsSettings
) -> str:
    header = [
        "# Calibration of the sweep statistics",
        "",
        f"Regenerate: `{command}`",
        "",
        f"Date: {date.today().isoformat()}; run time {seconds:.0f} s; B = {settings.resamples} resamples, "
        f"{settings.permutations} permutations, alpha = {settings.alpha}; {EXAMPLES} examples, "
        f"{LAYERS} x {HEADS} heads + {LAYERS} layers, {SEEDS} seeds unless stated.",
        "",
        HOW_TO_READ,
        "",
    ]
    return "\n".join(header + [markdown(r) + "\n" for r in results])


def selected_designs(requested: list[str] | None) -> list[str]:
    """Design names: each requested name, or every design whose name starts with it + '_'."""
    if not requested:
        return list(DESIGNS)
    chosen = []
    for name in requested:
        found = [d for d in DESIGNS if d == name or d.startswith(name + "_")]
        if not found:
            raise SystemExit(f"unknown design {name!r}; known: {', '.join(DESIGNS)}")
        chosen += [d for d in found if d not in chosen]
    return chosen


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", nargs="+", help="design names or prefixes (default: every design)")
    parser.add_argument("--reps", type=int, default=20, help="Monte Carlo replicates per design")
    parser.add_argument(
        "--reps-of",
        nargs="+",
        default=[],
        metavar="PREFIX=R",
        help="replicates of the designs matching a name or prefix (e.g. the slow STS-B ones)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=10000)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0, help="statistics seed (plus the replicate index)")
    parser.add_argument("--quick", action="store_true", help="2 replicates, B = 200, 1000 permutations")
    parser.add_argument("--output", type=Path, help="also write the tables to this Markdown file")
    parser.add_argument("--list", action="store_true", help="print the designs and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from headlab.analysis.sweep_statistics import StatisticsSettings

    args = parse_args(argv)
    if args.list:
        print("\n".join(f"{d.name}: {', '.join(d.tasks)}. {d.note}" for d in DESIGNS.values()))
        return
    names = selected_designs(args.designs)
    reps = dict.fromkeys(names, 2 if args.quick else args.reps)
    for item in [] if args.quick else args.reps_of:
        prefix, _, count = item.partition("=")
        reps.update({name: int(count) for name in names if name.startswith(prefix)})
    settings = StatisticsSettings(
        resamples=200 if args.quick else args.resamples,
        permutations=1000 if args.quick else args.permutations,
        alpha=args.alpha,
        seed=args.seed,
    )
    start = time.perf_counter()
    results = run_designs(names, reps, settings, args.workers)
    seconds = time.perf_counter() - start
    print("\n\n".join(markdown(r) for r in results))
    print(f"\n{seconds:.0f} s in all, {args.workers} worker(s)", file=sys.stderr)
    if args.output:
        command = shlex.join(
            ["python", "benchmarks/calibration.py", *(argv if argv is not None else sys.argv[1:])]
        )
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(document(results, command, seconds, settings))


if __name__ == "__main__":
    main()
