"""The attention claims over fine-tuning seeds, on synthetic attention tables whose answer is
known: a difference that is the same on every example of every seed has an interval of zero
width at that difference; seeds that differ give the crossed t interval of their
mean: with no example noise, mean +- t(0.975, S - 1) x sd / sqrt(S), e.g. two seeds that
disagree (+0.3, -0.3): 0 +- 12.7 x 0.3, a very wide interval across 0 (inconclusive); one seed
alone has no seed part (zero width again); the drift claim counts the task x seed pairs where
the last two layers change most."""

from __future__ import annotations

from math import nan

import numpy as np
import polars as pl
import pytest
from scipy import stats

from claim_helpers import claim_inputs
from headlab.analysis.attention_claims import cls_sep_claim, drift_claim, pair_overlap_claim, sst2_sep_claim
from headlab.analysis.claim_inputs import ClaimInputs
from headlab.data.tasks import get_task

LAYERS, HEADS, EXAMPLES = 4, 2, 30


def attention_table(task: str, seed: int, cls: list[float], sep: list[float]) -> pl.DataFrame:
    """Rule attention_stats' cls/sep rows of one seed (the claims job adds `seed`): every example
    and head of a layer has that layer's value; `sep` is the mass on all [SEP] tokens."""
    rows = []
    for example in range(EXAMPLES):
        for layer in range(1, LAYERS + 1):
            for head in range(1, HEADS + 1):
                rows.append((task, example, layer, head, "cls", cls[layer - 1], seed))
                rows.append((task, example, layer, head, "sep", sep[layer - 1], seed))
                # a pair's two [SEP] share the mass equally; a single sentence has one [SEP]
                first, second = (sep[layer - 1] / 2,) * 2 if get_task(task).is_pair else (sep[layer - 1], nan)
                rows.append((task, example, layer, head, "sep_first", first, seed))
                rows.append((task, example, layer, head, "sep_second", second, seed))
    return pl.DataFrame(
        rows, schema=["task", "example", "layer", "head", "stat", "value", "seed"], orient="row"
    )


def units_of(row: dict[str, object]) -> dict[str, tuple[float, float, float]]:
    """name -> (estimate, low, high) in points, parsed from the row's `ours` text."""
    units = {}
    for part in str(row["ours"]).split("; "):
        name, rest = part.rsplit(" ", 3)[0], part.rsplit(" ", 3)[1:]
        estimate, low, high = float(rest[0]), float(rest[1].strip("[,")), float(rest[2].strip("]"))
        units[name] = (estimate, low, high)
    return units


def test_a_constant_difference_in_every_seed_has_a_zero_width_interval() -> None:
    # CLS: first half 0.4, second half 0.1 -> +0.3; SEP: first half 0.1, second half 0.3 -> +0.2
    seeds = [attention_table("MRPC", s, [0.4, 0.4, 0.1, 0.1], [0.1, 0.1, 0.3, 0.3]) for s in (1, 2)]
    attention = {"MRPC": pl.concat(seeds)}
    row = cls_sep_claim(["MRPC"], attention, 200, 0.05, np.random.default_rng(0))
    assert row["verdict"] == "supported"
    units = units_of(row)
    np.testing.assert_allclose(units["MRPC CLS"], (30.0, 30.0, 30.0), atol=0.05)
    np.testing.assert_allclose(units["MRPC SEP"], (20.0, 20.0, 20.0), atol=0.05)
    assert row["estimate"] == pytest.approx(25.0, abs=1e-9)


def t_interval_points(per_seed: list[float]) -> tuple[float, float, float]:
    """(mean, low, high) in points of the t interval over seeds with no example noise: the
    crossed variance is then the seed part alone, s^2 / S on S - 1 degrees of freedom."""
    values = np.asarray(per_seed)
    mean, se = values.mean(), values.std(ddof=1) / np.sqrt(values.size)
    half = stats.t.ppf(0.975, values.size - 1) * se
    return 100 * mean, 100 * (mean - half), 100 * (mean + half)


def test_seeds_that_disagree_give_an_interval_across_zero() -> None:
    """Seed 1: earlier layers attend to [CLS] (+0.3); seed 2: the reverse (-0.3). Every example
    agrees within a seed, so only the seed level can show the disagreement: the interval is the
    t interval of two seeds on 1 df, 0 +- 12.71 x 0.3 = +-381 points (the old two-level bootstrap
    gave the percentile interval [-30, +30]: the range of the two seeds, far too narrow for two
    draws)."""
    attention = {
        "MRPC": pl.concat(
            [
                attention_table("MRPC", 1, [0.4, 0.4, 0.1, 0.1], [0.1, 0.1, 0.3, 0.3]),
                attention_table("MRPC", 2, [0.1, 0.1, 0.4, 0.4], [0.1, 0.1, 0.3, 0.3]),
            ]
        )
    }
    row = cls_sep_claim(["MRPC"], attention, 500, 0.05, np.random.default_rng(0))
    estimate, low, high = units_of(row)["MRPC CLS"]
    expected = t_interval_points([0.3, -0.3])
    assert expected[2] == pytest.approx(100 * stats.t.ppf(0.975, 1) * 0.3)  # 381.2 points
    np.testing.assert_allclose((estimate, low, high), expected, atol=0.05)  # `ours` has 1 decimal
    assert row["ci_low"] == pytest.approx(expected[1], rel=1e-9) and row["ci_high"] > 300
    # SEP agrees in both seeds (+0.2, zero width): only CLS keeps the claim from support
    np.testing.assert_allclose(units_of(row)["MRPC SEP"], (20.0, 20.0, 20.0), atol=0.05)
    assert row["verdict"] == "inconclusive"
    one_seed = {"MRPC": attention["MRPC"].filter(pl.col("seed") == 2)}
    assert cls_sep_claim(["MRPC"], one_seed, 200, 0.05, np.random.default_rng(0))["verdict"] == "contradicted"


def test_seeds_that_agree_in_sign_but_not_in_size_give_the_t_interval() -> None:
    """CLS differences +0.3 and +0.2 (no example noise): mean +0.25, se 0.05 on 1 df, so the
    interval is 0.25 +- 12.71 x 0.05 = [-38.5, +88.5] points: across 0, inconclusive, although
    both seeds point the same way (two seeds cannot show a direction at 95 %). A third seed at
    +0.25 shrinks it to 0.25 +- 4.30 x 0.029 = [+12.6, +37.4] points: supported."""
    tables = [
        attention_table("MRPC", 1, [0.4, 0.4, 0.1, 0.1], [0.1, 0.1, 0.3, 0.3]),  # CLS +0.3
        attention_table("MRPC", 2, [0.3, 0.3, 0.1, 0.1], [0.1, 0.1, 0.3, 0.3]),  # CLS +0.2
    ]
    row = cls_sep_claim(["MRPC"], {"MRPC": pl.concat(tables)}, 200, 0.05, np.random.default_rng(0))
    np.testing.assert_allclose(units_of(row)["MRPC CLS"], t_interval_points([0.3, 0.2]), atol=0.05)
    assert units_of(row)["MRPC CLS"][1] < 0 and row["verdict"] == "inconclusive"
    tables.append(attention_table("MRPC", 3, [0.35, 0.35, 0.1, 0.1], [0.1, 0.1, 0.3, 0.3]))  # +0.25
    row = cls_sep_claim(["MRPC"], {"MRPC": pl.concat(tables)}, 200, 0.05, np.random.default_rng(0))
    expected = t_interval_points([0.3, 0.2, 0.25])
    np.testing.assert_allclose(units_of(row)["MRPC CLS"], expected, atol=0.05)
    assert expected[1] > 0 and row["verdict"] == "supported"


def test_sst2_against_a_pair_task_over_seeds() -> None:
    def task(name: str, sep: float) -> pl.DataFrame:
        return pl.concat([attention_table(name, s, [0.2] * LAYERS, [sep] * LAYERS) for s in (1, 2, 3)])

    attention = {"SST-2": task("SST-2", 0.5), "RTE": task("RTE", 0.3)}
    row = sst2_sep_claim(["SST-2", "RTE"], attention, 200, 0.05, np.random.default_rng(0))
    assert row["verdict"] == "supported"
    # the maximum over the [SEP] tokens: SST-2's one 0.5 against RTE's 0.15 + 0.15
    np.testing.assert_allclose(units_of(row)["vs RTE"], (35.0, 35.0, 35.0), atol=0.05)


def test_sst2_sep_is_the_maximum_over_the_sep_tokens_not_their_sum() -> None:
    """SST-2 puts 0.4 on its one [SEP], RTE 0.3 on each of two: the sum (0.4 < 0.6) and the
    maximum (0.4 > 0.3) disagree, and the claim measures as the paper does (the maximum)."""

    def task(name: str, sep: float) -> pl.DataFrame:
        return pl.concat([attention_table(name, s, [0.2] * LAYERS, [sep] * LAYERS) for s in (1, 2, 3)])

    attention = {"SST-2": task("SST-2", 0.4), "RTE": task("RTE", 0.6)}
    sums = {t: table.filter(pl.col("stat") == "sep")["value"].mean() for t, table in attention.items()}
    assert sums["SST-2"] < sums["RTE"]  # the sum would contradict the claim
    row = sst2_sep_claim(["SST-2", "RTE"], attention, 200, 0.05, np.random.default_rng(0))
    assert row["verdict"] == "supported"
    np.testing.assert_allclose(units_of(row)["vs RTE"], (10.0, 10.0, 10.0), atol=0.05)


def drift_table(task: str, seed: int, lowest: tuple[int, int]) -> pl.DataFrame:
    """Rule attention_drift's table of one seed: the layers `lowest` changed most."""
    rows = [
        (task, layer, head, 0.5 if layer in lowest else 0.9, seed)
        for layer in range(1, LAYERS + 1)
        for head in range(1, HEADS + 1)
    ]
    return pl.DataFrame(rows, schema=["task", "layer", "head", "cosine_mean", "seed"], orient="row")


def test_drift_claim_counts_tasks_and_seeds() -> None:
    last = (LAYERS - 1, LAYERS)
    everywhere = {"MRPC": pl.concat([drift_table("MRPC", s, last) for s in (1, 2)])}
    assert drift_claim(["MRPC"], everywhere)["verdict"] == "supported"
    split = {"MRPC": pl.concat([drift_table("MRPC", 1, last), drift_table("MRPC", 2, (1, 2))])}
    row = drift_claim(["MRPC"], split)
    assert row["verdict"] == "inconclusive" and row["estimate"] == pytest.approx(0.5)
    assert "last two in 1/2 seeds" in str(row["ours"])
    nowhere = {"MRPC": drift_table("MRPC", 1, (1, 2)), "QQP": drift_table("QQP", 1, last)}
    assert drift_claim(["MRPC", "QQP"], nowhere)["verdict"] == "contradicted"  # QQP is the paper's exception


def overlap_table(task: str, seed: int, pair: dict[tuple[int, int], float], rest: float) -> pl.DataFrame:
    """Rule attention_stats' overlap rows of one seed: the heads in `pair` put that much on the
    other sentence's shared words, every other head `rest` (example-to-example noise added)."""
    rng = np.random.default_rng(seed)
    rows = []
    for example in range(EXAMPLES):
        noise = float(rng.normal(0.0, 0.01))
        for layer in range(1, LAYERS + 1):
            for head in range(1, HEADS + 1):
                value = pair.get((layer, head), rest) + noise
                rows.append((task, example, layer, head, "overlap", value, seed))
    return pl.DataFrame(
        rows, schema=["task", "example", "layer", "head", "stat", "value", "seed"], orient="row"
    )


def overlap_inputs(attention: dict[str, pl.DataFrame], **changes: object) -> ClaimInputs:
    """The claims' inputs with the pair named for the model (L2-H1, L4-H2)."""
    fields: dict[str, object] = {
        "tasks": list(attention),
        "pair_heads": ["L2-H1", "L4-H2"],
        "pair_heads_named": True,
        "attention": attention,
        **changes,
    }
    return claim_inputs(**fields)


def test_pair_heads_overlap_against_every_head() -> None:
    """The pair heads put 0.3 on shared words, the others 0.1: each pair head's excess over the
    mean of all 8 heads is 0.3 - (2 x 0.3 + 6 x 0.1) / 8 = +15 points, in both tasks."""
    pair = {(2, 1): 0.3, (4, 2): 0.3}
    attention = {t: pl.concat([overlap_table(t, s, pair, 0.1) for s in (1, 2, 3)]) for t in ("STS-B", "RTE")}
    row = pair_overlap_claim(overlap_inputs(attention))
    assert row["verdict"] == "supported"
    for name in ("STS-B L2-H1", "STS-B L4-H2", "RTE L2-H1", "RTE L4-H2"):
        np.testing.assert_allclose(units_of(row)[name][0], 15.0, rtol=0, atol=0.051)
    flat = {
        t: pl.concat([overlap_table(t, s, {(2, 1): 0.02, (4, 2): 0.02}, 0.1) for s in (1, 2, 3)])
        for t in attention
    }
    assert pair_overlap_claim(overlap_inputs(flat))["verdict"] == "contradicted"


def test_pair_heads_overlap_needs_the_models_own_heads() -> None:
    attention = {"RTE": overlap_table("RTE", 1, {}, 0.1)}
    row = pair_overlap_claim(overlap_inputs(attention, pair_heads_named=False, shape=(6, 12)))
    assert row["verdict"] == "not run" and "claims.pair_heads_by_model.m" in str(row["note"])
    assert "6 x 12" in str(row["note"])
    assert pair_overlap_claim(overlap_inputs({}, tasks=["SST-2"]))["verdict"] == "not run"
