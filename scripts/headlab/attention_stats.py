"""Where each head's attention goes (Sec. 4.1, 4.4, 4.5): per example, layer and head, a few numbers.

For every example, layer and head the attention map A (query × key, rows summing to 1 over the
real keys) is reduced on the fly, inside an engine observer, to the statistics below. Each is a
**mean over the example's real query tokens** (padding rows are never counted) of a per-query
number; for the key-category statistics that number is the attention mass
``sum_{k in category} A[i, k]`` the query i puts on the category:

==================  ==============================================================================
stat                per-query number (query i), then the mean over real queries
==================  ==============================================================================
``cls``             mass on [CLS] (the tokenizer's ``cls_token``; position 0 in BERT)
``sep``             mass on all [SEP] tokens
``sep_first``       mass on the first [SEP] (the one ending segment A)
``sep_second``      mass on the final [SEP] of a pair; NaN for single sentences (one [SEP])
``punct``           mass on punctuation tokens: tokens (per the tokenizer's token strings) made
                    only of Unicode punctuation characters (category P*: ``. , ! ? ' " - ( ) #``;
                    symbols such as ``$ + = `` are not punctuation); never [CLS]/[SEP]
``self``            A[i, i]
``prev``            A[i, i-1]; the mean runs over real queries that have a previous token (i ≥ 1)
``next``            A[i, i+1]; the mean runs over real queries whose next token is real
``within_segment``  mass on the *content* tokens (neither [CLS] nor [SEP]) whose token_type_id
                    equals the query's (the query's own sentence: the paper's "Block" pattern)
``across_segment``  mass on the content tokens of the other segment; NaN for single sentences
``entropy``         entropy of the row in nats, ``-sum_k A[i,k] log A[i,k]`` over real keys
==================  ==============================================================================

[CLS] and [SEP] are left out of the segment statistics because they have their own, so for
every real query ``cls + sep + within_segment + across_segment = 1`` (a pair) and
``cls + sep + within_segment = 1`` (a single sentence); queries are all real tokens, [CLS]
and [SEP] included (their segment is their token_type_id). A pair is an example with at least
two [SEP] tokens. NaN marks a statistic that does not exist for the example, never a failure.

**Word level** (``level="word"``): word pieces are first pooled to words with the fast
tokenizer's ``word_ids()``; [CLS] and [SEP] are words of their own, and the two sentences of a
pair number their words apart. With the pooling matrices ``S`` (batch, words, pieces), 1 where
a piece belongs to a word (attention *to* a word is the sum over its pieces), and
``M = S / pieces per word`` (attention *from* a word is the mean over its pieces)::

    P_word = M @ A @ S^T          # (batch, heads, words, words), rows still sum to 1

and the statistics are those above computed on ``P_word`` with word categories (a word is
punctuation when all its pieces are; prev/next/self refer to words).

The reduction runs on the device, batched over examples and heads: one matrix product of the
map with a (key, category) matrix gives every key-category mass at once, the diagonals give
self/prev/next, and masked query weights give the means. Only (batch, layers, heads, stats)
leaves the observer; no attention map is kept.

The written table (`STATS_SCHEMA`) is long/tidy, one row per (example, layer, head, stat),
sorted by ``example`` (the dev Parquet's ``row``), ``layer``, ``head``, ``stat`` (stats in
alphabetical order, the order of `STATS`); rows with NaN values are kept, so each example has
layers × heads × len(STATS) rows. It is written in row groups of a few examples (memory stays
flat in the number of examples), to a temporary name renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from headlab.batching import Batch, Encoded, eval_batches
from headlab.engine import Controls, head_count, layer_count
from headlab.inference import inference_session
from headlab.parquet_io import METADATA_KEY, provenance, remove_stale_siblings

# Alphabetical: the order of the `stat` column in the sorted table and of the last axis of arrays.
STATS = (
    "across_segment",
    "cls",
    "entropy",
    "next",
    "prev",
    "punct",
    "self",
    "sep",
    "sep_first",
    "sep_second",
    "within_segment",
)
LEVELS = ("piece", "word")
VARIANTS = ("pretrained", "finetuned")
STATS_SCHEMA = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("example", pa.int64(), nullable=False),
        pa.field("layer", pa.int32(), nullable=False),
        pa.field("head", pa.int32(), nullable=False),
        pa.field("stat", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)
EXAMPLES_PER_ROW_GROUP = 64

# Columns of the (batch, key, category) matrix: these, then one "content of segment s" per segment.
KEY_CATEGORIES = ("cls", "sep", "sep_first", "sep_second", "punct")
_COLUMN = {name: i for i, name in enumerate(KEY_CATEGORIES)}
_STAT = {name: i for i, name in enumerate(STATS)}
_PAIR_ONLY = [_STAT["sep_second"], _STAT["across_segment"]]


def is_punctuation(token: str) -> bool:
    """True when every character of `token` is Unicode punctuation (general category P*)."""
    return bool(token) and all(unicodedata.category(char).startswith("P") for char in token)


# ---------------------------------------------------------------------------------------------
# Token categories and word pooling of one batch
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCategories:
    """Per-position masks of one batch, on the device of the attention maps (pieces or words)."""

    is_real: torch.Tensor  # (batch, tokens) bool
    is_cls: torch.Tensor  # (batch, tokens) bool
    is_sep: torch.Tensor  # (batch, tokens) bool
    sep_first: torch.Tensor  # (batch, tokens) bool: the first [SEP]
    sep_second: torch.Tensor  # (batch, tokens) bool: the last [SEP] of a pair
    is_punct: torch.Tensor  # (batch, tokens) bool
    segment: torch.Tensor  # (batch, tokens) long: token_type_id
    is_pair: torch.Tensor  # (batch,) bool: at least two [SEP]
    n_segments: int  # largest segment id + 1 (at least 1)

    @classmethod
    def from_masks(
        cls,
        is_real: torch.Tensor,
        is_cls: torch.Tensor,
        is_sep: torch.Tensor,
        is_punct: torch.Tensor,
        segment: torch.Tensor,
    ) -> TokenCategories:
        """Categories from (batch, tokens) masks; the [SEP] roles follow from their order."""
        is_real = is_real.bool()
        is_cls, is_sep = is_cls.bool() & is_real, is_sep.bool() & is_real
        rank = is_sep.long().cumsum(dim=-1)  # (batch, tokens): [SEP]s up to and including here
        n_sep = is_sep.sum(dim=-1, keepdim=True)  # (batch, 1)
        is_pair = n_sep[:, 0] >= 2  # (batch,)
        segment = segment.long() * is_real  # (batch, tokens), 0 on padding
        return cls(
            is_real=is_real,
            is_cls=is_cls,
            is_sep=is_sep,
            sep_first=is_sep & (rank == 1),
            sep_second=is_sep & (rank == n_sep) & is_pair[:, None],
            is_punct=is_punct.bool() & is_real & ~is_cls & ~is_sep,
            segment=segment,
            is_pair=is_pair,
            n_segments=int(segment.max()) + 1 if segment.numel() else 1,
        )

    @classmethod
    def from_ids(
        cls,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        is_punct: torch.Tensor,
        cls_id: int,
        sep_id: int,
    ) -> TokenCategories:
        """Categories of a batch of word pieces (all (batch, tokens))."""
        return cls.from_masks(
            attention_mask, input_ids == cls_id, input_ids == sep_id, is_punct, token_type_ids
        )

    def to(self, device: torch.device | str) -> TokenCategories:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()}
        return TokenCategories(**moved)


@dataclass(frozen=True)
class WordPooling:
    """Pooling matrices of one batch: pieces -> words (see the module docstring)."""

    to_words: torch.Tensor  # (batch, words, pieces) 1 where the piece belongs to the word: sums
    from_words: torch.Tensor  # (batch, words, pieces) to_words / pieces per word: means

    @classmethod
    def from_word_index(cls, word_index: torch.Tensor) -> WordPooling:
        """`word_index` (batch, pieces) long: the word of each piece (0-based), -1 on padding."""
        n_words = int(word_index.max()) + 1 if word_index.numel() else 0
        words = torch.arange(n_words, device=word_index.device)  # (words,)
        to_words = (word_index[:, None, :] == words[None, :, None]).float()  # (batch, words, pieces)
        counts = to_words.sum(dim=-1, keepdim=True)  # (batch, words, 1)
        return cls(to_words, to_words / counts.clamp(min=1))

    def pool(self, probs: torch.Tensor) -> torch.Tensor:
        """P_word = from_words @ probs @ to_words^T: maps (batch, heads, pieces, pieces) to words."""
        p = probs.float()  # (batch, heads, pieces, pieces)
        batch, heads, pieces, _ = p.shape
        words = self.to_words.shape[1]
        # Two batched products over examples (heads folded into the rows): sums over key pieces,
        # then means over query pieces.
        rows = p.reshape(batch, heads * pieces, pieces)  # (batch, heads * query piece, key piece)
        to_words = torch.bmm(rows, self.to_words.transpose(1, 2))  # (batch, heads * query piece, key word)
        by_query = to_words.view(batch, heads, pieces, words)  # (batch, heads, query piece, key word)
        by_query = by_query.transpose(1, 2)  # (batch, query piece, heads, key word)
        flat = by_query.reshape(batch, pieces, heads * words)  # (batch, query piece, heads * key word)
        pooled = torch.bmm(self.from_words, flat)  # (batch, query word, heads * key word)
        pooled = pooled.view(batch, words, heads, words)  # (batch, query word, heads, key word)
        return pooled.transpose(1, 2).contiguous()  # (batch, heads, query word, key word)

    def categories(self, pieces: TokenCategories) -> TokenCategories:
        """The word-level categories: a word is [CLS]/[SEP]/... when its pieces are (punct: all of them)."""
        counts = self.to_words.sum(dim=-1)  # (batch, words)

        def pieces_in_word(mask: torch.Tensor) -> torch.Tensor:
            return torch.matmul(self.to_words, mask.float()[:, :, None])[..., 0]  # (batch, words)

        is_real = counts > 0  # (batch, words)
        segment = (pieces_in_word(pieces.segment) / counts.clamp(min=1)).round().long()  # (batch, words)
        return TokenCategories.from_masks(
            is_real=is_real,
            is_cls=pieces_in_word(pieces.is_cls) > 0,
            is_sep=pieces_in_word(pieces.is_sep) > 0,
            is_punct=is_real & (pieces_in_word(pieces.is_punct) == counts),
            segment=segment,
        )

    def to(self, device: torch.device | str) -> WordPooling:
        return WordPooling(self.to_words.to(device), self.from_words.to(device))


def piece_words(word_ids: list[int | None], sequence_ids: list[int | None]) -> list[int]:
    """Word number (0-based, in order) of every piece: a new word starts at each special token
    (word id None) and wherever (sequence id, word id) changes, so the two sentences of a pair
    number apart and [CLS]/[SEP] are words of their own."""
    out: list[int] = []
    previous: tuple[int | None, int] | None = None
    number = -1
    for word, sequence in zip(word_ids, sequence_ids, strict=True):
        key = None if word is None else (sequence, word)
        if key is None or key != previous:
            number += 1
        out.append(number)
        previous = key
    return out


# ---------------------------------------------------------------------------------------------
# The reduction (tested directly on hand-built attention)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reduction:
    """What the statistics need of one batch's categories, prepared once and reused per layer."""

    keys: torch.Tensor  # (batch, key, categories) float: KEY_CATEGORIES, then content per segment
    real_keys: torch.Tensor  # (batch, key, 1) float
    segment: torch.Tensor  # (batch, query) long
    weights: torch.Tensor  # (batch, query, stats) float: which queries each stat averages over
    is_pair: torch.Tensor  # (batch,) bool

    @classmethod
    def of(cls, categories: TokenCategories) -> Reduction:
        c = categories
        content = c.is_real & ~c.is_cls & ~c.is_sep  # (batch, key)
        segments = torch.arange(c.n_segments, device=c.segment.device)  # (segments,)
        per_segment = content[:, :, None] & (c.segment[:, :, None] == segments)  # (batch, key, segments)
        fixed = torch.stack([c.is_cls, c.is_sep, c.sep_first, c.sep_second, c.is_punct], dim=-1)
        keys = torch.cat([fixed, per_segment], dim=-1).float()  # (batch, key, categories)
        real = c.is_real.float()  # (batch, query)
        has_prev = F.pad(real[:, :-1], (1, 0)) * real  # (batch, query): query i-1 is real
        has_next = F.pad(real[:, 1:], (0, 1)) * real  # (batch, query): query i+1 is real
        weights = real[:, :, None].repeat(1, 1, len(STATS))  # (batch, query, stats)
        weights[:, :, _STAT["prev"]] = has_prev
        weights[:, :, _STAT["next"]] = has_next
        return cls(keys, real[:, :, None], c.segment, weights, c.is_pair)


def reduce_attention(probs: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """The `STATS` of each example and head: (batch, heads, query, key) -> (batch, heads, stats)."""
    p = probs.float()  # (batch, heads, query, key)
    batch, heads, queries, keys = p.shape
    rows = p.reshape(batch, heads * queries, keys)  # (batch, heads * query, key): one bmm over examples
    mass = torch.bmm(rows, reduction.keys).view(
        batch, heads, queries, -1
    )  # (batch, heads, query, categories)
    seg_mass = mass[..., len(KEY_CATEGORIES) :]  # (batch, heads, query, segments)
    own = reduction.segment[:, None, :, None].expand(batch, heads, queries, 1)  # (batch, heads, query, 1)
    within = seg_mass.gather(-1, own)[..., 0]  # (batch, heads, query)
    entropy = torch.bmm(torch.special.entr(rows), reduction.real_keys)  # (batch, heads * query, 1)
    per_query = {
        "across_segment": seg_mass.sum(dim=-1) - within,
        "cls": mass[..., _COLUMN["cls"]],
        "entropy": entropy.view(batch, heads, queries),
        "next": F.pad(torch.diagonal(p, offset=1, dim1=-2, dim2=-1), (0, 1)),  # A[i, i+1]
        "prev": F.pad(torch.diagonal(p, offset=-1, dim1=-2, dim2=-1), (1, 0)),  # A[i, i-1]
        "punct": mass[..., _COLUMN["punct"]],
        "self": torch.diagonal(p, dim1=-2, dim2=-1),
        "sep": mass[..., _COLUMN["sep"]],
        "sep_first": mass[..., _COLUMN["sep_first"]],
        "sep_second": mass[..., _COLUMN["sep_second"]],
        "within_segment": within,
    }
    stacked = torch.stack([per_query[name] for name in STATS], dim=-1)  # (batch, heads, query, stats)
    total = (stacked * reduction.weights[:, None]).sum(dim=2)  # (batch, heads, stats)
    means = total / reduction.weights.sum(dim=1)[:, None, :]  # (batch, heads, stats); 0/0 = NaN
    means[:, :, _PAIR_ONLY] = torch.where(
        reduction.is_pair[:, None, None], means[:, :, _PAIR_ONLY], float("nan")
    )  # (batch, heads, 2)
    return means


def attention_statistics(probs: torch.Tensor, categories: TokenCategories) -> torch.Tensor:
    """`reduce_attention` with the categories prepared on the spot: (batch, heads, stats)."""
    return reduce_attention(probs, Reduction.of(categories))


class AttentionStatsObserver:
    """Engine observer filling (batch, layers, heads, stats) for the batch set by `start`."""

    def __init__(self, n_layers: int, n_heads: int) -> None:
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.reduction: Reduction | None = None
        self.pooling: WordPooling | None = None
        self.values = torch.zeros(0, n_layers, n_heads, len(STATS))  # (batch, layers, heads, stats)

    def start(self, categories: TokenCategories, pooling: WordPooling | None = None) -> None:
        """Piece categories of the next batch and, for word-level statistics, its pooling."""
        if pooling is not None:
            categories = pooling.categories(categories)
        self.reduction = Reduction.of(categories)
        self.pooling = pooling
        shape = (categories.is_real.shape[0], self.n_layers, self.n_heads, len(STATS))
        self.values = torch.full(shape, float("nan"), device=categories.is_real.device)

    def __call__(self, layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> None:
        if self.reduction is None:
            raise RuntimeError("AttentionStatsObserver.start was not called for this batch")
        with torch.autocast(probs.device.type, enabled=False):  # statistics in full precision
            maps = probs if self.pooling is None else self.pooling.pool(probs)  # (batch, heads, q, k)
            self.values[:, layer] = reduce_attention(maps, self.reduction)  # (batch, heads, stats)

    def result(self) -> np.ndarray:
        """The batch's statistics (batch, layers, heads, stats) as float64."""
        return self.values.double().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# A table of examples -> statistics per example
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenTable:
    """Tokenised examples with what the categories need (lists per example, no padding)."""

    encoded: Encoded
    is_punct: list[list[bool]]
    words: list[list[int]] | None  # word number of each piece; None unless word level
    cls_id: int
    sep_id: int


def tokenize_table(
    tokenizer: PreTrainedTokenizerBase, table: pl.DataFrame, max_length: int, with_words: bool = False
) -> TokenTable:
    """Tokenise text_a (and text_b) exactly as `headlab.batching.encode` does, keeping token
    strings (for punctuation) and, with `with_words`, the pieces' words (fast tokenizers only)."""
    if with_words and not tokenizer.is_fast:
        raise ValueError("word-level statistics need a fast tokenizer (word_ids); this one is not")
    text_a = table["text_a"].to_list()
    text_b = table["text_b"].to_list() if table["text_b"].null_count() < table.height else None
    encoded = tokenizer(text_a, text_b, truncation=True, max_length=max_length, return_token_type_ids=True)
    ids = list(encoded["input_ids"])
    punct_ids: dict[int, bool] = {}
    is_punct = []
    for example in ids:
        for token_id in example:
            if token_id not in punct_ids:
                punct_ids[token_id] = is_punctuation(tokenizer.convert_ids_to_tokens(token_id))
        is_punct.append([punct_ids[token_id] for token_id in example])
    words = None
    if with_words:
        words = [piece_words(encoded.word_ids(i), encoded.sequence_ids(i)) for i in range(len(ids))]
    return TokenTable(
        encoded=Encoded(ids, list(encoded["token_type_ids"]), np.zeros(len(ids), dtype=np.int64)),
        is_punct=is_punct,
        words=words,
        cls_id=int(tokenizer.cls_token_id),
        sep_id=int(tokenizer.sep_token_id),
    )


def _padded(rows: list[list[int]], width: int, fill: int) -> torch.Tensor:
    """(batch, width) long: each row's values, then `fill`."""
    out = torch.full((len(rows), width), fill, dtype=torch.long)
    for i, values in enumerate(rows):
        out[i, : len(values)] = torch.as_tensor(values, dtype=out.dtype)
    return out


def batch_categories(tokens: TokenTable, batch: Batch) -> TokenCategories:
    """The piece categories of one batch (CPU)."""
    width = batch.input_ids.shape[1]
    punct = _padded([[int(p) for p in tokens.is_punct[r]] for r in batch.rows], width, 0)  # (batch, tokens)
    return TokenCategories.from_ids(
        batch.input_ids, batch.token_type_ids, batch.attention_mask, punct, tokens.cls_id, tokens.sep_id
    )


def batch_pooling(tokens: TokenTable, batch: Batch) -> WordPooling:
    """The word pooling of one batch (CPU)."""
    if tokens.words is None:
        raise ValueError("the token table has no words: tokenize_table(..., with_words=True)")
    width = batch.input_ids.shape[1]
    index = _padded([tokens.words[r] for r in batch.rows], width, -1)  # (batch, tokens)
    return WordPooling.from_word_index(index)


def statistics_pass(
    model: PreTrainedModel,
    tokens: TokenTable,
    batch_size: int,
    device: torch.device | str,
    level: str = "piece",
    pad_id: int = 0,
    on_batch: Callable[[int], object] | None = None,
) -> np.ndarray:
    """Statistics of every example (examples, layers, heads, stats), in the token table's order."""
    if level not in LEVELS:
        raise ValueError(f"level is {level!r}; valid: {', '.join(LEVELS)}")
    where = torch.device(device)
    observer = AttentionStatsObserver(layer_count(model), head_count(model))
    controls = Controls(observers=[observer])
    n = len(tokens.encoded)
    out = np.full((n, observer.n_layers, observer.n_heads, len(STATS)), np.nan)  # (examples, L, H, S)
    with inference_session(model, where):
        for batch in eval_batches(tokens.encoded, batch_size, pad_id):
            pooling = batch_pooling(tokens, batch).to(where) if level == "word" else None
            observer.start(batch_categories(tokens, batch).to(where), pooling)
            model(**batch.model_inputs(where), headlab=controls)
            out[batch.rows] = observer.result()
            if on_batch is not None:
                on_batch(1)
    return out


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def statistics_chunks(
    model: str,
    task: str,
    variant: str,
    examples: np.ndarray,
    values: np.ndarray,
    examples_per_chunk: int = EXAMPLES_PER_ROW_GROUP,
) -> Iterator[pa.Table]:
    """The long table in sorted order, a few examples at a time.

    `examples` (examples,) the dev Parquet's `row` of each example; `values` (examples, layers,
    heads, stats) in the same order.
    """
    n, n_layers, n_heads, n_stats = values.shape
    if n_stats != len(STATS) or examples.shape != (n,):
        raise ValueError(f"values {values.shape} and examples {examples.shape} do not match")
    order = np.argsort(examples, kind="stable")
    per_example = n_layers * n_heads * n_stats
    layer = np.repeat(np.arange(1, n_layers + 1, dtype=np.int32), n_heads * n_stats)  # (per_example,)
    head = np.tile(np.repeat(np.arange(1, n_heads + 1, dtype=np.int32), n_stats), n_layers)
    stat = np.tile(np.array(STATS, dtype=object), n_layers * n_heads)  # (per_example,)
    for start in range(0, n, examples_per_chunk):
        chosen = order[start : start + examples_per_chunk]
        k = len(chosen)
        rows = k * per_example
        yield pa.table(
            {
                "model": pa.array([model] * rows, pa.string()),
                "task": pa.array([task] * rows, pa.string()),
                "variant": pa.array([variant] * rows, pa.string()),
                "example": pa.array(np.repeat(examples[chosen].astype(np.int64), per_example)),
                "layer": pa.array(np.tile(layer, k)),
                "head": pa.array(np.tile(head, k)),
                "stat": pa.array(np.tile(stat, k), pa.string()),
                "value": pa.array(values[chosen].reshape(-1).astype(np.float64)),
            },
            schema=STATS_SCHEMA,
        )


def write_table_chunks(
    chunks: Iterable[pa.Table],
    schema: pa.Schema,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write `chunks` (tables of `schema`) as row groups of one Parquet file, atomically, with
    `metadata` (plus provenance) as JSON under 'headlab', like `headlab.parquet_io.write_table`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    merged = dict(schema.metadata or {})
    merged[METADATA_KEY] = json.dumps(provenance(metadata), sort_keys=True, default=str).encode()
    schema = schema.with_metadata(merged)
    remove_stale_siblings(target)
    tmp_name = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        with pq.ParquetWriter(tmp_name, schema) as writer:
            for chunk in chunks:
                writer.write_table(chunk)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp_name).unlink()
        raise
    return target
