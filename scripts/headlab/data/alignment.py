"""Alignment of character spans to a fast tokenizer's word pieces, by character offsets only.

Never by matching strings: a word piece belongs to a span when their character ranges overlap
(the tokenizer's ``offset_mapping``); special tokens ([CLS], [SEP], offsets (0, 0)) never do.
`align_spans` aligns FrameNet's spans (`headlab.data.framenet`); `piece_token_overlap` and
`token_spans` align spaCy's tokens, segment by segment (`headlab.data.linguistic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from headlab.data.segments import encoding_segments, model_token_type_ids

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Span = tuple[int, int]  # character offsets [start, end), or word-piece positions [first, last + 1)


@dataclass(frozen=True)
class Alignment:
    """One text encoded by a model's tokenizer, with each requested span's word pieces.

    Positions count the whole encoded sequence, so with BERT's ``[CLS] ... [SEP]`` the first
    word piece is at 1. ``pieces[i]`` is [first, last + 1) of the pieces that overlap span i,
    or None when no piece does (a span of whitespace, or cut off by truncation).
    """

    input_ids: list[int]
    token_type_ids: list[int]  # the model's input (zeros where the tokenizer returns none)
    tokens: list[str]
    pieces: list[Span | None]
    segments: list[int]  # analysis segments (`headlab.data.segments`), all 0 for one text


def align_spans(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    spans: Sequence[Sequence[Span]],
    max_length: int | None = None,
) -> list[Alignment]:
    """Map character spans [start, end) of each text to word-piece positions.

    Uses the fast tokenizer's ``offset_mapping``: a piece belongs to a span when their character
    ranges overlap; special tokens ([CLS], [SEP], offsets (0, 0)) never do. A span's pieces are
    contiguous, so [first, last + 1) describes them.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("align_spans needs a fast tokenizer (return_offsets_mapping)")
    if len(texts) != len(spans):
        raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
    encoded = tokenizer(
        list(texts),
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_token_type_ids=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    token_types, segments = model_token_type_ids(encoded), encoding_segments(encoded)
    alignments = []
    for i, text_spans in enumerate(spans):
        offsets = encoded["offset_mapping"][i]
        special = encoded["special_tokens_mask"][i]
        pieces: list[Span | None] = []
        for start, end in text_spans:
            hit = [
                p
                for p, ((s, e), is_special) in enumerate(zip(offsets, special, strict=True))
                if not is_special and e > s and s < end and e > start
            ]
            pieces.append((hit[0], hit[-1] + 1) if hit else None)
        alignments.append(
            Alignment(
                input_ids=list(encoded["input_ids"][i]),
                token_type_ids=token_types[i],
                tokens=encoded.tokens(i),
                pieces=pieces,
                segments=segments[i],
            )
        )
    return alignments


def piece_token_overlap(
    piece_offsets: np.ndarray,
    piece_segments: np.ndarray,
    token_offsets: np.ndarray,
    token_segments: np.ndarray,
) -> np.ndarray:
    """(tokens, pieces) bool: token t and piece p share a segment and their character ranges overlap.

    piece_offsets (pieces, 2) and token_offsets (tokens, 2) are [start, end) within the segment;
    piece_segments (pieces,) is -1 for special tokens, which overlap nothing.
    """
    starts, ends = piece_offsets[:, 0], piece_offsets[:, 1]  # (pieces,) each
    real = (piece_segments >= 0) & (ends > starts)  # (pieces,)
    same_segment = token_segments[:, None] == piece_segments[None, :]  # (tokens, pieces)
    starts_before_end = starts[None, :] < token_offsets[:, 1:2]  # (tokens, pieces)
    ends_after_start = ends[None, :] > token_offsets[:, 0:1]  # (tokens, pieces)
    return same_segment & starts_before_end & ends_after_start & real[None, :]  # (tokens, pieces)


def token_spans(overlap: np.ndarray) -> list[Span | None]:
    """Per token, [first, last + 1) of the pieces it overlaps (contiguous), or None."""
    spans: list[Span | None] = []
    for row in overlap:  # (pieces,)
        hit = np.flatnonzero(row)
        spans.append((int(hit[0]), int(hit[-1]) + 1) if hit.size else None)
    return spans
