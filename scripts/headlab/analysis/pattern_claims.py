"""The paper's claims about the pattern classes of Figure 2 (Sec. 4.1), checked on the pattern tables.

Input: ``inputs.patterns[task]``, one row per (example, layer, head) of the fine-tuned model
with its class (`PATTERNS`) and the classifier that gave it ("rules" or "cnn"). A map share is
a count of maps over a count of maps; every interval is a percentile bootstrap over the task's
examples (an example is drawn with all its head maps; tasks are resampled independently), at
level 1 - statistics.alpha with statistics.resamples replicates, and a two-sided bootstrap
p-value is 2 x min(share of replicates <= 0, share >= 0), capped at 1 (`bootstrap_p`).

* `patterns_repeat_claim` ("the self-attention map types are consistently repeated across
  different heads and tasks"): per class c, the *across-head variance* is the mean over tasks of
  the variance (ddof 0) over the task's heads of each head's share of its maps in c, and the
  *across-task variance* the variance (ddof 0) over the run's tasks of the task's share in c,
  each minus its sampling part, so that both estimate the spread of the TRUE shares: a share
  over k examples carries the sampling variance k / (k - 1) sum_e (x_e - share m_e)^2 /
  (sum_e m_e)^2 (x_e, m_e: the example's maps in c and all its maps; p (1 - p) / (k - 1) with
  one map per example, unbiased); the part in a variance over heads is the mean of the heads'
  minus the task share's (an example moves all heads together; exact when every head has the
  same maps per example), over T tasks (1 - 1/T) times the mean of the tasks'. A spread is the
  signed square root of its corrected variance (negative: less spread than the sampling noise
  alone gives), not clipped at 0: a clipped root of zero-mean noise is positive on average
  (+0.2 to +0.9 points on pure noise, 144 heads, 2 tasks) and read "supported" in 8.4 % of 500
  such runs at 400 examples, where the signed root gives +0.02 to +0.18 and 0 %.
  Estimate = mean over the five classes of (across-head - across-task spread), in points:
  positive when the classes differ more between heads than between tasks, i.e. a head's mix of
  classes repeats across tasks. Each bootstrap replicate applies the same correction and then
  subtracts the observed sampling parts once more: it resamples from the observed shares, whose
  spread holds the noise once already, so this centres the replicates on the corrected estimate. One unit,
  claimed > 0, decided by `headlab.analysis.claim_rules.with_units`; two tasks or more,
  two examples or more each (one gives no sampling noise to estimate: not run).
  Why a correction and not a permutation null (head labels shuffled within each example): the
  correction centres the estimate itself, and the interval that decides the verdict, on the
  true spreads (its variances are unbiased), whereas a permutation p-value would leave the
  reported estimate inflated (+8 points on noise with 20 examples) and test "heads are
  exchangeable" instead of "heads differ more than tasks". It errs on the safe side where
  nothing differs (the bootstrap's heads differ by the observed noise, which widens the
  interval); benchmarks/pattern_claim_calibration.py prints the rejection rate and the mean
  estimate on noise, and those of the clipped root.
* `heterogeneous_share_claim` ("the Heterogeneous share varies from 32 % (MRPC) to 61 % (QQP)"):
  per task the share of maps classed heterogeneous with its interval. `supported` when every
  task's interval lies inside [0.32, 0.61] (`PAPER_RANGE`); `contradicted` when some task's interval lies
  entirely outside it; else `inconclusive`. Estimate: the mean share over tasks, interval: the
  span of the tasks' intervals (points). ``size``: per task with a number in the paper
  (`PAPER_HETEROGENEOUS`), "TASK consistent|smaller|larger" by `claim_rules.size_verdict`
  (smaller: our interval lies below the paper's number).

Shared with `headlab.analysis.feature_claims`: `model_rows`, `map_table`, `class_counts`, `weight_blocks`,
`bootstrap_p`, `present_tasks`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import polars as pl

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.claim_rules import Unit, not_run, size_verdict, summary_span, with_units
from headlab.analysis.significance import BLOCK_WEIGHTS, MIN_FINITE_SHARE, percentile_interval
from headlab.conditions import FINETUNED
from headlab.data.labels import PATTERNS

HETEROGENEOUS = "heterogeneous"
# The paper's heterogeneous shares (Sec. 4.1), fractions, of the tasks it names.
PAPER_HETEROGENEOUS = {"MRPC": 0.32, "QQP": 0.61}
PAPER_RANGE = (0.32, 0.61)
# Corrected variances closer to 0 than this (spreads below 1e-6) are float rounding, taken as 0.
ROUNDING = 1e-12
# How the note names each classifier of the `classifier` column.
CLASSIFIER_NAMES = {"rules": "the rules (no hand labels)", "cnn": "the CNN (trained on the hand labels)"}


def present_tasks(tasks: Sequence[str], tables: Mapping[str, pl.DataFrame | None]) -> list[str]:
    """The tasks of `tasks` (in order) whose table is in the run and has rows."""
    return [t for t in tasks if tables.get(t) is not None and tables[t].height > 0]


def model_rows(table: pl.DataFrame, model: str) -> pl.DataFrame:
    """`model`'s rows of a table that holds several models; else the table."""
    if "model" in table.columns and table["model"].n_unique() > 1:
        return table.filter(pl.col("model") == model)
    return table


def map_table(table: pl.DataFrame, model: str) -> pl.DataFrame:
    """The pattern rows of one model and condition: a table that holds several models keeps
    `model`'s rows, one that holds several conditions keeps the fine-tuned ones."""
    table = model_rows(table, model)
    if "condition" in table.columns and table["condition"].n_unique() > 1:
        table = table.filter(pl.col("condition") == FINETUNED)
    return table


def class_counts(table: pl.DataFrame) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The heads (layer, head), sorted, and the map counts (examples, heads, classes) of a
    pattern table, examples in sorted order, classes in `PATTERNS` order (0 or 1 each when the
    table has one row per example x layer x head)."""
    unknown = sorted(set(table["pattern"].unique().to_list()) - set(PATTERNS))
    if unknown:
        raise ValueError(f"unknown pattern class(es) {unknown}; valid: {list(PATTERNS)}")
    heads = table.select("layer", "head").unique().sort("layer", "head")
    head_list = [(int(a), int(b)) for a, b in heads.iter_rows()]
    indexed = table.select(
        example=pl.col("example").rank("dense").cast(pl.Int64) - 1,
        pattern=pl.col("pattern").replace_strict(list(PATTERNS), list(range(len(PATTERNS)))),
        layer=pl.col("layer"),
        head=pl.col("head"),
    ).join(heads.with_row_index("h"), on=["layer", "head"], how="left")
    example = indexed["example"].to_numpy()  # (rows,)
    head = indexed["h"].to_numpy().astype(np.int64)  # (rows,)
    pattern = indexed["pattern"].to_numpy().astype(np.int64)  # (rows,)
    counts = np.zeros((int(example.max()) + 1, len(head_list), len(PATTERNS)))  # (n, H, C)
    np.add.at(counts, (example, head, pattern), 1.0)
    return head_list, counts


def weight_blocks(
    rng: np.random.Generator, resamples: int, sizes: Sequence[int]
) -> Iterator[list[np.ndarray]]:
    """Blocks of bootstrap counts, one (b, n_k) array per size n_k (independent resamples of
    each group of examples), b summing to `resamples` over the blocks (bounded memory)."""
    block = max(1, BLOCK_WEIGHTS // max(1, max(sizes)))
    for start in range(0, resamples, block):
        b = min(block, resamples - start)
        yield [_counts(rng, b, n) for n in sizes]


def _counts(rng: np.random.Generator, b: int, n: int) -> np.ndarray:
    drawn = rng.integers(0, n, size=(b, n))  # (b, n)
    flat = (np.arange(b)[:, None] * n + drawn).reshape(-1)  # (b * n,)
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)  # (b, n)


def bootstrap_p(replicates: np.ndarray) -> np.ndarray:
    """(K,) two-sided bootstrap p-values of replicates (B, K): 2 x min(share <= 0, share >= 0)
    over the finite replicates, capped at 1; NaN below MIN_FINITE_SHARE finite."""
    finite = np.isfinite(replicates)  # (B, K)
    n = finite.sum(axis=0)  # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        below = np.where(finite, replicates <= 0, False).sum(axis=0) / n  # (K,)
        above = np.where(finite, replicates >= 0, False).sum(axis=0) / n  # (K,)
    p = np.minimum(1.0, 2 * np.minimum(below, above))  # (K,)
    return np.where(finite.mean(axis=0) >= MIN_FINITE_SHARE, p, np.nan)


def classifier_note(tables: Mapping[str, pl.DataFrame]) -> str:
    """Which classifier(s) produced the classes, per task when the tasks differ."""
    by_task = {t: tuple(tab["classifier"].unique(maintain_order=True).to_list()) for t, tab in tables.items()}

    def named(names: tuple[str, ...]) -> str:
        return " and ".join(CLASSIFIER_NAMES.get(n, repr(n)) for n in names)

    kinds = list(dict.fromkeys(by_task.values()))
    if len(kinds) == 1:
        return f"classes by {named(kinds[0])}"
    parts = [f"{named(k)} ({', '.join(t for t, v in by_task.items() if v == k)})" for k in kinds]
    return "classes by " + "; ".join(parts)


def _root(variance: np.ndarray) -> np.ndarray:
    """The signed square root: a spread, negative where the noise-corrected variance is (less
    spread than the sampling noise alone gives); never clipped (module docstring). A variance
    within ROUNDING of 0 is 0: the float residue of the noise terms' sums of squares."""
    variance = np.where(np.abs(variance) < ROUNDING, 0.0, variance)
    return np.sign(variance) * np.sqrt(np.abs(variance))


def _difference(task_var: np.ndarray, head_var: np.ndarray) -> np.ndarray:
    """(b,) mean over classes of across-head minus across-task spread of corrected variances (b, C)."""
    return (_root(head_var) - _root(task_var)).mean(axis=1)


def _share_noise(sums: list[np.ndarray], examples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share, its sampling variance) of a ratio of sums over examples: sums (x, x^2, x m, m,
    m^2) of the maps x in a class and all maps m, `examples` with a map; the variance is
    k / (k - 1) * sum (x - share m)^2 / (sum m)^2, p (1 - p) / (k - 1) for one map per example."""
    sx, sxx, sxm, sm, smm = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        share = sx / sm
        noise = examples / (examples - 1) * (sxx - 2 * share * sxm + share**2 * smm) / sm**2
    return share, noise


def _variances(counts: Sequence[np.ndarray], weights: Sequence[np.ndarray]) -> np.ndarray:
    """(4, b, C): the across-task variance of the tasks' class shares and its expected sampling
    part, the across-head variance and its sampling part (mean over tasks), of the counts
    (n_k, H, C) under example weights (b, n_k); minus each other, unbiased for the true shares."""
    task_shares, task_noises, head_vars, head_noises = [], [], [], []
    for count, weight in zip(counts, weights, strict=True):
        n, h, c = count.shape
        maps = count.sum(axis=2)  # (n, H)
        flat = [count, count**2, count * maps[:, :, None]]  # (n, H, C) each
        head_sums = [(weight @ a.reshape(n, h * c)).reshape(-1, h, c) for a in flat]  # (b, H, C) each
        head_sums += [(weight @ a)[:, :, None] for a in (maps, maps**2)]  # (b, H, 1) each
        head_share, head_noise = _share_noise(head_sums, (weight @ (maps > 0))[:, :, None])  # (b, H, C)
        x, m = count.sum(axis=1), maps.sum(axis=1)  # (n, C), (n,)
        task_sums = [weight @ x, weight @ x**2, weight @ (x * m[:, None])]  # (b, C) each
        task_sums += [(weight @ m)[:, None], (weight @ m**2)[:, None]]  # (b, 1) each
        task_share, task_noise = _share_noise(task_sums, (weight @ (m > 0))[:, None])  # (b, C) each
        # E var0_h(share_h) = var0_h(true) + mean_h noise_h - var(mean_h share_h); the mean over
        # heads is the task's share when every head has the same maps per example
        head_vars.append(head_share.var(axis=1))  # (b, C)
        head_noises.append(head_noise.mean(axis=1) - task_noise)  # (b, C)
        task_shares.append(task_share)
        task_noises.append(task_noise)
    t = len(counts)
    return np.stack(
        [
            np.stack(task_shares).var(axis=0),
            (1 - 1 / t) * np.stack(task_noises).mean(axis=0),
            np.stack(head_vars).mean(axis=0),
            np.stack(head_noises).mean(axis=0),
        ]
    )


def patterns_repeat_claim(inputs: ClaimInputs) -> dict[str, object]:
    present = present_tasks(inputs.tasks, inputs.patterns)
    if len(present) < 2:
        return not_run({}, "needs the pattern classes of at least two tasks (config key tasks)")
    missing = [t for t in inputs.tasks if t not in present]
    tables = {t: map_table(inputs.patterns[t], inputs.model) for t in present}
    classified = [class_counts(tables[t]) for t in present]
    if len({tuple(heads) for heads, _ in classified}) > 1:
        raise ValueError(f"the pattern tables of {present} hold different heads")
    counts = [c for _, c in classified]  # (n_k, H, C) each
    few = [t for t, c in zip(present, counts, strict=True) if c.shape[0] < 2]
    if few:
        return not_run({}, f"needs two examples or more per task for the sampling noise ({', '.join(few)})")
    ones = [np.ones((1, c.shape[0])) for c in counts]
    task_var, task_noise, head_var, head_noise = _variances(counts, ones)  # (1, C) each
    across_task, across_head = _root(task_var - task_noise), _root(head_var - head_noise)  # (1, C) each
    observed = float(_difference(task_var - task_noise, head_var - head_noise)[0])
    rng = np.random.default_rng([inputs.settings.seed, 4101])
    replicates = []
    for weights in weight_blocks(rng, inputs.settings.resamples, [c.shape[0] for c in counts]):
        tv, tn, hv, hn = _variances(counts, weights)  # (b, C) each
        # the replicates' truth is the observed uncorrected variance: subtract the noise again
        replicates.append(_difference(tv - tn - task_noise, hv - hn - head_noise))  # (b,)
    stacked = np.concatenate(replicates)[:, None]  # (B, 1)
    low, high = percentile_interval(stacked, inputs.settings.alpha)
    unit = Unit(
        "across heads - across tasks", observed, float(low[0]), float(high[0]), float(bootstrap_p(stacked)[0])
    )
    row = with_units({}, [unit], +1, missing, inputs.settings.alpha)
    by_class = ", ".join(
        f"{p} {100 * h:.1f}/{100 * t:.1f}"
        for p, h, t in zip(PATTERNS, across_head[0], across_task[0], strict=True)
    )
    row["ours"] = f"{row['ours']}; per class across heads/across tasks: {by_class} ({', '.join(present)})"
    return row


def heterogeneous_share_claim(inputs: ClaimInputs) -> dict[str, object]:
    present = present_tasks(inputs.tasks, inputs.patterns)
    if not present:
        return not_run(
            {},
            "needs the pattern classes of at least one task, MRPC and QQP for the paper's numbers "
            "(config key tasks)",
        )
    claimed = [t for t in PAPER_HETEROGENEOUS if t not in present]
    missing = list(dict.fromkeys([t for t in inputs.tasks if t not in present] + claimed))
    tables = {t: map_table(inputs.patterns[t], inputs.model) for t in present}
    het = PATTERNS.index(HETEROGENEOUS)
    per_example = []
    for task in present:
        counts = class_counts(tables[task])[1]  # (n, H, C)
        per_example.append(
            np.stack([counts[:, :, het].sum(axis=1), counts.sum(axis=(1, 2))], axis=1)
        )  # (n, 2)
    rng = np.random.default_rng([inputs.settings.seed, 4102])
    replicates: list[list[np.ndarray]] = [[] for _ in present]
    for weights in weight_blocks(rng, inputs.settings.resamples, [e.shape[0] for e in per_example]):
        for k, (weight, example) in enumerate(zip(weights, per_example, strict=True)):
            sums = weight @ example  # (b, 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                replicates[k].append(sums[:, 0] / sums[:, 1])  # (b,)
    units = []
    for task, example, reps in zip(present, per_example, replicates, strict=True):
        low, high = percentile_interval(np.concatenate(reps)[:, None], inputs.settings.alpha)  # (1,) each
        units.append(
            Unit(task, float(example[:, 0].sum() / example[:, 1].sum()), float(low[0]), float(high[0]))
        )
    lo, hi = PAPER_RANGE
    inside = [u.low >= lo and u.high <= hi for u in units]  # NaN: False
    outside = [u.high < lo or u.low > hi for u in units]
    verdict = "supported" if all(inside) else "contradicted" if any(outside) else "inconclusive"
    span_low, span_high, nan_note = summary_span(units)
    sizes = [
        f"{u.name} {size_verdict(100 * PAPER_HETEROGENEOUS[u.name], 100 * u.low, 100 * u.high)}"
        for u in units
        if u.name in PAPER_HETEROGENEOUS and np.isfinite(u.low) and np.isfinite(u.high)
    ]
    notes = [classifier_note(tables)]
    notes += [f"not in the run: {', '.join(missing)}"] if missing else []
    notes += [nan_note] if nan_note else []
    return {
        "ours": "; ".join(
            f"{u.name} {_percent(u.estimate)} [{_percent(u.low)}, {_percent(u.high)}]" for u in units
        ),
        "estimate": 100 * float(np.mean([u.estimate for u in units])),
        "ci_low": 100 * span_low,
        "ci_high": 100 * span_high,
        "verdict": verdict,
        "note": "; ".join(notes),
        "size": "; ".join(sizes) or None,
    }


def _percent(value: float) -> str:
    return "nan" if not np.isfinite(value) else f"{100 * value:.1f} %"
