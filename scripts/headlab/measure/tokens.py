"""Token categories of the attention analyses: [CLS], [SEP] and their order, punctuation, segments.

One definition for every analysis:

* **punctuation** (`is_punctuation`, `punctuation_marks`): a piece whose original text (the
  characters its offsets cover, `headlab.data.segments.covered_texts`), stripped of whitespace,
  is non-empty and made only of Unicode punctuation characters (general category P*:
  ``. , ! ? ' " - ( ) #``; symbols such as ``$ + =`` are not punctuation). Never the token
  string, so BPE's ``Ġ,`` and SentencePiece's ``▁,`` are punctuation. Special tokens ([CLS],
  [SEP], ``<s>``, ``</s>``) never are.
* **[CLS] / [SEP]**: by the tokenizer's ``cls_token_id`` / ``sep_token_id`` (``<s>`` / ``</s>``
  for RoBERTa and XLM-R).
* **[SEP] roles**: the first [SEP] ends segment A; the last [SEP] of an example with at least
  two of them (a *pair*) ends segment B.
* **segment**: from the fast tokenizer's ``sequence_ids`` (`headlab.data.segments`: BERT's
  token_type_ids; RoBERTa's ``<s> A </s></s> B </s>`` -> 0 0 0 0 1 1), 0 on padding. Never the
  model's token_type_ids, which are zeros for RoBERTa.
* **shared** (pairs only): a *content* piece (real, neither [CLS], [SEP] nor punctuation) whose
  token id also occurs among the content pieces of the other segment: the words that "appear in
  both sentences" (Sec. 5). By token id, so case and BPE's leading space count (``the`` and
  ``Ġthe`` differ). All False for single sentences and padding.

`TokenCategories` holds these as per-position masks of one batch, over word pieces or, after
`headlab.measure.word_pooling.WordPooling.categories`, over words.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from headlab.data.segments import covered_texts

if TYPE_CHECKING:
    from transformers import BatchEncoding


def is_punctuation(text: str) -> bool:
    """True when `text`, stripped of whitespace, is non-empty and every character is Unicode
    punctuation (general category P*)."""
    text = text.strip()
    return bool(text) and all(unicodedata.category(char).startswith("P") for char in text)


def punctuation_marks(
    encoding: BatchEncoding, text_a: Sequence[str], text_b: Sequence[str] | None
) -> list[list[bool]]:
    """Per example and piece: `is_punctuation` of the original text the piece covers (special
    tokens cover none). `encoding` is a fast tokenizer's, with ``return_offsets_mapping=True``."""
    return [[is_punctuation(text) for text in texts] for texts in covered_texts(encoding, text_a, text_b)]


@dataclass(frozen=True)
class TokenCategories:
    """Per-position masks of one batch, on the device of the attention maps (pieces or words)."""

    is_real: torch.Tensor  # (batch, tokens) bool
    is_cls: torch.Tensor  # (batch, tokens) bool
    is_sep: torch.Tensor  # (batch, tokens) bool
    sep_first: torch.Tensor  # (batch, tokens) bool: the first [SEP]
    sep_second: torch.Tensor  # (batch, tokens) bool: the last [SEP] of a pair
    is_punct: torch.Tensor  # (batch, tokens) bool
    segment: torch.Tensor  # (batch, tokens) long: the analysis segment (headlab.data.segments)
    is_shared: torch.Tensor  # (batch, tokens) bool: content piece whose id the other segment has too
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
        is_shared: torch.Tensor | None = None,
    ) -> TokenCategories:
        """Categories from (batch, tokens) masks; the [SEP] roles follow from their order.
        `is_shared` None: no shared tokens; it is kept only on content pieces of pairs."""
        is_real = is_real.bool()
        is_cls, is_sep = is_cls.bool() & is_real, is_sep.bool() & is_real
        rank = is_sep.long().cumsum(dim=-1)  # (batch, tokens): [SEP]s up to and including here
        n_sep = is_sep.sum(dim=-1, keepdim=True)  # (batch, 1)
        is_pair = n_sep[:, 0] >= 2  # (batch,)
        segment = segment.long() * is_real  # (batch, tokens), 0 on padding
        is_punct = is_punct.bool() & is_real & ~is_cls & ~is_sep
        if is_shared is None:
            is_shared = torch.zeros_like(is_real)
        content = is_real & ~is_cls & ~is_sep & ~is_punct  # (batch, tokens)
        return cls(
            is_real=is_real,
            is_cls=is_cls,
            is_sep=is_sep,
            sep_first=is_sep & (rank == 1),
            sep_second=is_sep & (rank == n_sep) & is_pair[:, None],
            is_punct=is_punct,
            segment=segment,
            is_shared=is_shared.bool() & content & is_pair[:, None],
            is_pair=is_pair,
            n_segments=int(segment.max()) + 1 if segment.numel() else 1,
        )

    @classmethod
    def from_ids(
        cls,
        input_ids: torch.Tensor,
        segments: torch.Tensor,
        attention_mask: torch.Tensor,
        is_punct: torch.Tensor,
        cls_id: int,
        sep_id: int,
    ) -> TokenCategories:
        """Categories of a batch of word pieces (all (batch, tokens)); `segments` are the analysis
        segments (`headlab.model.batching.Batch.segments`), not the model's token_type_ids; shared
        pieces are compared by id within each example."""
        is_real = attention_mask.bool()
        is_cls, is_sep = input_ids == cls_id, input_ids == sep_id  # (batch, tokens)
        content = is_real & ~is_cls & ~is_sep & ~is_punct.bool()  # (batch, tokens)
        same_id = input_ids[:, :, None] == input_ids[:, None, :]  # (batch, token, other token)
        other_segment = segments[:, :, None] != segments[:, None, :]  # (batch, token, other token)
        match = same_id & other_segment & content[:, :, None] & content[:, None, :]  # (batch, t, t)
        is_shared = match.any(dim=-1)  # (batch, tokens)
        return cls.from_masks(is_real, is_cls, is_sep, is_punct, segments, is_shared)

    def to(self, device: torch.device | str) -> TokenCategories:
        moved = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()}
        return TokenCategories(**moved)
