"""What the analyses read of a fast tokenizer's encoding: segments and covered text, never token strings.

One definition for every encoder family (BERT's WordPiece, RoBERTa's byte-level BPE, XLM-R's and
ALBERT's SentencePiece):

* **segment** (`segments_from_sequence_ids`): a content piece has its sequence id (0 for text_a,
  1 for text_b, the fast tokenizer's ``sequence_ids``); a special token takes the segment of the
  nearest content piece before it, or 0 when there is none. This is BERT's token_type_ids
  exactly (``[CLS] A [SEP]`` -> 0, ``B [SEP]`` -> 1) and gives RoBERTa's
  ``<s> A </s></s> B </s>`` the segments 0 0 0 0 1 1, where its tokenizer returns no token types
  (or zeros). The model's own ``token_type_ids`` are not these: they stay what the tokenizer
  returns (`model_token_type_ids`, zeros when it returns none).
* **covered text** (`covered_texts`): the original characters a piece's offsets cover, in text_a
  or text_b by its sequence id (pair offsets count within each text); "" for special tokens. So
  byte-level BPE's ``Ġ,`` and SentencePiece's ``▁,`` cover "," (or " ,"), whatever their strings.

Pure Python (no torch): the parsing environment imports `headlab.data.linguistic`, which uses this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import BatchEncoding


def segments_from_sequence_ids(sequence_ids: Sequence[int | None]) -> list[int]:
    """The segment of every piece (see the module docstring): content pieces their sequence id,
    special tokens (None) that of the nearest preceding content piece, 0 before any content."""
    segments: list[int] = []
    current = 0
    for sequence in sequence_ids:
        if sequence is not None:
            current = int(sequence)
        segments.append(current)
    return segments


def _require_fast(encoding: BatchEncoding, what: str) -> None:
    if not getattr(encoding, "is_fast", False):
        raise TypeError(
            f"{what} needs a fast tokenizer's encoding (sequence_ids, offsets); this tokenizer is "
            "not fast: load it with AutoTokenizer (use_fast=True) or convert it with the tokenizers library"
        )


def encoding_segments(encoding: BatchEncoding) -> list[list[int]]:
    """Per example of a batched fast-tokenizer encoding, the segment of every piece."""
    _require_fast(encoding, "segments")
    return [segments_from_sequence_ids(encoding.sequence_ids(i)) for i in range(len(encoding["input_ids"]))]


def model_token_type_ids(encoding: BatchEncoding) -> list[list[int]]:
    """The token_type_ids the tokenizer returned for the model, or zeros where it returned none."""
    types = encoding.get("token_type_ids")
    if types is None:
        return [[0] * len(ids) for ids in encoding["input_ids"]]
    return [list(t) for t in types]


def covered_texts(
    encoding: BatchEncoding, text_a: Sequence[str], text_b: Sequence[str] | None
) -> list[list[str]]:
    """Per example and piece, the original text its offsets cover ("" for special tokens).

    `encoding` is the fast tokenizer's output for (text_a, text_b) with
    ``return_offsets_mapping=True``; a piece of sequence 0 indexes text_a, of sequence 1 text_b.
    """
    _require_fast(encoding, "covered text")
    if "offset_mapping" not in encoding:
        raise ValueError("covered_texts needs the encoding's offsets (return_offsets_mapping=True)")
    texts: list[list[str]] = []
    for i, offsets in enumerate(encoding["offset_mapping"]):
        sources = (text_a[i], None if text_b is None else text_b[i])
        row = []
        for (start, end), sequence in zip(offsets, encoding.sequence_ids(i), strict=True):
            source = None if sequence is None else sources[sequence]
            if sequence is not None and source is None:
                raise ValueError(f"example {i}: a piece of sequence {sequence} but no text_b")
            row.append("" if source is None else source[start:end])
        texts.append(row)
    return texts
