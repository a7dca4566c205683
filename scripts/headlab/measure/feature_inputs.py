"""What the feature observer needs of one batch: feature marks and relation pairs, on pieces or words.

`batch_inputs` lays the `headlab.data.linguistic.AlignedExample` marks and pairs of a batch out
on its padded word pieces; at word level `word_inputs` moves them onto the words of the batch's
`batch_word_pooling` (see `headlab.measure.feature_attention`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from headlab.data.linguistic import FEATURES, AlignedExample
from headlab.data.token_rules import RELATIONS
from headlab.measure.word_pooling import WordPooling, piece_words


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
