"""Relation-specific heads (Sec. 4.2, Figure 3): attention between FrameNet targets and core elements.

For each kept link (an LU target and one of its core frame elements, `headlab.data.framenet`) the
pretrained encoder reads the sentence alone (``[CLS] sentence [SEP]``) and, per layer and
head, the **link score** is the largest attention weight among the token pairs that join the
two ends, in both directions::

    max( max_{q in target, k in FE} A[q, k],  max_{q in FE, k in target} A[q, k] )

over word pieces (every piece of a multi-piece word counts). The paper's "maximum absolute
attention weight among those token pairs"; attention weights are non-negative, so absolute
values change nothing.

Averaging (``average_over``):

* ``"sentence"`` (default, the paper's "averaged over all collected examples"): a sentence's
  score is the maximum over all its kept links, then the mean over sentences;
* ``"link"``: the mean over links, so a sentence with several core elements counts several times.

A head is **top** when its averaged score is strictly above the 99th percentile (numpy's
linear interpolation) of all heads' averaged scores: with 144 heads that marks at most 2, the
paper's count; with 72 heads (MiniLM), at most 1.

The model runs through the attention engine with an observer that reduces each layer's
attention to one number per link and head as it goes; no (query, key) map is kept, except for
the one sentence drawn in the figure (`attention_maps`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from headlab.data.alignment import Span, align_spans
from headlab.model.batching import Batch, Encoded, eval_batches
from headlab.model.engine import head_count, layer_count
from headlab.model.inference import observed_pass

AVERAGES = ("sentence", "link")
HEAD_COLUMNS: dict[str, Any] = {
    "model": pl.String,
    "layer": pl.Int64,
    "head": pl.Int64,
    "score": pl.Float64,
    "n_links": pl.Int64,
    "n_sentences": pl.Int64,
    "top": pl.Boolean,
}
EXAMPLE_COLUMNS: dict[str, Any] = {
    "model": pl.String,
    "sentence_id": pl.String,
    "text": pl.String,
    "frame": pl.String,
    "lu": pl.String,
    "fe": pl.String,  # the link's core elements, "; "-joined
    "layer": pl.Int64,
    "head": pl.Int64,
    "query": pl.Int64,  # word-piece position, [CLS] = 0
    "key": pl.Int64,
    "query_token": pl.String,
    "key_token": pl.String,
    "query_role": pl.String,  # "target", "fe" or "other"
    "key_role": pl.String,
    "query_fe": pl.String,  # the core element a piece belongs to (null unless role "fe")
    "key_fe": pl.String,
    "weight": pl.Float64,
}


# ---------------------------------------------------------------------------------------------
# The reduction (tested directly on hand-built attention)
# ---------------------------------------------------------------------------------------------


def link_mask(width: int, target: Span, fe: Span) -> torch.Tensor:
    """(query, key) bool: the cells joining target pieces and FE pieces, both directions."""
    mask = torch.zeros(width, width, dtype=torch.bool)  # (query, key)
    mask[target[0] : target[1], fe[0] : fe[1]] = True  # target queries -> FE keys
    mask[fe[0] : fe[1], target[0] : target[1]] = True  # FE queries -> target keys
    return mask


def link_max_attention(
    probs: torch.Tensor, link_rows: torch.Tensor, link_masks: torch.Tensor
) -> torch.Tensor:
    """Per link and head, the largest attention weight on the link's cells.

    probs (batch, heads, query, key); link_rows (links,) the batch row of each link;
    link_masks (links, query, key) bool. Returns (links, heads) float32.
    """
    selected = probs.float()[link_rows.to(probs.device)]  # (links, heads, query, key)
    cells = link_masks.to(probs.device)[:, None, :, :]  # (links, 1, query, key)
    masked = selected.masked_fill(~cells, float("-inf"))  # (links, heads, query, key)
    return masked.amax(dim=(-2, -1))  # (links, heads)


class LinkMaxObserver:
    """Engine observer: fills (links, layers, heads) link scores for the batch set by `start`."""

    def __init__(self, n_layers: int, n_heads: int) -> None:
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.rows = torch.zeros(0, dtype=torch.long)  # (links,)
        self.masks = torch.zeros(0, 0, 0, dtype=torch.bool)  # (links, query, key)
        self.scores = torch.zeros(0, n_layers, n_heads)  # (links, layers, heads)

    def start(self, rows: torch.Tensor, masks: torch.Tensor) -> None:
        self.rows, self.masks = rows, masks
        shape = (len(rows), self.n_layers, self.n_heads)
        self.scores = torch.full(shape, float("nan"))  # (links, layers, heads)

    def __call__(self, layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> None:
        self.scores[:, layer, :] = link_max_attention(probs, self.rows, self.masks).cpu()  # (links, heads)


# ---------------------------------------------------------------------------------------------
# Links -> per-link scores
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkScores:
    """Per-link scores (links, layers, heads) and the links they belong to (table order)."""

    links: pl.DataFrame  # the sentence table's rows that aligned to word pieces
    scores: np.ndarray  # (links, layers, heads)
    n_unaligned: int  # links dropped: a span covered no word piece


def _aligned_links(
    tokenizer: PreTrainedTokenizerBase, sentences: pl.DataFrame, max_length: int | None
) -> tuple[Encoded, pl.DataFrame, list[list[tuple[int, Span, Span]]]]:
    """One encoded text per annotated sentence (sentence_id, with its one target) and, per
    sentence, its links (table row, target pieces, FE pieces)."""
    indexed = sentences.with_row_index("_row")
    keys = ["sentence_id", "text", "target_start", "target_end"]
    groups = indexed.group_by(keys, maintain_order=True).agg(pl.col("_row", "fe_start", "fe_end"))
    texts = groups["text"].to_list()
    spans = [
        [(g["target_start"], g["target_end"]), *zip(g["fe_start"], g["fe_end"], strict=True)]
        for g in groups.iter_rows(named=True)
    ]
    alignments = align_spans(tokenizer, texts, spans, max_length)
    per_sentence: list[list[tuple[int, Span, Span]]] = []
    for g, alignment in zip(groups.iter_rows(named=True), alignments, strict=True):
        target, *fes = alignment.pieces
        per_sentence.append(
            [
                (row, target, fe)
                for row, fe in zip(g["_row"], fes, strict=True)
                if target is not None and fe is not None
            ]
        )
    encoded = Encoded(
        input_ids=[a.input_ids for a in alignments],
        token_type_ids=[a.token_type_ids for a in alignments],
        labels=np.zeros(len(alignments), dtype=np.int64),
        segments=[a.segments for a in alignments],
    )
    return encoded, groups, per_sentence


def link_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sentences: pl.DataFrame,
    batch_size: int,
    device: torch.device | str,
    max_length: int | None = None,
    on_batch: Callable[[int], object] | None = None,
) -> LinkScores:
    """Score every link of the sentence table (columns of `headlab.data.framenet.SENTENCE_COLUMNS`).

    Sentences are encoded once each, batched by length with dynamic padding, and read in
    inference mode through the engine; the observer keeps only (links, layers, heads).
    """
    where = torch.device(device)
    if max_length is None:  # every sentence whole, up to the model's positions
        max_length = int(getattr(model.config, "max_position_embeddings", 512))
    encoded, _, per_sentence = _aligned_links(tokenizer, sentences, max_length)
    observer = LinkMaxObserver(layer_count(model), head_count(model))
    rows_out: list[int] = []
    chunks: list[torch.Tensor] = []
    batch_rows: list[int] = []  # the table rows of the links of the current batch

    def prepare(batch: Batch) -> bool:
        width = batch.input_ids.shape[1]
        link_rows, masks = [], []
        batch_rows.clear()
        for position, sentence in enumerate(batch.rows):
            for row, target, fe in per_sentence[sentence]:
                link_rows.append(position)
                masks.append(link_mask(width, target, fe))  # (query, key)
                batch_rows.append(row)
        if not link_rows:
            return False
        rows_on_device = torch.tensor(link_rows, device=where)  # (links,)
        observer.start(rows_on_device, torch.stack(masks).to(where))  # masks (links, query, key)
        return True

    def collect(batch: Batch) -> None:
        chunks.append(observer.scores)  # (links, layers, heads)
        rows_out.extend(batch_rows)

    batches = eval_batches(encoded, batch_size, tokenizer.pad_token_id)
    observed_pass(model, batches, where, [observer], prepare, collect, on_batch)
    n_layers, n_heads = observer.n_layers, observer.n_heads
    scores = torch.cat(chunks).numpy() if chunks else np.zeros((0, n_layers, n_heads), np.float32)
    order = np.argsort(np.asarray(rows_out, dtype=np.int64), kind="stable")
    kept_rows = np.asarray(rows_out, dtype=np.int64)[order]
    return LinkScores(
        links=sentences[kept_rows.tolist()] if kept_rows.size else sentences.clear(),
        scores=scores[order],  # (links, layers, heads) in table order
        n_unaligned=sentences.height - kept_rows.size,
    )


# ---------------------------------------------------------------------------------------------
# Per-link scores -> the head table
# ---------------------------------------------------------------------------------------------


def sentence_scores(links: pl.DataFrame, scores: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Per sentence_id (first-appearance order), the max over its links: (sentences, layers, heads)."""
    ids = links["sentence_id"].to_list()
    order = list(dict.fromkeys(ids))
    index = {sid: i for i, sid in enumerate(order)}
    out = np.full((len(order), *scores.shape[1:]), -np.inf)  # (sentences, layers, heads)
    np.maximum.at(out, np.array([index[s] for s in ids], dtype=np.int64), scores)
    return order, out


def top_threshold(scores: np.ndarray, percentile: float) -> float:
    """The score a top head must exceed: the `percentile`-th percentile of every head's score
    (numpy's linear interpolation)."""
    return float(np.percentile(scores, percentile))


def top_heads(scores: np.ndarray, percentile: float) -> np.ndarray:
    """Bool mask of `scores` strictly above `top_threshold`."""
    return scores > top_threshold(scores, percentile)


def head_table(scored: LinkScores, model_alias: str, average_over: str, percentile: float) -> pl.DataFrame:
    """The tidy Figure 3 table: one row per (layer, head), 1-based, sorted by layer then head."""
    if average_over not in AVERAGES:
        raise ValueError(f"average_over is {average_over!r}; valid: {', '.join(AVERAGES)}")
    if scored.scores.shape[0] == 0:
        raise ValueError("no FrameNet link aligned to word pieces: nothing to average")
    # (links, layers, heads) or (sentences, layers, heads)
    units = scored.scores if average_over == "link" else sentence_scores(scored.links, scored.scores)[1]
    mean = units.mean(axis=0)  # (layers, heads)
    top = top_heads(mean, percentile)  # (layers, heads)
    n_layers, n_heads = mean.shape
    layers, heads = np.meshgrid(np.arange(1, n_layers + 1), np.arange(1, n_heads + 1), indexing="ij")
    table = pl.DataFrame(
        {
            "model": [model_alias] * mean.size,
            "layer": layers.ravel(),
            "head": heads.ravel(),
            "score": mean.ravel().astype(np.float64),
            "n_links": [scored.scores.shape[0]] * mean.size,
            "n_sentences": [scored.links["sentence_id"].n_unique()] * mean.size,
            "top": top.ravel(),
        },
        schema=HEAD_COLUMNS,
    )
    return table


def shown_heads(table: pl.DataFrame, count: int = 2) -> list[tuple[int, int]]:
    """The `count` best heads (layer, head), 1-based, best first (ties: lower layer, then head)."""
    best = table.sort(["score", "layer", "head"], descending=[True, False, False]).head(count)
    return list(zip(best["layer"].to_list(), best["head"].to_list(), strict=True))
