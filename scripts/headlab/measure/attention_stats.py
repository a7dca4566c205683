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
``punct``           mass on punctuation tokens: pieces whose original text (by the tokenizer's
                    character offsets, stripped) is made only of Unicode punctuation characters
                    (category P*: ``. , ! ? ' " - ( ) #``; symbols such as ``$ + = `` are not
                    punctuation), so BPE's ``Ġ,`` and SentencePiece's ``▁,`` count; never [CLS]/[SEP]
``self``            A[i, i]
``prev``            A[i, i-1]; the mean runs over real queries that have a previous token (i ≥ 1)
``next``            A[i, i+1]; the mean runs over real queries whose next token is real
``within_segment``  mass on the *content* tokens (neither [CLS] nor [SEP]) whose segment equals
                    the query's (the query's own sentence: the paper's "Block" pattern)
``across_segment``  mass on the content tokens of the other segment; NaN for single sentences
``overlap``         mass on the *shared* tokens of the other segment (Sec. 5: words "that appear in
                    both sentences"): content pieces, not punctuation, whose token id also occurs
                    among the other segment's (`headlab.measure.tokens`); at most
                    ``across_segment``; NaN for single sentences
``entropy``         entropy of the row in nats, ``-sum_k A[i,k] log A[i,k]`` over real keys
==================  ==============================================================================

[CLS] and [SEP] are left out of the segment statistics because they have their own, so for
every real query ``cls + sep + within_segment + across_segment = 1`` (a pair) and
``cls + sep + within_segment = 1`` (a single sentence); queries are all real tokens, [CLS]
and [SEP] included. A token's **segment** comes from the fast tokenizer's ``sequence_ids``
(`headlab.data.segments`: 0 for text_a, 1 for text_b, a special token that of the content before
it), never from the model's token_type_ids (zeros for RoBERTa): BERT's ``[CLS] A [SEP] B [SEP]``
gives its token_type_ids, RoBERTa's ``<s> A </s></s> B </s>`` 0 0 0 0 1 1. [CLS] and [SEP] are
the tokenizer's ``cls_token_id`` and ``sep_token_id``. A pair is an example with at least two
[SEP] tokens. NaN marks a statistic that does not exist for the example, never a failure.

**Word level** (``level="word"``): word pieces are first pooled to words
(`headlab.measure.word_pooling`: attention *to* a word is the sum over its pieces, *from* a word
the mean over its pieces; [CLS] and [SEP] are words of their own), and the statistics above are
computed on the pooled maps with word categories (a word is punctuation when all its pieces are,
shared when one of them is; prev/next/self refer to words). Token categories (punctuation, [SEP]
roles, shared tokens) are those of `headlab.measure.tokens`.

The reduction runs on the device, batched over examples and heads: one matrix product of the
map with a (key, category) matrix gives every key-category mass at once, the diagonals give
self/prev/next, and masked query weights give the means. Only (batch, layers, heads, stats)
leaves the observer; no attention map is kept.

The written table (`STATS_SCHEMA`) is long/tidy, one row per (example, layer, head, stat),
sorted by ``example`` (the dev Parquet's ``row``), ``layer``, ``head``, ``stat`` (stats in
alphabetical order, the order of `STATS`); rows with NaN values are kept, so each example has
layers × heads × len(STATS) rows. `statistics_chunks` yields it in row groups of a few examples
(memory stays flat in the number of examples) for `headlab.io.parquet.write_table_chunks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import torch
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from headlab.io.schemas import ATTENTION_STATS_SCHEMA
from headlab.measure.tokens import TokenCategories, punctuation_marks
from headlab.measure.word_pooling import WordPooling, piece_words
from headlab.model.batching import Batch, Encoded, encoded_of, eval_batches, table_texts, tokenize_texts
from headlab.model.engine import head_count, layer_count
from headlab.model.inference import observed_pass

# Alphabetical: the order of the `stat` column in the sorted table and of the last axis of arrays.
STATS = (
    "across_segment",
    "cls",
    "entropy",
    "next",
    "overlap",
    "prev",
    "punct",
    "self",
    "sep",
    "sep_first",
    "sep_second",
    "within_segment",
)
LEVELS = ("piece", "word")
STATS_SCHEMA = ATTENTION_STATS_SCHEMA  # the written table's, `headlab.io.schemas`
EXAMPLES_PER_ROW_GROUP = 64

# Columns of the (batch, key, category) matrix: these, then one "content of segment s" per segment,
# then one "shared token of segment s" per segment.
KEY_CATEGORIES = ("cls", "sep", "sep_first", "sep_second", "punct")
_COLUMN = {name: i for i, name in enumerate(KEY_CATEGORIES)}
_STAT = {name: i for i, name in enumerate(STATS)}
_PAIR_ONLY = [_STAT["sep_second"], _STAT["across_segment"], _STAT["overlap"]]


# ---------------------------------------------------------------------------------------------
# The reduction (tested directly on hand-built attention)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reduction:
    """What the statistics need of one batch's categories, prepared once and reused per layer."""

    keys: torch.Tensor  # (batch, key, categories) float: KEY_CATEGORIES, content, shared per segment
    real_keys: torch.Tensor  # (batch, key, 1) float
    segment: torch.Tensor  # (batch, query) long
    weights: torch.Tensor  # (batch, query, stats) float: which queries each stat averages over
    is_pair: torch.Tensor  # (batch,) bool
    n_segments: int

    @classmethod
    def of(cls, categories: TokenCategories) -> Reduction:
        c = categories
        content = c.is_real & ~c.is_cls & ~c.is_sep  # (batch, key)
        segments = torch.arange(c.n_segments, device=c.segment.device)  # (segments,)
        in_segment = c.segment[:, :, None] == segments  # (batch, key, segments)
        per_segment = content[:, :, None] & in_segment  # (batch, key, segments)
        shared = c.is_shared[:, :, None] & in_segment  # (batch, key, segments)
        fixed = torch.stack([c.is_cls, c.is_sep, c.sep_first, c.sep_second, c.is_punct], dim=-1)
        keys = torch.cat([fixed, per_segment, shared], dim=-1).float()  # (batch, key, categories)
        real = c.is_real.float()  # (batch, query)
        has_prev = F.pad(real[:, :-1], (1, 0)) * real  # (batch, query): query i-1 is real
        has_next = F.pad(real[:, 1:], (0, 1)) * real  # (batch, query): query i+1 is real
        weights = real[:, :, None].repeat(1, 1, len(STATS))  # (batch, query, stats)
        weights[:, :, _STAT["prev"]] = has_prev
        weights[:, :, _STAT["next"]] = has_next
        return cls(keys, real[:, :, None], c.segment, weights, c.is_pair, c.n_segments)


def reduce_attention(probs: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """The `STATS` of each example and head: (batch, heads, query, key) -> (batch, heads, stats)."""
    p = probs.float()  # (batch, heads, query, key)
    batch, heads, queries, keys = p.shape
    rows = p.reshape(batch, heads * queries, keys)  # (batch, heads * query, key): one bmm over examples
    mass = torch.bmm(rows, reduction.keys).view(
        batch, heads, queries, -1
    )  # (batch, heads, query, categories)
    first, segments = len(KEY_CATEGORIES), reduction.n_segments
    seg_mass = mass[..., first : first + segments]  # (batch, heads, query, segments): content
    shared_mass = mass[..., first + segments :]  # (batch, heads, query, segments): shared tokens
    own = reduction.segment[:, None, :, None].expand(batch, heads, queries, 1)  # (batch, heads, query, 1)
    within = seg_mass.gather(-1, own)[..., 0]  # (batch, heads, query)
    own_shared = shared_mass.gather(-1, own)[..., 0]  # (batch, heads, query)
    entropy = torch.bmm(torch.special.entr(rows), reduction.real_keys)  # (batch, heads * query, 1)
    per_query = {
        "across_segment": seg_mass.sum(dim=-1) - within,
        "cls": mass[..., _COLUMN["cls"]],
        "entropy": entropy.view(batch, heads, queries),
        "next": F.pad(torch.diagonal(p, offset=1, dim1=-2, dim2=-1), (0, 1)),  # A[i, i+1]
        "overlap": shared_mass.sum(dim=-1) - own_shared,
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
    )  # (batch, heads, pair-only stats)
    return means


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

    encoded: Encoded  # with segments (from the fast tokenizer's sequence_ids)
    is_punct: list[list[bool]]
    words: list[list[int]] | None  # word number of each piece; None unless word level
    cls_id: int
    sep_id: int


def tokenize_table(
    tokenizer: PreTrainedTokenizerBase, table: pl.DataFrame, max_length: int, with_words: bool = False
) -> TokenTable:
    """Tokenise text_a (and text_b) exactly as `headlab.model.batching.encode` does, with the
    pieces' segments (``sequence_ids``), punctuation (the original text each piece covers, by
    character offsets) and, with `with_words`, words. Fast tokenizers only."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            "attention statistics need a fast tokenizer (sequence_ids for segments, character "
            "offsets for punctuation); this one is not"
        )
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError("the tokenizer has no [CLS] or [SEP] token (cls_token_id / sep_token_id)")
    text_a, text_b = table_texts(table)
    encoded = tokenize_texts(tokenizer, text_a, text_b, max_length, offsets=True)
    n = len(encoded["input_ids"])
    words = None
    if with_words:
        words = [piece_words(encoded.word_ids(i), encoded.sequence_ids(i)) for i in range(n)]
    return TokenTable(
        encoded=encoded_of(encoded, np.zeros(n, dtype=np.int64)),
        is_punct=punctuation_marks(encoded, text_a, text_b),
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
    """The piece categories of one batch (CPU); segments are `Batch.segments`, not token_type_ids."""
    if batch.segments is None:
        raise ValueError("the batch has no segments: encode it from a fast tokenizer (tokenize_table)")
    width = batch.input_ids.shape[1]
    punct = _padded([[int(p) for p in tokens.is_punct[r]] for r in batch.rows], width, 0)  # (batch, tokens)
    return TokenCategories.from_ids(
        batch.input_ids, batch.segments, batch.attention_mask, punct, tokens.cls_id, tokens.sep_id
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
    n = len(tokens.encoded)
    out = np.full((n, observer.n_layers, observer.n_heads, len(STATS)), np.nan)  # (examples, L, H, S)

    def prepare(batch: Batch) -> None:
        pooling = batch_pooling(tokens, batch).to(where) if level == "word" else None
        observer.start(batch_categories(tokens, batch).to(where), pooling)

    def collect(batch: Batch) -> None:
        out[batch.rows] = observer.result()

    batches = eval_batches(tokens.encoded, batch_size, pad_id)
    observed_pass(model, batches, where, [observer], prepare, collect, on_batch)
    return out


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def statistics_chunks(
    model: str,
    task: str,
    condition: str,
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
                "condition": pa.array([condition] * rows, pa.string()),
                "example": pa.array(np.repeat(examples[chosen].astype(np.int64), per_example)),
                "layer": pa.array(np.tile(layer, k)),
                "head": pa.array(np.tile(head, k)),
                "stat": pa.array(np.tile(stat, k), pa.string()),
                "value": pa.array(values[chosen].reshape(-1).astype(np.float64)),
            },
            schema=STATS_SCHEMA,
        )
