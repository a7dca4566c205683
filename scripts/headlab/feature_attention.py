"""Attention to linguistic features (Sec. 4.4, Figure 6) and token-to-token attention (Sec. 4.5, Figure 7).

Every statistic is reduced inside an engine observer as each layer's attention is computed;
no (query, key) map outlives its layer. Word pieces carry the features of `headlab.linguistic`.
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

**Word level** (``level="word"``, config ``attention.level``): as in `headlab.attention_stats`
(and with its `WordPooling`), the pieces are first pooled to words from the fast tokenizer's
``word_ids()`` ([CLS] and [SEP] are words of their own): each layer's map becomes
``P_word = M @ A @ S^T`` (attention *to* a word is the sum over its pieces, *from* a word the
mean over its pieces), a word carries a feature when any of its pieces does, and a pair's query
(key) word is every word holding a piece of the query (key) token: the weights are 1/n on the n
query words and 1 on the key words. The statistics above are then computed on ``P_word`` over
words (L is the number of words, "pieces" read "words"), and ``mean_distance`` is in words.

Sizes (layers, heads) come from the model's config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from transformers import PreTrainedModel

from headlab.attention_stats import LEVELS, WordPooling, piece_words
from headlab.batching import Encoded, eval_batches
from headlab.engine import Controls, head_count, layer_count
from headlab.inference import inference_session
from headlab.linguistic import FEATURES, RELATIONS, AlignedExample

VARIANTS = ("pretrained", "finetuned")
FEATURE_COLUMNS: dict[str, Any] = {
    "model": pl.String,
    "task": pl.String,
    "variant": pl.String,
    "feature": pl.String,
    "layer": pl.Int64,  # 1-based
    "head": pl.Int64,  # 1-based
    "value": pl.Float64,  # null where no example has the feature
    "n_examples": pl.Int64,
}
TOKEN_COLUMNS: dict[str, Any] = {
    "model": pl.String,
    "task": pl.String,
    "variant": pl.String,
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
    "variant": pl.String,
    "feature": pl.String,
    "layer": pl.Int64,  # the final layer, 1-based
    "head": pl.Int64,
    "value": pl.Float64,  # max over the feature's pieces
    "share": pl.Float64,  # sum over the feature's pieces
    "n_examples": pl.Int64,
}


# ---------------------------------------------------------------------------------------------
# Reductions (tested directly on hand-built attention)
# ---------------------------------------------------------------------------------------------


def received_attention(probs: torch.Tensor, key_is_real: torch.Tensor) -> torch.Tensor:
    """Attention each key receives from the real queries, divided by the real length.

    probs (batch, heads, query, key); key_is_real (batch, key). Returns (batch, heads, key).
    Padded query rows (which still hold a softmax over the real keys) are left out.
    """
    real = key_is_real.to(probs.dtype)  # (batch, key); queries and keys are the same tokens
    lengths = real.sum(dim=-1)  # (batch,)
    summed = torch.matmul(real[:, None, None, :], probs)[:, :, 0, :]  # (batch, heads, key)
    return summed / lengths[:, None, None]


def feature_max(values: torch.Tensor, marks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, feature and head, the maximum of `values` over the feature's pieces.

    values (batch, heads, key); marks (batch, features, key) bool. Returns the maxima
    (batch, features, heads), 0 where the example lacks the feature, and present (batch, features).
    """
    present = marks.any(dim=-1)  # (batch, features)
    masked = values[:, None, :, :].masked_fill(~marks[:, :, None, :], float("-inf"))  # (b, f, heads, key)
    maxima = masked.amax(dim=-1)  # (batch, features, heads)
    return torch.where(present[:, :, None], maxima, torch.zeros_like(maxima)), present


def pair_attention(
    probs: torch.Tensor, query_weights: torch.Tensor, key_weights: torch.Tensor
) -> torch.Tensor:
    """Attention from each pair's query word to its key word, per head.

    probs (batch, heads, query, key); query_weights (batch, pairs, query): 1/n on the n pieces
    of the query word; key_weights (batch, pairs, key): 1 on the key word's pieces.
    Returns (batch, heads, pairs): mean over query pieces of the sum over key pieces.
    """
    to_key_word = torch.einsum("bhqk,bpk->bhpq", probs, key_weights)  # (batch, heads, pairs, query)
    return torch.einsum("bhpq,bpq->bhp", to_key_word, query_weights)  # (batch, heads, pairs)


def example_max(pair_values: torch.Tensor, pair_present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example and head, the maximum over its pairs; 0 where it has none.

    pair_values (batch, heads, pairs); pair_present (batch, pairs) bool. Returns
    (batch, heads) and present (batch,).
    """
    present = pair_present.any(dim=-1)  # (batch,)
    masked = pair_values.masked_fill(~pair_present[:, None, :], float("-inf"))  # (batch, heads, pairs)
    maxima = masked.amax(dim=-1) if pair_values.shape[-1] else pair_values.sum(dim=-1)  # (batch, heads)
    return torch.where(present[:, None], maxima, torch.zeros_like(maxima)), present


def cls_attention(
    probs: torch.Tensor, marks: torch.Tensor, cls_index: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The [CLS] query row's attention to each feature: (max, sum) over the feature's pieces.

    probs (batch, heads, query, key); marks (batch, features, key) bool; `cls_index` is the
    feature row of [CLS] in `marks` (its query row is the first piece marked [CLS]).
    Returns two (batch, features, heads) tensors, 0 where the example lacks the feature.
    """
    batch = probs.shape[0]
    cls_position = marks[:, cls_index].float().argmax(dim=-1)  # (batch,)
    row = probs[torch.arange(batch, device=probs.device), :, cls_position, :]  # (batch, heads, key)
    maxima, _ = feature_max(row, marks)  # (batch, features, heads)
    shares = torch.einsum("bhk,bfk->bfh", row, marks.to(row.dtype))  # (batch, features, heads)
    return maxima, shares


# ---------------------------------------------------------------------------------------------
# The observer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairInputs:
    """One relation's pairs for a batch, padded to the most pairs of any example."""

    query_weights: torch.Tensor  # (batch, pairs, query)
    key_weights: torch.Tensor  # (batch, pairs, key)
    present: torch.Tensor  # (batch, pairs) bool
    distance_sum: float  # sum over the batch's pairs of |first query piece - first key piece|


def batch_inputs(
    examples: Sequence[AlignedExample], rows: Sequence[int], width: int
) -> tuple[torch.Tensor, dict[str, PairInputs]]:
    """Feature marks (batch, features, width) and each relation's `PairInputs` for batch `rows`."""
    marks = torch.zeros(len(rows), len(FEATURES), width, dtype=torch.bool)  # (batch, features, key)
    for i, r in enumerate(rows):
        example_marks = examples[r].marks  # (features, pieces)
        marks[i, :, : example_marks.shape[1]] = torch.from_numpy(example_marks)
    pairs: dict[str, PairInputs] = {}
    for relation in RELATIONS:
        most = max([len(examples[r].pairs[relation]) for r in rows] + [1])
        query_weights = torch.zeros(len(rows), most, width)  # (batch, pairs, query)
        key_weights = torch.zeros(len(rows), most, width)  # (batch, pairs, key)
        present = torch.zeros(len(rows), most, dtype=torch.bool)  # (batch, pairs)
        distance = 0.0
        for i, r in enumerate(rows):
            for p, ((q0, q1), (k0, k1)) in enumerate(examples[r].pairs[relation]):
                query_weights[i, p, q0:q1] = 1.0 / (q1 - q0)
                key_weights[i, p, k0:k1] = 1.0
                present[i, p] = True
                distance += abs(q0 - k0)
        pairs[relation] = PairInputs(query_weights, key_weights, present, distance)
    return marks, pairs


def batch_word_pooling(examples: Sequence[AlignedExample], rows: Sequence[int], width: int) -> WordPooling:
    """The `WordPooling` (pieces -> words) of batch `rows`, padded to `width` pieces (CPU)."""
    index = torch.full((len(rows), width), -1, dtype=torch.long)  # (batch, pieces): -1 on padding
    for i, r in enumerate(rows):
        words = piece_words(examples[r].word_ids, examples[r].sequence_ids)  # (pieces,)
        index[i, : len(words)] = torch.as_tensor(words, dtype=torch.long)
    return WordPooling.from_word_index(index)


def _first(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first True along the last axis (0 where there is none)."""
    return mask.float().argmax(dim=-1)


def word_inputs(
    marks: torch.Tensor, pairs: dict[str, PairInputs], pooling: WordPooling
) -> tuple[torch.Tensor, dict[str, PairInputs]]:
    """Piece-level `batch_inputs` pooled to words: a word has a feature when any of its pieces
    has; a pair's query (key) words are those holding any of its query (key) pieces, weighted
    1/n (1); `distance_sum` is in words, between the first words of the two sides."""
    to_words = pooling.to_words  # (batch, words, pieces)

    def touched(piece_mask: torch.Tensor) -> torch.Tensor:  # (batch, n, pieces) -> (batch, n, words)
        return torch.einsum("bnk,bwk->bnw", piece_mask.float(), to_words) > 0

    word_marks = touched(marks)  # (batch, features, words)
    pooled: dict[str, PairInputs] = {}
    for relation, p in pairs.items():
        query = touched(p.query_weights > 0) & p.present[:, :, None]  # (batch, pairs, words)
        key = touched(p.key_weights > 0) & p.present[:, :, None]  # (batch, pairs, words)
        query_weights = query.float() / query.sum(dim=-1, keepdim=True).clamp(min=1)  # 1/n per word
        distance = (_first(query) - _first(key)).abs() * p.present  # (batch, pairs)
        pooled[relation] = PairInputs(query_weights, key.float(), p.present, float(distance.sum()))
    return word_marks, pooled


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
    )
    observer = FeatureObserver(layer_count(model), head_count(model))
    controls = Controls(observers=[observer])
    with inference_session(model, where):
        for batch in eval_batches(encoded, batch_size, pad_id):
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
            model(**batch.model_inputs(where), headlab=controls)
            if on_batch is not None:
                on_batch(1)
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


def feature_table(sums: FeatureSums, model: str, task: str, variant: str) -> pl.DataFrame:
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
            "variant": variant,
            "feature": [FEATURES[f] for f in feature.ravel()],
            "layer": layer.ravel() + 1,
            "head": head.ravel() + 1,
            "value": _nulls(mean),
            "n_examples": sums.feature_count[feature.ravel()],
        },
        schema=FEATURE_COLUMNS,
    )
    return table.sort(["feature", "layer", "head"])


def token_table(sums: FeatureSums, model: str, task: str, variant: str) -> pl.DataFrame:
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
            "variant": variant,
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


def cls_table(sums: FeatureSums, model: str, task: str, variant: str) -> pl.DataFrame:
    """One row per (feature, head) of the final layer, sorted."""
    n_features, n_heads = sums.cls_max_sum.shape
    count = sums.feature_count[:, None]  # (features, 1)
    feature, head = np.meshgrid(np.arange(n_features), np.arange(n_heads), indexing="ij")  # (f, heads)
    table = pl.DataFrame(
        {
            "model": model,
            "task": task,
            "variant": variant,
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
