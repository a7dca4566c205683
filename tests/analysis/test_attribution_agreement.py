"""Agreement of the one-pass screens with the exact sweep (`headlab.analysis.attribution_agreement`).

Synthetic sweeps (`score_helpers.planted_sweep`: 6 layers x 4 heads, 200 dev examples, 3 seeds,
per-example score deltas = a planted effect per head + noise) with attribution estimates built
from the same per-example deltas, and importance values on a separate sample of 100 examples.

Proved here:

* estimates = the exact per-example deltas + a fixed per-head bias + small noise: Spearman and
  Pearson above 0.9 and the intervals contain the planted (population) values, the Spearman and
  Pearson of (effects + bias) against the effects, pooled (and the Spearman's in 9 of 10 seeded
  simulations); the layer unit (sum of its heads' estimates) agrees too;
* estimates independent of the exact deltas (no head has an effect): the pooled Spearman
  interval contains 0 in at least 36 of 40 seeded simulations;
* every observed value is the plain statistic (scipy's Spearman and Pearson, the top-k overlap by
  hand) of the plain means computed here from the long tables; the importance screen is minus
  the mean importance of table 3 against the uniform mode's deltas (the first mode without
  uniform); the metric target is the Spearman of the accuracy deltas;
* planted importance proportional to each head's harm agrees with the sweep (Spearman > 0.9);
* one set of example weights is shared by the modes: two modes with the same data give the same
  rows; the table has the schema and one row per mode x unit x target x scope x statistic;
* errors name the cause: a mode without a sweep, a missing estimate, other seeds.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from headlab.analysis.attribution_agreement import (
    ATTRIBUTION_AGREEMENT_SCHEMA,
    STATISTICS,
    attribution_agreement,
)
from headlab.analysis.significance import StatisticsSettings
from score_helpers import head_table, planted_sweep, sweep_examples

LAYERS, HEADS, EXAMPLES, SEEDS, SAMPLE = 6, 4, 200, 3, 100
N_HEADS = LAYERS * HEADS
NOISE = 0.05  # per-example sd of a head's score delta
K = 5
SETTINGS = StatisticsSettings(resamples=200, permutations=200, alpha=0.05, seed=3)
RTOL, ATOL = 1e-9, 1e-12
KEYS = {"model": "synthetic", "task": "SYN"}


def effects(rng: np.random.Generator) -> np.ndarray:
    """(H,) planted head effects: most harmful -0.1, a few helping up to 0.02."""
    return rng.permutation(np.linspace(-0.1, 0.02, N_HEADS))


def close_case(seed: int, mode: str = "uniform", layer_masks: bool = True) -> dict[str, object]:
    """Sweep + attribution = exact per-example deltas + a fixed per-head bias (sd 0.01) + noise
    (sd 0.01) + importance (|noise|, no signal) on another sample; the planted truths."""
    rng = np.random.default_rng(seed)
    mu = effects(rng)
    sweep, deltas = planted_sweep(
        rng, np.tile(mu, (SEEDS, 1)), LAYERS, HEADS, NOISE, EXAMPLES, mode, layer_masks
    )
    bias = rng.normal(0.0, 0.01, N_HEADS)
    estimate = deltas + bias[None, :, None] + 0.01 * rng.normal(size=deltas.shape)  # (S, H, n)
    attribution = head_table(estimate, LAYERS, HEADS, "estimate", sweep_examples(sweep), mode=mode, **KEYS)
    values = np.abs(rng.normal(size=(SEEDS, N_HEADS, SAMPLE)))  # (S, H, m)
    importance = head_table(values, LAYERS, HEADS, "value", np.arange(SAMPLE), split="train", **KEYS)
    return {"sweep": sweep, "attribution": attribution, "importance": importance, "mu": mu, "bias": bias}


def agree(case: dict[str, object], settings: StatisticsSettings = SETTINGS) -> pl.DataFrame:
    return attribution_agreement(
        case["attribution"], case["sweep"], case["importance"], "accuracy", K, settings
    )


def pick(table: pl.DataFrame, **where: object) -> pl.DataFrame:
    for column, value in where.items():
        table = table.filter(pl.col(column).is_null() if value is None else pl.col(column) == value)
    return table


def head_rows(table: pl.DataFrame, statistic: str, scope: str = "pooled") -> pl.DataFrame:
    return pick(table, screen="attribution", unit="head", target="score", statistic=statistic, scope=scope)


def test_close_estimates_agree_and_cover_the_planted_values() -> None:
    case = close_case(1)
    table = agree(case)
    mu, bias = case["mu"], case["bias"]
    truth = {
        "spearman": stats.spearmanr(mu + bias, mu).statistic,
        "pearson": stats.pearsonr(mu + bias, mu).statistic,
    }
    for statistic, planted in truth.items():
        assert planted > 0.9
        rows = head_rows(table, statistic, scope="seed").vstack(head_rows(table, statistic))
        assert rows.height == SEEDS + 1
        for row in rows.iter_rows(named=True):
            assert row["value"] > 0.9, row
        pooled = head_rows(table, statistic).row(0, named=True)
        assert pooled["ci_low"] <= planted <= pooled["ci_high"], (planted, pooled)
    layers = pick(table, unit="layer", target="score", scope="pooled", statistic="pearson").row(0, named=True)
    assert layers["value"] > 0.9 and layers["n_units"] == LAYERS, layers


def test_close_estimates_cover_the_planted_spearman_in_most_simulations() -> None:
    covered = 0
    for seed in range(100, 110):
        case = close_case(seed, layer_masks=False)
        row = head_rows(agree(case), "spearman").row(0, named=True)
        covered += (
            row["ci_low"]
            <= stats.spearmanr(case["mu"] + case["bias"], case["mu"]).statistic
            <= row["ci_high"]
        )
    assert covered >= 9, covered


def test_independent_estimates_cover_zero_in_most_simulations() -> None:
    covered = 0
    for seed in range(200, 240):
        rng = np.random.default_rng(seed)
        zero = np.zeros((2, N_HEADS))  # two seeds keep the 40 simulations fast
        sweep, deltas = planted_sweep(rng, zero, LAYERS, HEADS, NOISE, EXAMPLES, layer_masks=False)
        estimate = NOISE * rng.normal(size=deltas.shape)  # (S, H, n): unrelated to the deltas
        attribution = head_table(
            estimate, LAYERS, HEADS, "estimate", sweep_examples(sweep), mode="uniform", **KEYS
        )
        values = np.abs(rng.normal(size=(2, N_HEADS, SAMPLE)))
        importance = head_table(values, LAYERS, HEADS, "value", np.arange(SAMPLE), split="train", **KEYS)
        table = attribution_agreement(attribution, sweep, importance, "accuracy", K, SETTINGS)
        row = head_rows(table, "spearman").row(0, named=True)
        covered += row["ci_low"] <= 0.0 <= row["ci_high"]
    assert covered >= 36, covered


def plain_means(case: dict[str, object], mode: str = "uniform") -> dict[str, np.ndarray]:
    """Per seed (S, H): mean estimate, exact score delta, accuracy delta; importance (S, H)."""
    sweep = case["sweep"].filter(pl.col("mode") == mode)
    base = sweep.filter(pl.col("kind") == "baseline").select(
        "seed", "example", base_score="score", base_right=pl.col("prediction") == pl.col("label")
    )
    heads = (
        sweep.filter(pl.col("kind") == "head")
        .join(base, on=["seed", "example"])
        .group_by("seed", "layer", "head")
        .agg(
            exact=(pl.col("score") - pl.col("base_score")).mean(),
            accuracy=(pl.col("prediction") == pl.col("label")).mean() - pl.col("base_right").mean(),
        )
    )
    estimate = (
        case["attribution"]
        .filter(pl.col("mode") == mode)
        .group_by("seed", "layer", "head")
        .agg(pl.col("estimate").mean())
    )
    importance = case["importance"].group_by("seed", "layer", "head").agg(importance=pl.col("value").mean())
    joined = heads.join(estimate, on=["seed", "layer", "head"]).join(importance, on=["seed", "layer", "head"])
    joined = joined.sort("seed", "layer", "head")
    return {
        c: joined[c].to_numpy().reshape(SEEDS, N_HEADS)
        for c in ("exact", "accuracy", "estimate", "importance")
    }


def overlap(estimate: np.ndarray, exact: np.ndarray, k: int) -> float:
    low_e = set(np.argsort(estimate, kind="stable")[:k].tolist())
    low_x = set(np.argsort(exact, kind="stable")[:k].tolist())
    return len(low_e & low_x) / k


def test_observed_values_are_the_plain_statistics_of_the_plain_means() -> None:
    case = close_case(2)
    table = agree(case)
    means = plain_means(case)
    scopes = [(s, {c: v[s] for c, v in means.items()}) for s in range(SEEDS)]
    scopes.append((None, {c: v.mean(0) for c, v in means.items()}))
    for seed, m in scopes:
        scope = "pooled" if seed is None else "seed"
        expected = {
            ("attribution", "score", "spearman"): stats.spearmanr(m["estimate"], m["exact"]).statistic,
            ("attribution", "score", "pearson"): stats.pearsonr(m["estimate"], m["exact"]).statistic,
            ("attribution", "score", "top_k_overlap"): overlap(m["estimate"], m["exact"], K),
            ("attribution", "accuracy", "spearman"): stats.spearmanr(m["estimate"], m["accuracy"]).statistic,
            ("importance", "score", "spearman"): stats.spearmanr(m["importance"], -m["exact"]).statistic,
            ("importance", "score", "pearson"): stats.pearsonr(m["importance"], -m["exact"]).statistic,
            ("importance", "score", "top_k_overlap"): overlap(-m["importance"], m["exact"], K),
            ("importance", "accuracy", "spearman"): stats.spearmanr(
                m["importance"], -m["accuracy"]
            ).statistic,
        }
        for (screen, target, statistic), value in expected.items():
            rows = pick(
                table, screen=screen, unit="head", target=target, scope=scope, seed=seed, statistic=statistic
            )
            assert rows.height == 1
            row = rows.row(0, named=True)
            assert row["value"] == pytest.approx(value, rel=RTOL, abs=ATOL), (screen, target, statistic, seed)
            assert statistic == "top_k_overlap" or row["ci_low"] <= row["ci_high"]
    assert set(pick(table, screen="importance")["n_examples"]) == {SAMPLE}
    assert set(pick(table, screen="attribution")["n_examples"]) == {EXAMPLES}


def test_the_layer_estimate_is_the_sum_of_its_heads() -> None:
    case = close_case(3)
    table = agree(case)
    means = plain_means(case)
    layer_estimate = means["estimate"].mean(0).reshape(LAYERS, HEADS).sum(1)  # (L,) pooled
    sweep = case["sweep"]
    base = sweep.filter(pl.col("kind") == "baseline").select("seed", "example", base_score="score")
    exact = (
        sweep.filter(pl.col("kind") == "layer")
        .join(base, on=["seed", "example"])
        .group_by("layer")
        .agg(delta=(pl.col("score") - pl.col("base_score")).mean())
        .sort("layer")["delta"]
        .to_numpy()
    )
    row = pick(table, unit="layer", target="score", scope="pooled", statistic="pearson").row(0, named=True)
    assert row["value"] == pytest.approx(stats.pearsonr(layer_estimate, exact).statistic, rel=RTOL, abs=ATOL)
    assert row["k"] == K and row["n_units"] == LAYERS


def test_planted_importance_agrees_with_the_sweep() -> None:
    case = close_case(4)
    rng = np.random.default_rng(41)
    harm = np.clip(-case["mu"], 0.0, None)  # (H,) how much disabling a head costs
    values = np.abs(harm[None, :, None] * 10 + 0.05 * rng.normal(size=(SEEDS, N_HEADS, SAMPLE)))
    case["importance"] = head_table(values, LAYERS, HEADS, "value", np.arange(SAMPLE), split="train", **KEYS)
    table = agree(case)
    row = pick(table, screen="importance", target="score", scope="pooled", statistic="spearman").row(
        0, named=True
    )
    assert row["value"] > 0.9 and row["ci_low"] > 0.8, row
    overlap_row = pick(table, screen="importance", target="score", scope="pooled", statistic="top_k_overlap")
    assert overlap_row.row(0, named=True)["value"] == pytest.approx(1.0, rel=RTOL, abs=ATOL)
    # The overlap is a step function whose bootstrap is off centre: no interval, every scope.
    overlaps = pick(table, statistic="top_k_overlap")
    assert overlaps.height > 0 and overlaps["ci_low"].is_nan().all() and overlaps["ci_high"].is_nan().all()
    assert pick(table, statistic="spearman")["ci_low"].is_finite().all()


def two_modes(seed: int, second: str = "zero") -> dict[str, object]:
    """The same sweep and attribution under mode "uniform" and under `second`."""
    case = close_case(seed)
    other = {c: case[c].with_columns(mode=pl.lit(second)) for c in ("sweep", "attribution")}
    return {
        **case,
        "sweep": pl.concat([case["sweep"], other["sweep"]]),
        "attribution": pl.concat([case["attribution"], other["attribution"]]),
    }


def test_modes_share_the_example_weights_and_the_table_has_every_row() -> None:
    case = two_modes(5)
    table = agree(case)
    assert dict(table.schema) == ATTRIBUTION_AGREEMENT_SCHEMA
    # per mode: units head, layer x (score: 3 statistics, accuracy: spearman) x (3 seeds + pooled)
    per_mode = 2 * (len(STATISTICS) + 1) * (SEEDS + 1)
    importance = (len(STATISTICS) + 1) * (SEEDS + 1)
    assert table.height == 2 * per_mode + importance
    columns = ["unit", "target", "scope", "seed", "statistic", "value", "ci_low", "ci_high"]
    uniform = pick(table, screen="attribution", mode="uniform").select(columns)
    zero = pick(table, screen="attribution", mode="zero").select(columns)
    assert uniform.equals(zero)  # the same data and the same resamples: the same rows
    assert set(pick(table, screen="importance")["mode"]) == {"uniform"}
    assert pick(table, scope="pooled")["seed"].is_null().all()
    keys = table.select("screen", "mode", "unit", "target", "scope", "seed", "statistic")
    assert keys.unique().height == table.height


def test_importance_reads_the_first_mode_without_uniform() -> None:
    case = close_case(6, mode="mean")
    table = agree(case)
    assert set(pick(table, screen="importance")["mode"]) == {"mean"}


def test_k_is_capped_at_the_number_of_units() -> None:
    case = close_case(7)
    table = attribution_agreement(
        case["attribution"], case["sweep"], case["importance"], "accuracy", 10, SETTINGS
    )
    assert set(pick(table, unit="layer")["k"]) == {LAYERS}
    assert set(pick(table, unit="head")["k"]) == {10}
    # the top "6 of 6" layers are every layer
    np.testing.assert_allclose(pick(table, unit="layer", statistic="top_k_overlap")["value"], 1.0, rtol=RTOL)


def test_errors_name_the_cause() -> None:
    case = close_case(8)
    zero = case["attribution"].with_columns(mode=pl.lit("zero"))
    with pytest.raises(ValueError, match=r"mode 'zero'.*sweeps only"):
        attribution_agreement(zero, case["sweep"], case["importance"], "accuracy", K, SETTINGS)
    missing = case["attribution"].filter(
        ~((pl.col("seed") == 1) & (pl.col("layer") == 2) & (pl.col("head") == 3))
    )
    with pytest.raises(ValueError, match=r"'estimate'.*missing"):
        attribution_agreement(missing, case["sweep"], case["importance"], "accuracy", K, SETTINGS)
    fewer = case["attribution"].filter(pl.col("seed") != 2)
    with pytest.raises(ValueError, match=r"seeds \[0, 1\], the sweep has \[0, 1, 2\]"):
        attribution_agreement(fewer, case["sweep"], case["importance"], "accuracy", K, SETTINGS)
    aggregated = (
        case["importance"]
        .group_by("model", "task", "seed", "split", "layer", "head")
        .agg(importance=pl.col("value").mean())
    )
    with pytest.raises(ValueError, match=r"per-example table .* no \['example', 'value'\]"):
        attribution_agreement(case["attribution"], case["sweep"], aggregated, "accuracy", K, SETTINGS)
    with pytest.raises(ValueError, match=r"no 'score' column"):
        attribution_agreement(
            case["attribution"], case["sweep"].drop("score"), case["importance"], "accuracy", K, SETTINGS
        )
