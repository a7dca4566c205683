"""Word pooling of attention maps: word pieces -> words, for the word-level statistics.

Word pieces are pooled to words with the fast tokenizer's ``word_ids()`` (`piece_words`):
[CLS] and [SEP] are words of their own, and the two sentences of a pair number their words
apart. With the pooling matrices ``S`` (batch, words, pieces), 1 where a piece belongs to a
word (attention *to* a word is the sum over its pieces), and ``M = S / pieces per word``
(attention *from* a word is the mean over its pieces)::

    P_word = M @ A @ S^T          # (batch, heads, words, words), rows still sum to 1

A word is [CLS] / [SEP] / shared (its text also in the other sentence) when one of its pieces
is, punctuation when all of them are, and its segment is its pieces' (`WordPooling.categories`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from headlab.measure.tokens import TokenCategories


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
        """The word-level categories: a word is [CLS]/[SEP]/shared when one of its pieces is,
        punctuation when all of them are."""
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
            is_shared=pieces_in_word(pieces.is_shared) > 0,
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
