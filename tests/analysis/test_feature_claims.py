"""The feature and token-to-token claims (Sec. 4.4, 4.5) on synthetic tables whose answer is known.

Negligible features: one head of a feature rises from 0.01 to a chosen value while [CLS] and
[SEP] peak at 0.8, so rise and ratio (the feature's peak / the [CLS]-[SEP] peak) are exact.
Relation heads: heads with a fixed class in every example give zero-width intervals, so the
difference between the top-5 heads' diagonal share and all heads' is exact (+20 and -20 points
in the hand computation); candidates diagonal exactly where the other heads are not give an
interval around 0. Final [CLS]: the top feature is the mean over heads (a feature with the
single largest head but a smaller mean is not it), [CLS] itself and the pre-trained rows left
out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from claim_helpers import claim_inputs
from headlab.analysis.feature_claims import (
    cls_final_sep_claim,
    features_negligible_claim,
    relation_heads_diagonal_claim,
)

RESAMPLES = 300
LAYERS, HEADS = 2, 5


HEAD_KEYS = [(layer, head) for layer in range(1, LAYERS + 1) for head in range(1, HEADS + 1)]


def feature_table(
    task: str, values: dict[tuple[str, str], Callable[[int, int], float | None]]
) -> pl.DataFrame:
    """Rule feature_attention's feature table: (condition, feature) -> value(layer, head)."""
    rows = [
        ("m", task, condition, feature, layer, head, value(layer, head), 10)
        for (condition, feature), value in values.items()
        for layer, head in HEAD_KEYS
    ]
    columns = ["model", "task", "condition", "feature", "layer", "head", "value", "n_examples"]
    return pl.DataFrame(rows, schema=columns, orient="row")


def features_of(task: str, peak: float, feature: str = "noun", before: float = 0.01) -> pl.DataFrame:
    """[CLS] 0.5 and [SEP] 0.8 at head L2H5 (0.1 elsewhere); `feature` and the other claimed
    ones at `before` everywhere before fine-tuning, after it `peak` at head L1H1."""
    special = {"cls": 0.5, "sep": 0.8}
    values: dict[tuple[str, str], Callable[[int, int], float | None]] = {}
    for name, top in special.items():
        for condition in ("pretrained", "finetuned"):
            values[(condition, name)] = lambda layer, head, top=top: top if (layer, head) == (2, 5) else 0.1
    for name in ("noun", "object", "negation"):
        values[("pretrained", name)] = lambda layer, head: before
        top = peak if name == feature else before + 0.01
        values[("finetuned", name)] = lambda layer, head, top=top: top if (layer, head) == (1, 1) else before
    return feature_table(task, values)


def test_small_rises_are_negligible() -> None:
    features = {"MRPC": features_of("MRPC", 0.04), "QNLI": features_of("QNLI", 0.06, "negation")}
    row = features_negligible_claim(claim_inputs(tasks=["MRPC", "QNLI"], features=features))
    assert row["verdict"] == "supported"
    # the largest ratio: QNLI negation 0.06 / 0.8 = 7.5 %
    np.testing.assert_allclose(row["estimate"], 100 * 0.06 / 0.8, rtol=1e-12, atol=0)
    assert row["ci_low"] is None and row["ci_high"] is None
    assert "MRPC noun: rise +3.0, 5.0 % of the strongest [CLS]/[SEP] head" in str(row["ours"])
    assert "MRPC object: rise +1.0, 2.5 %" in str(row["ours"])
    note = str(row["note"])
    assert "no interval" in note and "not in the run: RTE, QQP" in note


def test_a_large_or_absent_rise_contradicts() -> None:
    large = features_negligible_claim(claim_inputs(tasks=["RTE"], features={"RTE": features_of("RTE", 0.5)}))
    assert large["verdict"] == "contradicted"  # ratio 0.5 / 0.8 >= 0.5
    np.testing.assert_allclose(large["estimate"], 62.5, rtol=1e-12, atol=0)
    # no head rises: the fine-tuned noun peak equals the pre-trained value
    flat = features_negligible_claim(claim_inputs(tasks=["RTE"], features={"RTE": features_of("RTE", 0.01)}))
    assert flat["verdict"] == "contradicted"


def test_a_middle_ratio_or_a_missing_value_is_inconclusive() -> None:
    middle = features_negligible_claim(claim_inputs(tasks=["QQP"], features={"QQP": features_of("QQP", 0.2)}))
    assert middle["verdict"] == "inconclusive"  # 0.25: neither negligible nor half of [SEP]
    table = features_of("QQP", 0.04).with_columns(
        value=pl.when(pl.col("feature") == "object").then(None).otherwise(pl.col("value"))
    )
    row = features_negligible_claim(claim_inputs(tasks=["QQP"], features={"QQP": table}))
    assert row["verdict"] == "inconclusive"  # object has no value: never a plausible 0
    assert "no value" in str(row["note"]) and "QQP object" in str(row["note"])
    assert "QQP object: rise nan, nan" in str(row["ours"])


def test_negligible_not_run_names_the_tasks() -> None:
    row = features_negligible_claim(
        claim_inputs(tasks=["SST-2"], features={"SST-2": features_of("SST-2", 0.04)})
    )
    assert row["verdict"] == "not run"
    assert "MRPC, RTE, QQP or QNLI" in str(row["note"]) and "config key tasks" in str(row["note"])


def pattern_table(task: str, pattern: Callable[[int, int, int], str], examples: int = 20) -> pl.DataFrame:
    rows = [
        ("m", task, "finetuned", e, layer, head, pattern(e, layer, head), "rules", 1.0)
        for e in range(examples)
        for layer, head in HEAD_KEYS
    ]
    columns = [
        "model",
        "task",
        "condition",
        "example",
        "layer",
        "head",
        "pattern",
        "classifier",
        "confidence",
    ]
    return pl.DataFrame(rows, schema=columns, orient="row")


def token_table(task: str, top_layer: dict[str, int]) -> pl.DataFrame:
    """Fine-tuned values high (0.5 + a little per head) in relation -> layer, low elsewhere; the
    pre-trained rows the reverse (never read); one NaN and one null that must be left out."""
    rows = []
    for relation, layer_top in top_layer.items():
        distance = {"verb_subject": 1.5, "pronoun_noun": 4.0}[relation]
        for condition in ("pretrained", "finetuned"):
            for layer, head in HEAD_KEYS:
                high = (layer == layer_top) == (condition == "finetuned")
                value = (0.5 if high else 0.1) + head / 100
                rows.append(("m", task, condition, relation, layer, head, value, 10, 12, distance))
    rows.append(("m", task, "finetuned", "verb_subject", 3, 1, float("nan"), 0, 0, None))
    rows.append(("m", task, "finetuned", "verb_subject", 3, 2, None, 0, 0, None))
    columns = [
        "model", "task", "condition", "relation", "layer", "head", "value", "n_examples", "n_pairs",
        "mean_distance",
    ]  # fmt: skip
    return pl.DataFrame(rows, schema=columns, orient="row")


# Layer 1: D, D, V+D, V, B; layer 2: D, H, H, H, H (every example). Diagonal shares: layer 1
# 3 / 5 = 0.6, layer 2 0.2, all heads 0.4.
FIXED = {
    1: ("diagonal", "diagonal", "vertical+diagonal", "vertical", "block"),
    2: ("diagonal",) + ("heterogeneous",) * 4,
}


def test_relation_heads_by_hand() -> None:
    inputs = claim_inputs(
        tasks=["MRPC"],
        patterns={"MRPC": pattern_table("MRPC", lambda e, layer, head: FIXED[layer][head - 1])},
        token_relations={"MRPC": token_table("MRPC", {"verb_subject": 1, "pronoun_noun": 2})},
    )
    row = relation_heads_diagonal_claim(inputs)
    ours = str(row["ours"]).split("; ")
    # verb_subject: candidates layer 1, 0.6 - 0.4 = +20 points (zero width: fixed classes)
    assert ours == [
        "MRPC verb_subject +20.0 [+20.0, +20.0] (candidates L1H5 L1H4 L1H3 L1H2 L1H1, mean distance 1.50)",
        "MRPC pronoun_noun -20.0 [-20.0, -20.0] (candidates L2H5 L2H4 L2H3 L2H2 L2H1, mean distance 4.00)",
    ]
    np.testing.assert_allclose(
        (row["estimate"], row["ci_low"], row["ci_high"]), (0.0, -20.0, 20.0), atol=1e-9, rtol=0
    )
    assert row["verdict"] == "contradicted"  # pronoun_noun below 0 with p = 0


def test_diagonal_candidates_support() -> None:
    patterns = {
        t: pattern_table(t, lambda e, layer, head: "diagonal" if layer == 1 else "vertical")
        for t in ("RTE", "QQP")
    }
    tokens = {t: token_table(t, {"verb_subject": 1, "pronoun_noun": 1}) for t in ("RTE", "QQP")}
    row = relation_heads_diagonal_claim(
        claim_inputs(tasks=["RTE", "QQP", "QNLI"], patterns=patterns, token_relations=tokens)
    )
    assert row["verdict"] == "supported"
    np.testing.assert_allclose(row["estimate"], 50.0, rtol=0, atol=1e-9)  # 1 - 0.5 in every unit
    assert "not in the run: QNLI" in str(row["note"])


def test_candidates_diagonal_where_the_others_are_not_are_inconclusive() -> None:
    """Even examples: the candidates (layer 1) diagonal, the rest vertical; odd ones the reverse.
    Both shares 0.5, difference 0, and the examples' +0.5 / -0.5 give an interval across 0."""
    patterns = {
        "MRPC": pattern_table(
            "MRPC", lambda e, layer, head: "diagonal" if (layer == 1) == (e % 2 == 0) else "vertical", 40
        )
    }
    tokens = {"MRPC": token_table("MRPC", {"verb_subject": 1})}
    row = relation_heads_diagonal_claim(
        claim_inputs(tasks=["MRPC"], patterns=patterns, token_relations=tokens)
    )
    assert row["ci_low"] < 0 < row["ci_high"]
    np.testing.assert_allclose(row["estimate"], 0.0, rtol=0, atol=1e-9)
    assert row["verdict"] == "inconclusive"


def test_a_candidate_without_pattern_maps_gives_no_estimate() -> None:
    tokens = token_table("MRPC", {"verb_subject": 1}).with_columns(
        value=pl.when(pl.col("layer") == 3).then(0.9).otherwise(pl.col("value"))  # heads L3H1, L3H2
    )
    patterns = {"MRPC": pattern_table("MRPC", lambda e, layer, head: FIXED[layer][head - 1])}
    row = relation_heads_diagonal_claim(
        claim_inputs(tasks=["MRPC"], patterns=patterns, token_relations={"MRPC": tokens})
    )
    assert np.isnan(row["estimate"]) and row["verdict"] == "inconclusive"
    assert "MRPC verb_subject: candidate(s) without pattern maps" in str(row["note"])


def test_relation_heads_need_both_tables() -> None:
    tokens = {"MRPC": token_table("MRPC", {"verb_subject": 1})}
    row = relation_heads_diagonal_claim(claim_inputs(tasks=["MRPC"], token_relations=tokens))
    assert row["verdict"] == "not run"
    assert "pattern classes" in str(row["note"]) and "config key tasks" in str(row["note"])


def cls_table(task: str, finetuned: dict[str, list[float]]) -> pl.DataFrame:
    """The final layer's [CLS] table: per feature one value per head (fine-tuned); the
    pre-trained rows put negation on top (never read)."""
    rows = []
    for feature, values in finetuned.items():
        for head, value in enumerate(values, start=1):
            rows.append(("m", task, "finetuned", feature, 12, head, value, 0.5, 10))
            rows.append(("m", task, "pretrained", feature, 12, head, 0.0, 0.5, 10))
    rows += [("m", task, "pretrained", "negation", 12, h, 0.99, 0.5, 10) for h in (1, 2)]
    columns = ["model", "task", "condition", "feature", "layer", "head", "value", "share", "n_examples"]
    return pl.DataFrame(rows, schema=columns, orient="row")


# [SEP] has the largest mean (0.3) although punctuation has the largest head (0.5); [CLS] is
# larger still but is not a candidate.
SEP_TOP = {"cls": [0.9, 0.9], "sep": [0.2, 0.4], "punctuation": [0.5, 0.0], "noun": [0.1, None]}
PUNCT_TOP = {"cls": [0.9, 0.9], "sep": [0.2, 0.2], "punctuation": [0.3, 0.3], "noun": [0.1, 0.1]}


def test_final_cls_attends_sep_and_punctuation_where_expected() -> None:
    tables = {"MRPC": cls_table("MRPC", SEP_TOP), "RTE": cls_table("RTE", PUNCT_TOP)}
    row = cls_final_sep_claim(claim_inputs(tasks=["MRPC", "RTE", "QQP"], cls_attention=tables))
    assert row["verdict"] == "supported"
    np.testing.assert_allclose(row["estimate"], 100.0, rtol=0, atol=1e-12)
    assert str(row["ours"]).startswith("MRPC sep (30.0 %; expected sep); RTE punctuation (30.0 %")
    assert "not in the run: QQP" in str(row["note"])


def test_final_cls_mixed_and_wrong() -> None:
    mixed = {"MRPC": cls_table("MRPC", PUNCT_TOP), "RTE": cls_table("RTE", PUNCT_TOP)}
    row = cls_final_sep_claim(claim_inputs(tasks=["MRPC", "RTE"], cls_attention=mixed))
    assert row["verdict"] == "inconclusive"  # holds in RTE only: 1 of 2 tasks
    np.testing.assert_allclose(row["estimate"], 50.0, rtol=0, atol=1e-12)
    wrong = {"QQP": cls_table("QQP", PUNCT_TOP), "STS-B": cls_table("STS-B", SEP_TOP)}
    assert cls_final_sep_claim(claim_inputs(tasks=["QQP", "STS-B"], cls_attention=wrong))["verdict"] == (
        "contradicted"
    )


def test_final_cls_without_values_or_tables() -> None:
    empty = cls_table("MRPC", {"sep": [None, None], "cls": [0.9, 0.9]})
    row = cls_final_sep_claim(claim_inputs(tasks=["MRPC"], cls_attention={"MRPC": empty}))
    assert row["verdict"] == "inconclusive" and row["estimate"] is None
    assert "no fine-tuned value: MRPC" in str(row["note"])
    missing = cls_final_sep_claim(claim_inputs(tasks=["MRPC"]))
    assert missing["verdict"] == "not run" and "[CLS] attention" in str(missing["note"])
