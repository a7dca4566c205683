"""Tokenisation and batching with dynamic padding.

Evaluation batches are sorted by length so each batch pads only to its own longest example;
`Batch.rows` maps the rows back to the order of the input table. Training batches depend only
on (seed, epoch) and are padded per batch, in one of two ways (`train_order`):

- shuffled: a seeded permutation cut into batches (``length_chunk`` None);
- length-grouped: the same permutation cut into chunks of ``length_chunk`` batches, each chunk
  sorted by length (stable) and cut into batches, then the batches shuffled. Each epoch still
  sees every example once, in ceil(n / batch_size) batches (only the last chunk's last batch
  can be short), and the batches mix examples from all over the set; but a batch's examples
  have similar lengths, so it pads far less.

The real-token share of a set of batches is sum(lengths) / sum(batch size x longest length):
the fraction of the padded (batch, tokens) grid that holds real tokens (`real_token_share`).

Two per-piece sequences, kept apart: ``token_type_ids`` are the model's input, what the tokenizer
returns (zeros when it returns none, e.g. RoBERTa's); ``segments`` are the analyses' sentence of
each piece, from the fast tokenizer's ``sequence_ids`` (`headlab.data.segments`), None for a slow
tokenizer (the analyses then refuse; fine-tuning and the ablation passes do not need them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from transformers import BatchEncoding, PreTrainedTokenizerBase

from headlab.data.segments import encoding_segments, model_token_type_ids


@dataclass(frozen=True)
class Encoded:
    """Token ids per example (no padding), the example's label and the pieces' segments."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]  # the model's input (zeros where the tokenizer has none)
    labels: np.ndarray  # (examples,) int64 class index or float32 score
    segments: list[list[int]] | None = None  # analysis segments (headlab.data.segments); None: unknown

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass(frozen=True)
class Batch:
    rows: np.ndarray  # (batch,) positions in the encoded table
    input_ids: torch.Tensor  # (batch, tokens)
    token_type_ids: torch.Tensor  # (batch, tokens)
    attention_mask: torch.Tensor  # (batch, tokens) 1 = real token, 0 = padding
    labels: torch.Tensor  # (batch,)
    segments: torch.Tensor | None = None  # (batch, tokens) analysis segments, 0 on padding; None: unknown

    def model_inputs(
        self, device: torch.device | str = "cpu", token_type_ids: bool = True
    ) -> dict[str, torch.Tensor]:
        """The forward's inputs; without token_type_ids for families that take none
        (`headlab.model.inference.inputs_for` decides)."""
        inputs = {"input_ids": self.input_ids.to(device), "attention_mask": self.attention_mask.to(device)}
        if token_type_ids:
            inputs["token_type_ids"] = self.token_type_ids.to(device)
        return inputs

    def repeated(self, times: int) -> Batch:
        """The batch stacked `times` times along the batch axis (variant-major)."""
        return Batch(
            rows=np.tile(self.rows, times),
            input_ids=self.input_ids.repeat(times, 1),
            token_type_ids=self.token_type_ids.repeat(times, 1),
            attention_mask=self.attention_mask.repeat(times, 1),
            labels=self.labels.repeat(times),
            segments=None if self.segments is None else self.segments.repeat(times, 1),
        )


def table_texts(table: pl.DataFrame) -> tuple[list[str], list[str] | None]:
    """text_a and text_b (None when the table has no second sentence) of a normalised task table."""
    text_a = table["text_a"].to_list()
    text_b = table["text_b"].to_list() if table["text_b"].null_count() < table.height else None
    return text_a, text_b


def tokenize_texts(
    tokenizer: PreTrainedTokenizerBase,
    text_a: list[str],
    text_b: list[str] | None,
    max_length: int,
    offsets: bool = False,
) -> BatchEncoding:
    """The one tokenizer call of every pass (`encode`, the attention statistics): truncated to
    `max_length`, with token types and, when `offsets` (fast tokenizers only), character offsets."""
    extra = {"return_offsets_mapping": True} if offsets else {}
    return tokenizer(
        text_a, text_b, truncation=True, max_length=max_length, return_token_type_ids=True, **extra
    )


def encoded_of(encoding: BatchEncoding, labels: np.ndarray) -> Encoded:
    """`Encoded` of a batched encoding: the model's token types and, from a fast tokenizer, segments."""
    return Encoded(
        input_ids=[list(ids) for ids in encoding["input_ids"]],
        token_type_ids=model_token_type_ids(encoding),
        labels=labels,
        segments=encoding_segments(encoding) if encoding.is_fast else None,
    )


def encode(tokenizer: PreTrainedTokenizerBase, table: pl.DataFrame, max_length: int) -> Encoded:
    """Tokenise the normalised task table (text_a, optional text_b, label)."""
    text_a, text_b = table_texts(table)
    encoded = tokenize_texts(tokenizer, text_a, text_b, max_length)
    label_dtype = np.float32 if table["label"].dtype.is_float() else np.int64
    return encoded_of(encoded, table["label"].to_numpy().astype(label_dtype))


def collate(encoded: Encoded, rows: np.ndarray, pad_id: int) -> Batch:
    width = max(len(encoded.input_ids[r]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (batch, tokens)
    token_type_ids = torch.zeros((len(rows), width), dtype=torch.long)  # (batch, tokens)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # (batch, tokens)
    segments = None if encoded.segments is None else torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(encoded.input_ids[r])
        input_ids[i, :n] = torch.tensor(encoded.input_ids[r])
        token_type_ids[i, :n] = torch.tensor(encoded.token_type_ids[r])
        attention_mask[i, :n] = 1
        if segments is not None and encoded.segments is not None:
            segments[i, :n] = torch.tensor(encoded.segments[r])
    labels = torch.from_numpy(encoded.labels[rows])
    return Batch(rows, input_ids, token_type_ids, attention_mask, labels, segments)


def example_lengths(encoded: Encoded) -> np.ndarray:
    """Pieces per example (no padding), (examples,) int64."""
    return np.array([len(ids) for ids in encoded.input_ids], dtype=np.int64)


def eval_batches(encoded: Encoded, batch_size: int, pad_id: int) -> list[Batch]:
    """Length-sorted batches (stable sort, so equal lengths keep table order)."""
    order = np.argsort(example_lengths(encoded), kind="stable")  # (examples,) shortest first
    return [collate(encoded, order[i : i + batch_size], pad_id) for i in range(0, len(order), batch_size)]


def train_order(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, length_chunk: int | None
) -> list[np.ndarray]:
    """The rows of each training batch of one epoch, depending only on (seed, epoch) (module
    docstring): shuffled when `length_chunk` is None, else grouped by length in chunks of
    `length_chunk` batches. `lengths` (examples,) are the examples' piece counts."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if length_chunk is not None and length_chunk < 1:
        raise ValueError(f"length_chunk (finetune.length_chunk) must be at least 1 batch, not {length_chunk}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))  # (examples,) today's shuffle, also without grouping
    if length_chunk is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    chunk = batch_size * length_chunk
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]  # (<= chunk,) rows in shuffled order
        part = part[np.argsort(lengths[part], kind="stable")]  # by length; ties keep the shuffle
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def real_token_share(lengths: np.ndarray, batches: Sequence[np.ndarray]) -> float:
    """sum(real tokens) / sum(rows x longest length) over `batches` (rows of `lengths`)."""
    real = sum(int(lengths[rows].sum()) for rows in batches)
    padded = sum(len(rows) * int(lengths[rows].max()) for rows in batches)
    if padded == 0:
        raise ValueError("no tokens in the batches: the real-token share is undefined")
    return real / padded


def train_batches(
    encoded: Encoded, batch_size: int, pad_id: int, seed: int, epoch: int, length_chunk: int | None
) -> Iterator[Batch]:
    """One epoch's training batches, padded per batch (`train_order`: shuffled when
    `length_chunk` is None, else grouped by length); they depend only on (seed, epoch)."""
    for rows in train_order(example_lengths(encoded), batch_size, seed, epoch, length_chunk):
        yield collate(encoded, rows, pad_id)


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


@dataclass(frozen=True)
class Sample:
    """A seeded sample of a split table, encoded in evaluation batches."""

    batches: list[Batch]
    rows: np.ndarray  # (examples,) the split table's `row` of each example
    labels: np.ndarray  # (examples,) gold


def sample_batches(
    tokenizer: PreTrainedTokenizerBase,
    table_path: str | Path,
    cap: int | None,
    seed: int,
    max_length: int,
    batch_size: int,
) -> Sample:
    """At most `cap` examples of a split Parquet (seeded, `headlab.data.glue.read_sample`; None:
    all), encoded in length-sorted evaluation batches."""
    from headlab.data.glue import read_sample

    table = read_sample(table_path, cap, seed)
    encoded = encode(tokenizer, table, max_length)
    batches = eval_batches(encoded, batch_size, tokenizer.pad_token_id)
    return Sample(batches, table["row"].to_numpy(), encoded.labels)
