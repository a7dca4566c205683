"""Alignment by character offsets for RoBERTa's byte-level BPE (pieces with a leading ``Ġ``) and
XLM-R's SentencePiece (``▁``, offsets that include the space): spaCy tokens and FrameNet spans land
on the hand-expected pieces, and the aligned examples carry the tokenizer's segments."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from headlab.data.alignment import align_spans
from headlab.data.linguistic import FEATURES, PARSE_COLUMNS, align_examples
from headlab.data.token_rules import token_flags
from tiny_families import bpe_tokenizer, unigram_tokenizer

TEXT_A, TEXT_B = "the cat , sat .", "a dog, !"
# spaCy-like parse of both segments: (text, start, pos, dep, head)
PARSE = {
    0: [("the", 0, "DET", "det", 1), ("cat", 4, "NOUN", "nsubj", 3), (",", 8, "PUNCT", "punct", 3),
        ("sat", 10, "VERB", "ROOT", 3), (".", 14, "PUNCT", "punct", 3)],
    1: [("a", 0, "DET", "det", 1), ("dog", 2, "NOUN", "ROOT", 1), (",", 5, "PUNCT", "punct", 1),
        ("!", 7, "PUNCT", "punct", 1)],
}  # fmt: skip


def parse_frame() -> pl.DataFrame:
    rows = []
    for segment, tokens in PARSE.items():
        for i, (text, start, pos, dep, head) in enumerate(tokens):
            rows.append(
                {
                    "row": 3,
                    "segment": segment,
                    "token": i,
                    "sentence": 0,
                    "start": start,
                    "end": start + len(text),
                    "text": text,
                    "pos": pos,
                    "tag": "",
                    "dep": dep,
                    "head": head,
                    "morph": "",
                    **token_flags(pos, dep, False),
                }
            )
    return pl.DataFrame(rows, schema=PARSE_COLUMNS, orient="row")


@pytest.mark.parametrize("make", [bpe_tokenizer, unigram_tokenizer])
def test_spacy_tokens_align_to_bpe_and_sentencepiece_pieces(make):
    tokenizer = make()
    dev = pl.DataFrame({"row": [3], "text_a": [TEXT_A], "text_b": [TEXT_B], "label": [0]})
    (example,) = align_examples(tokenizer, dev, parse_frame(), max_length=32)
    # <s> the Ġcat Ġ, Ġsat Ġ. </s> </s> a Ġdog , Ġ! </s>  (▁ for SentencePiece)
    assert len(example.pieces) == 13
    marked = {f: np.flatnonzero(example.marks[i]).tolist() for i, f in enumerate(FEATURES)}
    assert marked == {
        "cls": [0],
        "sep": [6, 7, 12],
        "noun": [2, 9],
        "verb": [4],
        "pronoun": [],
        "subject": [2],
        "object": [],
        "negation": [],
        "punctuation": [3, 5, 10, 11],
    }
    assert example.pairs["verb_subject"] == [((4, 5), (2, 3))]
    assert example.segments == [0] * 8 + [1] * 5
    assert example.token_type_ids == [0] * 13  # the model's input: no token types


def test_spans_align_to_bpe_pieces():
    (aligned,) = align_spans(bpe_tokenizer(), [TEXT_A], [[(4, 7), (0, 3), (8, 9), (3, 4)]])
    assert aligned.tokens == ["<s>", "the", "Ġcat", "Ġ,", "Ġsat", "Ġ.", "</s>"]
    assert aligned.pieces == [(2, 3), (1, 2), (3, 4), None]  # cat, the, ",", a space alone
    assert aligned.segments == [0] * 7
    assert aligned.token_type_ids == [0] * 7
