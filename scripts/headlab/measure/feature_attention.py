"""Attention to linguistic features (Sec. 4.4, Figure 6) and token-to-token attention (Sec. 4.5, Figure 7).

Every statistic is reduced inside an engine observer as each layer's attention is computed;
no (query, key) map outlives its layer. Word pieces carry the features of `headlab.data.linguistic`.
With A the attention of one head for one example (query x key) and L its number of real tokens:

* **attention received** by piece k: ``r[k] = sum over real queries q of A[q, k] / L`` (the
  paper's "sum of self-attention weights assigned to the token of interest from each input
  token ... normalized by sequence length").
* **feature score** of an example: the maximum of ``r`` over the pieces marked with the feature
  (several nouns, the two [SEP] of a pair, every piece of a split word: the paper's "we take
  the maximum value"). Examples without the feature are skipped; the table's ``value`` is the
  mean over the examples that have it (``n_examples``).
* **token-to-token** (Sec. 4.5): attention from a query word to a key word is, over word
  pieces, the mean over the query word's pieces of the sum over the key word's pieces
  (Clark et al., 2019's convention for split words: attention *to* a word is summed over its
  pieces, attention *from* a word averaged). An example's score is the maximum over its pairs
  of the relation (as Sec. 4.4 and 4.2 take the maximum), examples without a pair are skipped,
  ``value`` is the mean over examples. ``mean_distance`` is the mean distance in word pieces
  between the first pieces of the two words over all pairs: the paper found such heads hard to
  tell from previous/next-token heads because the pairs are mostly close together.
* **[CLS] attention** (Figure 7), final layer only: the [CLS] query row's attention to the
  pieces of each feature; ``value`` is the maximum over the feature's pieces (as in Sec. 4.4),
  ``share`` their sum (the part of [CLS]'s attention the feature receives), each averaged over
  the examples that have the feature.

**Word level** (``level="word"``, config ``attention.level``): as in
`headlab.measure.attention_stats` (with `headlab.measure.word_pooling.WordPooling`), the
pieces are first pooled to words from the fast tokenizer's ``word_ids()`` ([CLS] and [SEP] are
words of their own): each layer's map becomes ``P_word = M @ A @ S^T`` (attention *to* a word is
the sum over its pieces, *from* a word the mean over its pieces), a word carries a feature when
any of its pieces does, and a pair's query (key) word is every word holding a piece of the query
(key) token: the weights are 1/n on the n query words and 1 on the key words. The statistics
above are then computed on ``P_word`` over words (L is the number of words, "pieces" read
"words"), and ``mean_distance`` is in words.

The reductions are `headlab.measure.feature_reductions`, the batch inputs (marks, pairs, word
pooling) `headlab.measure.feature_inputs`; this module holds the observer that adds them up
over examples and the tables. Sizes (layers, heads) come from the model's config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from transformers import PreTrainedModel

from headlab.data.linguistic import FEATURES, AlignedExample
from headlab.data.token_rules import RELATIONS
from headlab.measure.attention_stats import LEVELS
from headlab.measure.feature_inputs import PairInputs, batch_inputs, batch_word_pooling, word_inputs
from headlab.measure.feature_reductions import (
    cls_attention,
    example_max,
    feature_max,
    pair_attention,
    received_attention,
)
from headlab.measure.word_pooling import WordPooling
from headlab.model.batching import Batch, Encoded, eval_batches
from headlab.model.engine import head_count, layer_count
from headlab.model.inference import observed_pass

FEATURE_COLUMNS: dict[str, Any] = {
    "model": pl.String,
    "task": pl.String,
    "condition": pl.String,
    "feature": pl.String,
    "layer": pl.Int64,  # 1-based
    "head": pl.Int64,  # 1-based
    "value": pl.Float64,  # null where no example has the feature
    "n_examples": pl.Int64,
}
TOKEN_COLUMNS: dict[str, Any] = {
    "model": pl.String,
    "task": pl.String,
    "condition": pl.String,
    "relation": pl.String,
    "layer": pl.Int64,
    "head": pl.Int64,
    "value": pl.Float64,
    "n_examples": pl.Int64,
    "n_pairs": pl.Int64,
    "mean_distance": pl.Float64,
}
CLS_COLUMNS: dict[str, Any] = {
    "model": pl.String,
    "task": pl.String,
    "condition": pl.String,
    "feature": pl.String,
    "layer": pl.Int64,  # the final layer, 1-based
    "head": pl.Int64,
    "value": pl.Float64,  # max over the feature's pieces
    "share": pl.Float64,  # sum over the feature's pieces
    "n_examples": pl.Int64,
}


# ---------------------------------------------------------------------------------------------
# The observer
# ---------------------------------------------------------------------------------------------


@dataclass
class FeatureSums:
    """Sums over examples (float64, CPU) and the example counts they divide by."""

    n_layers: int
    n_heads: int
    feature_sum: np.ndarray  # (layers, features, heads)
    feature_count: np.ndarray  # (features,) examples that have the feature
    pair_sum: np.ndarray  # (relations, layers, heads)
    pair_count: np.ndarray  # (relations,) examples with at least one pair
    pair_total: np.ndarray  # (relations,) pairs
    distance_sum: np.ndarray  # (relations,)
    cls_max_sum: np.ndarray  # (features, heads), final layer
    cls_share_sum: np.ndarray  # (features, heads), final layer
    n_examples: int = 0

    @classmethod
    def zeros(cls, n_layers: int, n_heads: int) -> FeatureSums:
        f, r = len(FEATURES), len(RELATIONS)
        return cls(
            n_layers=n_layers,
            n_heads=n_heads,
            feature_sum=np.zeros((n_layers, f, n_heads)),
            feature_count=np.zeros(f, dtype=np.int64),
            pair_sum=np.zeros((r, n_layers, n_heads)),
            pair_count=np.zeros(r, dtype=np.int64),
            pair_total=np.zeros(r, dtype=np.int64),
            distance_sum=np.zeros(r),
            cls_max_sum=np.zeros((f, n_heads)),
            cls_share_sum=np.zeros((f, n_heads)),
        )


class FeatureObserver:
    """Engine observer: adds each layer's feature, pair and [CLS] scores of the batch set by `start`."""

    def __init__(self, n_layers: int, n_heads: int) -> None:
        self.sums = FeatureSums.zeros(n_layers, n_heads)
        self.marks = torch.zeros(0, len(FEATURES), 0, dtype=torch.bool)  # (batch, features, key)
        self.pairs: dict[str, PairInputs] = {}
        self.pooling: WordPooling | None = None
        self.word_is_real: torch.Tensor | None = None  # (batch, words)

    def start(
        self, marks: torch.Tensor, pairs: dict[str, PairInputs], pooling: WordPooling | None = None
    ) -> None:
        """Set the next batch's inputs (already on the model's device) and count its examples.

        Word level: `pooling` pools each layer's attention to words, and `marks` and `pairs`
        must already be on words (`word_inputs`).
        """
        if pooling is not None and marks.shape[-1] != pooling.to_words.shape[1]:
            raise ValueError(
                f"word-level marks have {marks.shape[-1]} positions, the pooling "
                f"{pooling.to_words.shape[1]} words: pool them with word_inputs first"
            )
        self.marks, self.pairs = marks, pairs
        self.pooling = pooling
        self.word_is_real = None if pooling is None else pooling.to_words.sum(dim=-1) > 0  # (batch, words)
        sums = self.sums
        sums.n_examples += marks.shape[0]
        sums.feature_count += marks.any(dim=-1).sum(dim=0).cpu().numpy()  # (features,)
        for r, relation in enumerate(RELATIONS):
            present = pairs[relation].present  # (batch, pairs)
            sums.pair_count[r] += int(present.any(dim=-1).sum())
            sums.pair_total[r] += int(present.sum())
            sums.distance_sum[r] += pairs[relation].distance_sum

    def __call__(self, layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> None:
        sums = self.sums
        if self.pooling is not None and self.word_is_real is not None:
            with torch.autocast(probs.device.type, enabled=False):  # pooling in full precision
                probs = self.pooling.pool(probs)  # (batch, heads, query word, key word)
            key_is_real = self.word_is_real  # (batch, words)
        probs = probs.float()  # (batch, heads, query, key)
        received = received_attention(probs, key_is_real)  # (batch, heads, key)
        values, _ = feature_max(received, self.marks)  # (batch, features, heads)
        sums.feature_sum[layer] += values.sum(dim=0).double().cpu().numpy()  # (features, heads)
        for r, relation in enumerate(RELATIONS):
            pairs = self.pairs[relation]
            per_pair = pair_attention(probs, pairs.query_weights, pairs.key_weights)  # (batch, heads, pairs)
            per_example, _ = example_max(per_pair, pairs.present)  # (batch, heads)
            sums.pair_sum[r, layer] += per_example.sum(dim=0).double().cpu().numpy()  # (heads,)
        if layer == sums.n_layers - 1:
            maxima, shares = cls_attention(
                probs, self.marks, FEATURES.index("cls")
            )  # (batch, features, heads)
            sums.cls_max_sum += maxima.sum(dim=0).double().cpu().numpy()  # (features, heads)
            sums.cls_share_sum += shares.sum(dim=0).double().cpu().numpy()  # (features, heads)


def collect_feature_attention(
    model: PreTrainedModel,
    examples: Sequence[AlignedExample],
    batch_size: int,
    pad_id: int,
    device: torch.device | str,
    on_batch: Callable[[int], object] | None = None,
    level: str = "piece",
) -> FeatureSums:
    """Run the examples through the model (length-sorted batches, dynamic padding) and reduce,
    over word pieces (`level` piece) or over words (`level` word, see the module docstring)."""
    if level not in LEVELS:
        raise ValueError(f"level is {level!r}; valid: {', '.join(LEVELS)}")
    where = torch.device(device)
    encoded = Encoded(
        input_ids=[e.input_ids for e in examples],
        token_type_ids=[e.token_type_ids for e in examples],
        labels=np.zeros(len(examples), dtype=np.int64),
        segments=[e.segments for e in examples],
    )
    observer = FeatureObserver(layer_count(model), head_count(model))

    def prepare(batch: Batch) -> None:
        rows, width = batch.rows.tolist(), batch.input_ids.shape[1]
        marks, pairs = batch_inputs(examples, rows, width)
        pooling = None
        if level == "word":
            pooling = batch_word_pooling(examples, rows, width)
            marks, pairs = word_inputs(marks, pairs, pooling)
            pooling = pooling.to(where)
        on_device = {
            relation: PairInputs(
                p.query_weights.to(where), p.key_weights.to(where), p.present.to(where), p.distance_sum
            )
            for relation, p in pairs.items()
        }
        observer.start(marks.to(where), on_device, pooling)

    batches = eval_batches(encoded, batch_size, pad_id)
    observed_pass(model, batches, where, [observer], prepare, None, on_batch)
    return observer.sums


# ---------------------------------------------------------------------------------------------
# Sums -> tidy tables
# ---------------------------------------------------------------------------------------------


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count, NaN where count is 0 (broadcast over trailing axes)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _nulls(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values.ravel()]


def feature_table(sums: FeatureSums, model: str, task: str, condition: str) -> pl.DataFrame:
    """One row per (feature, layer, head), sorted; `value` null where no example has the feature."""
    n_layers, n_features, n_heads = sums.feature_sum.shape
    mean = _mean(sums.feature_sum, sums.feature_count[None, :, None])  # (layers, features, heads)
    layer, feature, head = np.meshgrid(
        np.arange(n_layers), np.arange(n_features), np.arange(n_heads), indexing="ij"
    )  # (layers, features, heads) each
    table = pl.DataFrame(
        {
            "model": model,
            "task": task,
            "condition": condition,
            "feature": [FEATURES[f] for f in feature.ravel()],
            "layer": layer.ravel() + 1,
            "head": head.ravel() + 1,
            "value": _nulls(mean),
            "n_examples": sums.feature_count[feature.ravel()],
        },
        schema=FEATURE_COLUMNS,
    )
    return table.sort(["feature", "layer", "head"])


def token_table(sums: FeatureSums, model: str, task: str, condition: str) -> pl.DataFrame:
    """One row per (relation, layer, head), sorted; `value` null where no example has a pair."""
    n_relations, n_layers, n_heads = sums.pair_sum.shape
    mean = _mean(sums.pair_sum, sums.pair_count[:, None, None])  # (relations, layers, heads)
    distance = _mean(sums.distance_sum, sums.pair_total)  # (relations,)
    relation, layer, head = np.meshgrid(
        np.arange(n_relations), np.arange(n_layers), np.arange(n_heads), indexing="ij"
    )  # (relations, layers, heads) each
    table = pl.DataFrame(
        {
            "model": model,
            "task": task,
            "condition": condition,
            "relation": [RELATIONS[r] for r in relation.ravel()],
            "layer": layer.ravel() + 1,
            "head": head.ravel() + 1,
            "value": _nulls(mean),
            "n_examples": sums.pair_count[relation.ravel()],
            "n_pairs": sums.pair_total[relation.ravel()],
            "mean_distance": _nulls(distance[relation.ravel()]),
        },
        schema=TOKEN_COLUMNS,
    )
    return table.sort(["relation", "layer", "head"])


def cls_table(sums: FeatureSums, model: str, task: str, condition: str) -> pl.DataFrame:
    """One row per (feature, head) of the final layer, sorted."""
    n_features, n_heads = sums.cls_max_sum.shape
    count = sums.feature_count[:, None]  # (features, 1)
    feature, head = np.meshgrid(np.arange(n_features), np.arange(n_heads), indexing="ij")  # (f, heads)
    table = pl.DataFrame(
        {
            "model": model,
            "task": task,
            "condition": condition,
            "feature": [FEATURES[f] for f in feature.ravel()],
            "layer": sums.n_layers,
            "head": head.ravel() + 1,
            "value": _nulls(_mean(sums.cls_max_sum, count)),
            "share": _nulls(_mean(sums.cls_share_sum, count)),
            "n_examples": sums.feature_count[feature.ravel()],
        },
        schema=CLS_COLUMNS,
    )
    return table.sort(["feature", "head"])
