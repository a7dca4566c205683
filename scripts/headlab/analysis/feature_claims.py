"""The paper's claims about attention to linguistic features and between tokens (Sec. 4.4, 4.5).

Inputs: the tables of rule feature_attention (``inputs.features``, ``inputs.token_relations``,
``inputs.cls_attention``; both conditions of finetune.analysis_seed's model; per head a mean over
examples, so they carry no per-example values and no interval) and, for the relation heads, the
pattern classes of Figure 2 (``inputs.patterns``, one row per example x layer x head). Null (or
NaN) values are left out, never read as 0; a quantity with no value left is NaN and named.

* `features_negligible_claim` ("heads that paid increased attention to nouns and direct objects
  (MRPC, RTE, QQP) and negation (QNLI) ... negligible compared to [CLS] and [SEP]"): for each
  (task, feature) of `CLAIMED_FEATURES` in the run, *rise* = max over heads of (fine-tuned -
  pre-trained value) and *ratio* = (max over heads of the fine-tuned value of the feature) /
  (max over heads of the fine-tuned max(cls, sep) value). `supported` when every pair has
  rise > 0 and ratio < NEGLIGIBLE (0.1); `contradicted` when some pair has rise <= 0 or
  ratio >= NOT_NEGLIGIBLE (0.5); else `inconclusive` (a pair without a value: never supported
  nor contradicting). Estimate: the largest ratio, in percent; no interval.
* `relation_heads_diagonal_claim` ("potential head candidates [of verb-subject and
  pronoun-noun links] coincided with diagonally structured attention maps"): per task with both
  tables and per relation, the candidates are the K = 5 heads with the largest fine-tuned
  ``value`` (ties: lower layer, then head, first); a head's diagonal share is the share of its
  maps classed "diagonal" or "vertical+diagonal"; unit = mean diagonal share of the candidates -
  mean diagonal share of all heads, with a percentile bootstrap interval over the pattern
  table's examples (the candidates fixed: the token table has no per-example values) and a
  two-sided bootstrap p-value; claimed > 0 in every (task, relation) unit, decided by
  `headlab.analysis.claim_rules.with_units`. `ours` adds the candidates and their mean
  ``mean_distance`` (tokens between the pair).
* `cls_final_sep_claim` ("for most tasks, with the exception of STS-B, RTE and QNLI, the [SEP]
  gets attended the most" by the final layer's [CLS], punctuation in those three): per task,
  among the fine-tuned rows of the final layer, the feature other than cls with the largest
  mean over heads of ``value``; expected `EXPECTED_TOP` ("punctuation" for STS-B, RTE and QNLI,
  "sep" otherwise). `supported` when it holds in every task of the run, `contradicted` when in
  none, else `inconclusive` (a task without values: neither). Estimate: the share of tasks where
  it holds, in percent; no interval.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from headlab.analysis.claim_inputs import ClaimInputs
from headlab.analysis.claim_rules import Unit, not_run, points, with_units
from headlab.analysis.pattern_claims import (
    bootstrap_p,
    class_counts,
    map_table,
    model_rows,
    present_tasks,
    weight_blocks,
)
from headlab.analysis.significance import percentile_interval
from headlab.conditions import FINETUNED, PRETRAINED
from headlab.data.labels import PATTERNS

# The (task, feature) pairs of Sec. 4.4's claim, in the paper's order.
CLAIMED_FEATURES = {
    "MRPC": ("noun", "object"),
    "RTE": ("noun", "object"),
    "QQP": ("noun", "object"),
    "QNLI": ("negation",),
}
NEGLIGIBLE = 0.1  # ratio below this: negligible next to [CLS] / [SEP]
NOT_NEGLIGIBLE = 0.5  # ratio at or above this: at least half of the strongest [CLS] / [SEP] head
SPECIAL = ("cls", "sep")
# Sec. 4.5's candidate heads per relation.
TOP_K = 5
DIAGONAL = ("diagonal", "vertical+diagonal")
# The final layer's [CLS] attends these the most; every other task: "sep".
EXPECTED_TOP = {"STS-B": "punctuation", "RTE": "punctuation", "QNLI": "punctuation"}


def _values(table: pl.DataFrame, condition: str, column: str, name: str) -> pl.DataFrame:
    """layer, head, value of one condition and feature (or relation), nulls and NaN left out."""
    return (
        table.filter((pl.col("condition") == condition) & (pl.col(column) == name))
        .select("layer", "head", pl.col("value").cast(pl.Float64).fill_nan(None))
        .drop_nulls("value")
    )


def _max(frame: pl.DataFrame) -> float:
    return float(frame["value"].max()) if frame.height else float("nan")


def _feature_pair(table: pl.DataFrame, feature: str) -> tuple[float, float]:
    """(rise, ratio) of one task's feature; NaN where a value is missing."""
    tuned = _values(table, FINETUNED, "feature", feature)
    before = _values(table, PRETRAINED, "feature", feature)
    both = tuned.join(before, on=["layer", "head"], suffix="_before")
    rise = float((both["value"] - both["value_before"]).max()) if both.height else float("nan")
    special = pl.concat([_values(table, FINETUNED, "feature", s) for s in SPECIAL])
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = float(np.float64(_max(tuned)) / np.float64(_max(special)))
    return rise, ratio if np.isfinite(ratio) else float("nan")


def features_negligible_claim(inputs: ClaimInputs) -> dict[str, object]:
    claimed = [t for t in CLAIMED_FEATURES if t in inputs.tasks]
    present = present_tasks(claimed, inputs.features)
    if not present:
        return not_run(
            {},
            "needs the feature tables (rule feature_attention) of MRPC, RTE, QQP or QNLI (config key tasks)",
        )
    missing = [t for t in CLAIMED_FEATURES if t not in present]
    pairs = []  # (task, feature, rise, ratio)
    for task in present:
        table = model_rows(inputs.features[task], inputs.model)
        pairs += [(task, f, *_feature_pair(table, f)) for f in CLAIMED_FEATURES[task]]
    rises = np.array([p[2] for p in pairs])  # (pairs,)
    ratios = np.array([p[3] for p in pairs])  # (pairs,)
    if np.all((rises > 0) & (ratios < NEGLIGIBLE)):  # NaN: False
        verdict = "supported"
    elif np.any((rises <= 0) | (ratios >= NOT_NEGLIGIBLE)):
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    texts = [
        f"{task} {feature}: rise {points(rise)}, {_percent(ratio)} of the strongest [CLS]/[SEP] head"
        for task, feature, rise, ratio in pairs
    ]
    notes = ["no interval: the feature tables hold means over examples, no per-example values"]
    notes += [f"not in the run: {', '.join(missing)}"] if missing else []
    empty = [f"{t} {f}" for t, f, rise, ratio in pairs if np.isnan(rise) or np.isnan(ratio)]
    notes += (
        [f"no value (no example has the feature, or a condition is missing): {', '.join(empty)}"]
        if empty
        else []
    )
    finite = ratios[np.isfinite(ratios)]  # (finite pairs,)
    return {
        "ours": "; ".join(texts),
        "estimate": 100 * float(finite.max()) if finite.size else None,
        "ci_low": None,
        "ci_high": None,
        "verdict": verdict,
        "note": "; ".join(notes),
    }


def _candidates(table: pl.DataFrame, relation: str) -> pl.DataFrame:
    """The TOP_K heads with the largest fine-tuned value of `relation` (layer, head, mean_distance)."""
    rows = table.filter((pl.col("condition") == FINETUNED) & (pl.col("relation") == relation)).with_columns(
        pl.col("value").cast(pl.Float64).fill_nan(None),
        pl.col("mean_distance").cast(pl.Float64).fill_nan(None),
    )
    ranked = rows.drop_nulls("value").sort(["value", "layer", "head"], descending=[True, False, False])
    return ranked.head(TOP_K).select("layer", "head", "mean_distance")


def _relation_units(
    inputs: ClaimInputs, task: str, rng: np.random.Generator
) -> tuple[list[Unit], list[str], list[str]]:
    """One task's units (one per relation of its token table), their `ours` texts and notes."""
    tokens = model_rows(inputs.token_relations[task], inputs.model)
    heads, counts = class_counts(map_table(inputs.patterns[task], inputs.model))  # (n, H, C)
    diagonal = counts[:, :, [PATTERNS.index(p) for p in DIAGONAL]].sum(axis=2)  # (n, H)
    maps = counts.sum(axis=2)  # (n, H)
    index = {h: k for k, h in enumerate(heads)}
    relations = [r for r in ("verb_subject", "pronoun_noun") if r in tokens["relation"].to_list()]
    relations += sorted(set(tokens["relation"].to_list()) - set(relations))
    if not relations:
        return [], [], [f"{task}: no relation rows in the token-to-token table"]
    chosen, texts, notes = [], [], []
    for relation in relations:
        candidates = _candidates(tokens, relation)
        keys = [(int(a), int(b)) for a, b in candidates.select("layer", "head").iter_rows()]
        unmapped = [k for k in keys if k not in index]
        if not keys or unmapped:
            why = "no fine-tuned value" if not keys else "candidate(s) without pattern maps"
            notes.append(f"{task} {relation}: {why}")
        elif len(keys) < TOP_K:
            notes.append(f"{task} {relation}: {len(keys)} candidate(s) with a value, not {TOP_K}")
        chosen.append([index[k] for k in keys] if keys and not unmapped else None)
        distance = candidates["mean_distance"].drop_nulls()  # the candidates' mean token distance
        shown = f"{distance.mean():.2f}" if distance.len() else "nan"
        names = " ".join(f"L{a}H{b}" for a, b in keys) or "none"
        texts.append(f"(candidates {names}, mean distance {shown})")

    def contrast(weight: np.ndarray) -> np.ndarray:
        """(b, R) candidates' mean diagonal share - all heads' mean, under example weights (b, n)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (weight @ diagonal) / (weight @ maps)  # (b, H)
        columns = [
            share[:, c].mean(axis=1) - share.mean(axis=1) if c is not None else np.full(len(share), np.nan)
            for c in chosen
        ]  # R x (b,)
        return np.stack(columns, axis=1)  # (b, R)

    observed = contrast(np.ones((1, maps.shape[0])))[0]  # (R,)
    blocks = [contrast(w[0]) for w in weight_blocks(rng, inputs.settings.resamples, [maps.shape[0]])]
    replicates = np.concatenate(blocks)  # (B, R)
    low = np.full(len(chosen), np.nan)  # (R,)
    high = np.full(len(chosen), np.nan)  # (R,)
    known = [k for k, c in enumerate(chosen) if c is not None]  # no interval of a unit without candidates
    if known:
        low[known], high[known] = percentile_interval(replicates[:, known], inputs.settings.alpha)
    p = bootstrap_p(replicates)  # (R,)
    units = [
        Unit(f"{task} {r}", float(observed[k]), float(low[k]), float(high[k]), float(p[k]))
        for k, r in enumerate(relations)
    ]
    return units, texts, notes


def relation_heads_diagonal_claim(inputs: ClaimInputs) -> dict[str, object]:
    with_tokens = present_tasks(inputs.tasks, inputs.token_relations)
    present = present_tasks(with_tokens, inputs.patterns)
    if not present:
        return not_run(
            {},
            "needs the token-to-token tables (rule feature_attention) and the pattern classes of "
            "at least one task (config key tasks)",
        )
    missing = [t for t in inputs.tasks if t not in present]
    rng = np.random.default_rng([inputs.settings.seed, 4504])
    units: list[Unit] = []
    texts: list[str] = []
    notes: list[str] = []
    for task in present:
        task_units, task_texts, task_notes = _relation_units(inputs, task, rng)
        units += task_units
        texts += task_texts
        notes += task_notes
    if not units:
        return not_run({}, "the token-to-token tables of the run hold no relation rows")
    row = with_units({}, units, +1, missing, inputs.settings.alpha)
    row["ours"] = "; ".join(
        f"{u.name} {points(u.estimate)} [{points(u.low)}, {points(u.high)}] {text}"
        for u, text in zip(units, texts, strict=True)
    )
    extra = "; ".join(notes)
    row["note"] = "; ".join(n for n in (row["note"], extra) if n) or None
    return row


def _top_feature(table: pl.DataFrame) -> tuple[str | None, float]:
    """The feature other than cls that the final layer's [CLS] attends most (mean over heads)."""
    rows = table.filter((pl.col("condition") == FINETUNED) & (pl.col("feature") != "cls"))
    if rows.height:
        rows = rows.filter(pl.col("layer") == rows["layer"].max())
    means = (
        rows.with_columns(pl.col("value").cast(pl.Float64).fill_nan(None))
        .drop_nulls("value")
        .group_by("feature")
        .agg(pl.col("value").mean())
        .sort(["value", "feature"], descending=[True, False])
    )
    if not means.height:
        return None, float("nan")
    return str(means["feature"][0]), float(means["value"][0])


def cls_final_sep_claim(inputs: ClaimInputs) -> dict[str, object]:
    present = present_tasks(inputs.tasks, inputs.cls_attention)
    if not present:
        return not_run(
            {},
            "needs the final layer's [CLS] attention tables (rule feature_attention) of at least one "
            "task (config key tasks)",
        )
    missing = [t for t in inputs.tasks if t not in present]
    holds: list[bool | None] = []
    texts = []
    for task in present:
        top, value = _top_feature(model_rows(inputs.cls_attention[task], inputs.model))
        expected = EXPECTED_TOP.get(task, "sep")
        holds.append(None if top is None else top == expected)
        texts.append(f"{task} {top or 'none'} ({_percent(value)}; expected {expected})")
    decided = [h for h in holds if h is not None]
    if len(decided) == len(holds) and all(decided):
        verdict = "supported"
    elif len(decided) == len(holds) and not any(decided):
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    notes = ["estimate: share of tasks where it holds; no interval (a count over tasks)"]
    notes += [f"not in the run: {', '.join(missing)}"] if missing else []
    undecided = [t for t, h in zip(present, holds, strict=True) if h is None]
    notes += [f"no fine-tuned value: {', '.join(undecided)}"] if undecided else []
    return {
        "ours": "; ".join(texts),
        "estimate": 100 * float(np.mean(decided)) if decided else None,
        "ci_low": None,
        "ci_high": None,
        "verdict": verdict,
        "note": "; ".join(notes),
    }


def _percent(value: float) -> str:
    return "nan" if value is None or not np.isfinite(value) else f"{100 * value:.1f} %"
