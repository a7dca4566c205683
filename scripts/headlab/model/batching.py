"""Tokenisation and batching with dynamic padding.

Evaluation batches are sorted by length so each batch pads only to its own longest example;
`Batch.rows` maps the rows back to the order of the input table. Training batches are
shuffled with a seeded generator and padded per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Encoded:
    """Token ids per example (no padding) and the example's label."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: np.ndarray  # (examples,) int64 class index or float32 score

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Batch:
    rows: np.ndarray  # (batch,) positions in the encoded table
    input_ids: torch.Tensor  # (batch, tokens)
    token_type_ids: torch.Tensor  # (batch, tokens)
    attention_mask: torch.Tensor  # (batch, tokens) 1 = real token, 0 = padding
    labels: torch.Tensor  # (batch,)

    def model_inputs(self, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids.to(device),
            "token_type_ids": self.token_type_ids.to(device),
            "attention_mask": self.attention_mask.to(device),
        }

    def repeated(self, times: int) -> Batch:
        """The batch stacked `times` times along the batch axis (variant-major)."""
        return Batch(
            rows=np.tile(self.rows, times),
            input_ids=self.input_ids.repeat(times, 1),
            token_type_ids=self.token_type_ids.repeat(times, 1),
            attention_mask=self.attention_mask.repeat(times, 1),
            labels=self.labels.repeat(times),
        )


def encode(tokenizer: PreTrainedTokenizerBase, table: pl.DataFrame, max_length: int) -> Encoded:
    """Tokenise the normalised task table (text_a, optional text_b, label)."""
    text_a = table["text_a"].to_list()
    text_b = table["text_b"].to_list() if table["text_b"].null_count() < table.height else None
    encoded = tokenizer(text_a, text_b, truncation=True, max_length=max_length, return_token_type_ids=True)
    label_dtype = np.float32 if table["label"].dtype.is_float() else np.int64
    return Encoded(
        input_ids=list(encoded["input_ids"]),
        token_type_ids=list(encoded["token_type_ids"]),
        labels=table["label"].to_numpy().astype(label_dtype),
    )


def collate(encoded: Encoded, rows: np.ndarray, pad_id: int) -> Batch:
    width = max(len(encoded.input_ids[r]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (batch, tokens)
    token_type_ids = torch.zeros((len(rows), width), dtype=torch.long)  # (batch, tokens)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (batch, tokens)
    for i, r in enumerate(rows):
        n = len(encoded.input_ids[r])
        input_ids[i, :n] = torch.tensor(encoded.input_ids[r])
        token_type_ids[i, :n] = torch.tensor(encoded.token_type_ids[r])
        attention_mask[i, :n] = 1
    return Batch(rows, input_ids, token_type_ids, attention_mask, torch.from_numpy(encoded.labels[rows]))


def eval_batches(encoded: Encoded, batch_size: int, pad_id: int) -> list[Batch]:
    """Length-sorted batches (stable sort, so equal lengths keep table order)."""
    lengths = np.array([len(ids) for ids in encoded.input_ids])
    order = np.argsort(lengths, kind="stable")
    return [collate(encoded, order[i : i + batch_size], pad_id) for i in range(0, len(order), batch_size)]


def train_batches(encoded: Encoded, batch_size: int, pad_id: int, seed: int, epoch: int) -> Iterator[Batch]:
    """Shuffled batches; the shuffle depends only on (seed, epoch)."""
    order = np.random.default_rng([seed, epoch]).permutation(len(encoded))
    for i in range(0, len(order), batch_size):
        yield collate(encoded, order[i : i + batch_size], pad_id)


def restore_order(chunks: Sequence[np.ndarray], rows: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Scatter per-batch results (batch, ...) back to table order (n, ...)."""
    first = chunks[0]
    out = np.empty((n, *first.shape[1:]), dtype=first.dtype)
    for chunk, r in zip(chunks, rows, strict=True):
        out[r] = chunk
    return out


def encoded_batches(
    tokenizer: PreTrainedTokenizerBase, table_path: str | Path, max_length: int, batch_size: int
) -> tuple[Encoded, list[Batch]]:
    """A Parquet table of examples encoded, and its evaluation batches (length-sorted, padded)."""
    encoded = encode(tokenizer, pl.read_parquet(table_path), max_length)
    return encoded, eval_batches(encoded, batch_size, tokenizer.pad_token_id)
