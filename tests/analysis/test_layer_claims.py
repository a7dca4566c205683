"""The layer, FrameNet-head and task-difference claims (`headlab.analysis.layer_claims`) on
hand-made pooled sweep statistics whose verdicts are known: supported, contradicted,
inconclusive, and not run with the reason naming what to add to the config; the Bonferroni
thresholds at their edges; the size of the QNLI/MNLI layer cost against the paper's -0.2; one
exact hand computation per claim."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from claim_helpers import claim_inputs
from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.layer_claims import (
    COST,
    RNG_STREAM,
    framenet_either_head_claim,
    heads_impact_differs_claim,
    layer_cost_small_claim,
    layer_helps_claim,
)
from headlab.analysis.significance import t_bounds, t_pvalues
from headlab.heads import parse_name

ALPHA = 0.05
NAN = float("nan")


def row(
    task: str,
    mask: str,
    delta: float,
    se: float = 0.01,
    df: float = 50.0,
    *,
    p: float | None = None,
    q: float | None = None,
    low: float | None = None,
    high: float | None = None,
) -> dict[str, object]:
    """One pooled statistics row (accuracy): the t interval and p-value of (delta, se, df) unless
    given; q = p unless given."""
    layer, head = parse_name(mask)
    t_low, t_high = t_bounds(np.array([delta]), np.array([se]), np.array([df]), 1 - ALPHA)
    p = float(t_pvalues(np.array([delta]), np.array([se]), np.array([df]))[0]) if p is None else p
    return {
        "task": task,
        "metric": "accuracy",
        "scope": "pooled",
        "mask": mask,
        "kind": "layer" if head is None else "head",
        "layer": layer,
        "head": head,
        "delta": delta,
        "se": se,
        "df": df,
        "ci_low": float(t_low[0]) if low is None else low,
        "ci_high": float(t_high[0]) if high is None else high,
        "p_value": p,
        "q_value": p if q is None else q,
        "n_seeds": 3,
        "n_examples": 500,
    }


def table(rows: list[dict[str, object]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema_overrides={"head": pl.Int32, "layer": pl.Int32})


def layers(task: str, deltas: list[float], se: float = 0.01, **given: Any) -> list[dict[str, object]]:
    return [row(task, f"L{i + 1}", d, se, **given) for i, d in enumerate(deltas)]


def inputs_of(rows: list[dict[str, object]], tasks: list[str] | None = None, **fields: Any) -> ClaimInputs:
    found = list(dict.fromkeys(str(r["task"]) for r in rows))
    return claim_inputs(tasks=tasks or found, statistics=table(rows), **fields)


# --- layer_helps ---------------------------------------------------------------------------------


def test_layer_helps_verdicts() -> None:
    flat = layers("MRPC", [0.0, 0.001, -0.002])
    helps = layers("RTE", [0.032, 0.0, -0.01], q=0.01)  # q < 0.05 / 2 tasks
    assert layer_helps_claim(inputs_of(flat + helps))["verdict"] == "supported"
    assert layer_helps_claim(inputs_of(flat))["verdict"] == "inconclusive"
    # a significant layer that hurts is not one that helps
    hurts = layers("RTE", [-0.032, 0.0], q=0.001)
    assert layer_helps_claim(inputs_of(flat + hurts))["verdict"] == "inconclusive"
    below = layers("MRPC", [-0.05, -0.04], se=0.005) + layers("RTE", [-0.03, -0.06], se=0.005)
    assert layer_helps_claim(inputs_of(below))["verdict"] == "contradicted"
    # one task whose layers may help keeps the others from contradicting
    assert layer_helps_claim(inputs_of(below + layers("SST-2", [0.0])))["verdict"] == ("inconclusive")


def test_layer_helps_bonferroni_over_tasks_and_layers() -> None:
    flat = layers("MRPC", [0.0, 0.0])
    edge = layers("RTE", [0.03, 0.0], q=0.03)  # 0.03 < alpha but >= alpha / 2 tasks
    assert layer_helps_claim(inputs_of(edge))["verdict"] == "supported"  # one task: alpha / 1
    assert layer_helps_claim(inputs_of(flat + edge))["verdict"] == "inconclusive"
    assert layer_helps_claim(inputs_of(flat + layers("RTE", [0.03, 0.0], q=0.0249)))["verdict"] == "supported"
    # contradiction: every layer below 0 with p < alpha / (2 layers x 2 tasks) = 0.0125
    below = [row("MRPC", "L1", -0.05, p=0.001), row("MRPC", "L2", -0.05, p=0.001)]
    last = [row("RTE", "L1", -0.05, p=0.001)]
    assert layer_helps_claim(inputs_of([*below, *last, row("RTE", "L2", -0.05, p=0.0124)]))["verdict"] == (
        "contradicted"
    )
    assert layer_helps_claim(inputs_of([*below, *last, row("RTE", "L2", -0.05, p=0.0126)]))["verdict"] == (
        "inconclusive"
    )


def test_layer_helps_hand_computation_and_not_run() -> None:
    rows = layers("MRPC", [0.004, -0.01]) + layers("RTE", [-0.02, 0.032, 0.01], se=0.012, q=0.003)
    made = layer_helps_claim(inputs_of(rows))
    low, high = 0.032 + np.array([-1, 1]) * stats.t.ppf(1 - ALPHA / 2, 50.0) * 0.012
    assert_allclose(
        [made["estimate"], made["ci_low"], made["ci_high"]], [3.2, 100 * low, 100 * high], 1e-12, 1e-12
    )
    assert made["verdict"] == "supported" and "best layer: RTE L2" in str(made["note"])
    assert f"RTE L2 +3.2 [{100 * low:+.1f}, {100 * high:+.1f}], q = 0.003" in str(made["ours"])
    assert "MRPC L1 +0.4" in str(made["ours"])
    assert set(made) == {"ours", "estimate", "ci_low", "ci_high", "verdict", "note"}
    none = layer_helps_claim(claim_inputs(tasks=["RTE"]))
    assert none["verdict"] == "not run" and "sweep_statistics" in str(none["note"])
    heads_only = layer_helps_claim(inputs_of([row("RTE", "L1-H1", 0.01)]))
    assert heads_only["verdict"] == "not run" and "no layer rows" in str(heads_only["note"])
    assert heads_only["estimate"] is None


# --- layer_cost_small ----------------------------------------------------------------------------


def test_layer_cost_small_verdicts_and_not_run() -> None:
    small = layers("QNLI", [-0.001, 0.0005], se=0.0002) + layers("MNLI", [-0.0015], se=0.0001)
    assert layer_cost_small_claim(inputs_of(small))["verdict"] == "supported"
    big = layers("MNLI", [-0.01], se=0.001)
    assert layer_cost_small_claim(inputs_of(small + big))["verdict"] == "contradicted"
    wide = layers("QNLI", [-0.002, 0.0], se=0.01)
    assert layer_cost_small_claim(inputs_of(wide))["verdict"] == "inconclusive"
    # upper bound below -COST but p (of delta = 0) >= alpha / (3 layers): not contradicted
    edge = [*small[:2], row("MNLI", "L1", -0.01, low=-0.015, high=-0.005, p=0.0167)]
    assert layer_cost_small_claim(inputs_of(edge))["verdict"] == "inconclusive"
    edge[2] = {**edge[2], "p_value": 0.0166}
    assert layer_cost_small_claim(inputs_of(edge))["verdict"] == "contradicted"
    # the lower bound exactly at -COST is within the claim
    exact = [row("QNLI", "L1", -0.001, low=-COST, high=0.0)]
    assert layer_cost_small_claim(inputs_of(exact))["verdict"] == "supported"
    other = layer_cost_small_claim(inputs_of(layers("RTE", [0.0])))
    assert other["verdict"] == "not run" and other["note"] == "needs tasks QNLI or MNLI (config key tasks)"
    no_statistics = layer_cost_small_claim(claim_inputs(tasks=["QNLI"]))
    assert no_statistics["verdict"] == "not run" and "sweep_statistics" in str(no_statistics["note"])


@pytest.mark.parametrize(
    ("interval", "size"),
    [
        ((-0.003, -0.001), "consistent"),  # -0.3 .. -0.1 points meets -0.2
        ((-0.012, -0.008), "smaller"),  # a larger drop than the paper's: our interval below -0.2
        ((-0.001, 0.002), "larger"),  # above -0.2
    ],
)
def test_layer_cost_size(interval: tuple[float, float], size: str) -> None:
    low, high = interval
    rows = [
        row("QNLI", "L1", 0.005, low=0.004, high=0.006),  # not QNLI's most negative layer
        row("QNLI", "L2", (low + high) / 2, low=low, high=high),
        row("MNLI", "L1", -0.01, low=-0.012, high=-0.008),
    ]
    made = layer_cost_small_claim(inputs_of(rows))
    assert made["size"] == f"QNLI L2 {size}; MNLI L1 smaller"


def test_layer_cost_hand_computation() -> None:
    rows = layers("QNLI", [-0.001, 0.002], se=0.0005) + layers("MNLI", [0.0, -0.0018, 0.001], se=0.0004)
    made = layer_cost_small_claim(inputs_of(rows, tasks=["MNLI", "RTE"]))  # QNLI not in the run
    half = stats.t.ppf(1 - ALPHA / 2, 50.0) * 0.0004
    assert_allclose(
        [made["estimate"], made["ci_low"], made["ci_high"]],
        [-0.18, 100 * (-0.0018 - half), 100 * (-0.0018 + half)],
        rtol=1e-12,
        atol=1e-12,
    )
    assert made["ours"] == f"MNLI L2 -0.2 [{100 * (-0.0018 - half):+.1f}, {100 * (-0.0018 + half):+.1f}]"
    assert made["size"] == "MNLI L2 consistent" and "not in the run: QNLI" in str(made["note"])
    assert made["verdict"] == "inconclusive"  # -0.18 - 0.08 < -0.2 points


# --- framenet_either_head ------------------------------------------------------------------------

FRAMENET_HEADS = [(2, 12), (4, 1), (7, 3)]  # the first two are the top heads


def framenet_table(top: list[bool]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "model": "m",
            "layer": [h[0] for h in FRAMENET_HEADS],
            "head": [h[1] for h in FRAMENET_HEADS],
            "score": [0.9, 0.8, 0.1],
            "n_links": 40,
            "n_sentences": 30,
            "top": top,
        }
    )


TOP = framenet_table([True, True, False])


def framenet_rows(values: dict[tuple[str, str], tuple[float, float]]) -> list[dict[str, object]]:
    """(task, head) -> (delta, se) rows, plus an unrelated head L7-H3 that hurts a lot."""
    rows = [row(task, mask, d, se) for (task, mask), (d, se) in values.items()]
    return [*rows, *(row(t, "L7-H3", -0.2, 0.001) for t in dict.fromkeys(k[0] for k in values))]


MARGIN = 0.01  # these tests' no-harm margin: 1 point (the config's default is smaller)


def either(values: dict[tuple[str, str], tuple[float, float]], **fields: Any) -> dict[str, object]:
    fields = {"no_harm_margin": MARGIN, **fields}
    return framenet_either_head_claim(inputs_of(framenet_rows(values), framenet_heads=TOP, **fields))


def test_framenet_either_head_verdicts() -> None:
    harmless = {(t, h): (0.001, 0.002) for t in ("RTE", "MRPC") for h in ("L2-H12", "L4-H1")}
    assert either(harmless)["verdict"] == "supported"  # L7-H3 (not a top head) does not count
    hurts = {**harmless, ("MRPC", "L4-H1"): (-0.02, 0.002)}
    assert either(hurts)["verdict"] == "contradicted"
    wide = {**harmless, ("MRPC", "L4-H1"): (0.0, 0.02)}  # lower bound -4 points < -1
    assert either(wide)["verdict"] == "inconclusive"
    # a top head missing from the sweep of a task: never supported
    partial = {k: v for k, v in harmless.items() if k != ("RTE", "L4-H1")}
    made = either(partial)
    assert made["verdict"] == "inconclusive" and "not in the sweep statistics: RTE L4-H1" in str(made["note"])


def test_framenet_either_head_bonferroni_edge() -> None:
    """m = 2 tasks x 2 top heads: some delta < 0 with p < 0.05 / 4 = 0.0125 contradicts."""

    def verdict(p: float) -> str:
        rows = [
            row(t, h, 0.0, 0.001)
            for t in ("RTE", "MRPC")
            for h in ("L2-H12", "L4-H1")
            if (t, h) != ("RTE", "L4-H1")
        ]
        rows.append(row("RTE", "L4-H1", -0.02, low=-0.04, high=0.0, p=p))
        return framenet_either_head_claim(inputs_of(rows, framenet_heads=TOP, no_harm_margin=MARGIN))[
            "verdict"
        ]

    assert verdict(0.0124) == "contradicted"
    assert verdict(0.0125) == "inconclusive"
    assert verdict(0.0126) == "inconclusive"
    # one task: m = 2, threshold 0.025
    rows = [row("RTE", "L2-H12", 0.0, 0.001), row("RTE", "L4-H1", -0.02, low=-0.04, high=0.0, p=0.02)]
    assert (
        framenet_either_head_claim(inputs_of(rows, framenet_heads=TOP, no_harm_margin=MARGIN))["verdict"]
        == "contradicted"
    )
    # a NaN p-value: the interval alone (here not below 0) decides
    rows[1] = {**rows[1], "p_value": NAN}
    assert (
        framenet_either_head_claim(inputs_of(rows, framenet_heads=TOP, no_harm_margin=MARGIN))["verdict"]
        == "inconclusive"
    )
    rows[1] = {**rows[1], "ci_high": -0.001}
    assert (
        framenet_either_head_claim(inputs_of(rows, framenet_heads=TOP, no_harm_margin=MARGIN))["verdict"]
        == "contradicted"
    )


def test_framenet_either_head_hand_computation_and_not_run() -> None:
    values = {("RTE", "L2-H12"): (0.004, 0.002), ("RTE", "L4-H1"): (-0.002, 0.003)}
    made = either(values)
    q = stats.t.ppf(1 - ALPHA / 2, 50.0)
    assert_allclose(
        [made["estimate"], made["ci_low"], made["ci_high"]],
        [0.1, 100 * (-0.002 - q * 0.003), 100 * (0.004 + q * 0.002)],
        rtol=1e-12,
        atol=1e-12,
    )
    assert made["verdict"] == "supported"  # lowest bound -0.8 points > -1
    assert str(made["ours"]).startswith("RTE L2-H12 +0.4") and "L7-H3" not in str(made["ours"])
    assert "FrameNet top heads L2-H12, L4-H1" in str(made["note"])
    missing = framenet_either_head_claim(inputs_of(framenet_rows(values)))
    assert missing["verdict"] == "not run" and "needs framenet.corpus_dir" in str(missing["note"])
    no_top = framenet_either_head_claim(
        inputs_of(framenet_rows(values), framenet_heads=framenet_table([False] * 3))
    )
    assert no_top["verdict"] == "not run" and "no top head" in str(no_top["note"])
    no_statistics = framenet_either_head_claim(claim_inputs(tasks=["RTE"], framenet_heads=TOP))
    assert no_statistics["verdict"] == "not run" and "sweep_statistics" in str(no_statistics["note"])
    assert no_statistics["estimate"] is None


# --- heads_impact_differs ------------------------------------------------------------------------


def head_rows(task: str, deltas: np.ndarray, se: float | np.ndarray) -> list[dict[str, object]]:
    ses = np.broadcast_to(np.asarray(se, dtype=np.float64), deltas.shape)
    return [
        row(task, f"L{1 + i // 4}-H{1 + i % 4}", float(d), float(s))
        for i, (d, s) in enumerate(zip(deltas, ses, strict=True))
    ]


ORDER = np.linspace(-0.02, 0.02, 12)


def differs(rows: list[dict[str, object]], **fields: Any) -> dict[str, object]:
    return heads_impact_differs_claim(inputs_of(rows, **fields))


def test_heads_impact_differs_verdicts() -> None:
    opposite = head_rows("RTE", ORDER, 1e-4) + head_rows("MRPC", ORDER[::-1], 1e-4)
    made = differs(opposite)
    assert made["verdict"] == "supported" and made["ours"] == "RTE~MRPC -1.00 [-1.00, -1.00] (12 heads)"
    same = (
        head_rows("RTE", ORDER, 1e-4) + head_rows("MRPC", ORDER * 2, 1e-4) + head_rows("SST-2", -ORDER, 1e-4)
    )
    assert differs(same)["verdict"] == "contradicted"  # RTE~MRPC agree, whatever SST-2 does
    noisy = head_rows("RTE", ORDER, 0.05) + head_rows("MRPC", ORDER, 0.05)
    assert differs(noisy)["verdict"] == "inconclusive"
    one = differs(head_rows("RTE", ORDER, 0.01), tasks=["RTE", "MRPC"])
    assert one["verdict"] == "not run" and "config key tasks" in str(one["note"]) and one["estimate"] is None
    none = heads_impact_differs_claim(claim_inputs(tasks=["RTE", "MRPC"]))
    assert none["verdict"] == "not run" and "sweep_statistics" in str(none["note"])


def test_heads_impact_differs_hand_computation() -> None:
    """se = 0: every draw is the deltas themselves; ranks 1 2 3 4 vs 1 3 2 4 give
    rho = 1 - 6 (1 + 1) / (4 (16 - 1)) = 0.8 exactly. Only the heads both tasks have count."""
    a = [
        row("RTE", m, d, 0.0)
        for m, d in zip(["L1-H1", "L1-H2", "L1-H3", "L1-H4", "L2-H1"], [1, 2, 3, 4, 9], strict=True)
    ]
    b = [
        row("MRPC", m, d, 0.0)
        for m, d in zip(["L1-H1", "L1-H2", "L1-H3", "L1-H4", "L3-H1"], [1, 3, 2, 4, 0], strict=True)
    ]
    made = differs([*a, *b])
    assert_allclose(
        [made["estimate"], made["ci_low"], made["ci_high"]], [80.0, 80.0, 80.0], rtol=1e-12, atol=1e-9
    )
    assert made["ours"] == "RTE~MRPC 0.80 [0.80, 0.80] (4 heads)"
    assert made["verdict"] == "contradicted" and "a correlation, not points" in str(made["note"])
    # a head without a standard error is left out, and the note says so
    with_nan = differs([*a, *b, row("MRPC", "L2-H1", 0.5, NAN)])
    assert with_nan["ours"] == made["ours"] and "left out for a NaN delta or se: MRPC 1" in str(
        with_nan["note"]
    )


def test_heads_impact_differs_bootstrap_by_hand() -> None:
    """The documented draws: rng default_rng([seed, 23]), each task's (resamples, heads) normals
    in the run's task order, percentile interval of the row-wise Spearman correlation."""
    rng_data = np.random.default_rng(5)
    da, db = rng_data.normal(0, 0.01, 12), rng_data.normal(0, 0.01, 12)
    sa, sb = rng_data.uniform(0.002, 0.006, 12), rng_data.uniform(0.002, 0.006, 12)
    inputs = inputs_of(head_rows("RTE", da, sa) + head_rows("MRPC", db, sb))
    made = heads_impact_differs_claim(inputs)
    settings = inputs.settings
    rng = np.random.default_rng([settings.seed, RNG_STREAM])
    xa = da + sa * rng.standard_normal((settings.resamples, 12))
    xb = db + sb * rng.standard_normal((settings.resamples, 12))
    rhos = np.array([stats.spearmanr(x, y).statistic for x, y in zip(xa, xb, strict=True)])
    low, high = np.quantile(rhos, [ALPHA / 2, 1 - ALPHA / 2])
    rho = stats.spearmanr(da, db).statistic
    assert_allclose(
        [made["estimate"], made["ci_low"], made["ci_high"]], [100 * rho, 100 * low, 100 * high], 1e-10, 1e-10
    )
    assert made["ci_low"] < made["estimate"] < made["ci_high"]
