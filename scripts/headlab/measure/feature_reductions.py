"""Reductions of one layer's attention for the feature statistics (Sec. 4.4, 4.5): pure tensor functions.

Definitions in `headlab.measure.feature_attention`; each function is tested directly on
hand-built attention.
"""

from __future__ import annotations

import torch


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
