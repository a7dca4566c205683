"""Attention statistics (Sec. 4.1, 4.4, 4.5) and drift (Sec. 4.3, Figure 5): every statistic and
the word pooling against hand computations on small synthetic maps, the observer through the engine
against transformers' eager `output_attentions` on a tiny BERT, the cosine by hand and a model
against itself, the written tables' schemas and order, and the figure."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from headlab.data.glue import prepare_split
from headlab.io.parquet import read_metadata, write_table, write_table_chunks
from headlab.measure.attention_stats import (
    STATS,
    STATS_SCHEMA,
    Reduction,
    batch_categories,
    batch_pooling,
    reduce_attention,
    statistics_chunks,
    statistics_pass,
    tokenize_table,
)
from headlab.measure.drift import DRIFT_SCHEMA, drift_pass, drift_table, masked_cosine
from headlab.measure.tokens import TokenCategories, is_punctuation
from headlab.measure.word_pooling import WordPooling, piece_words
from headlab.model.batching import encode, eval_batches
from headlab.plots.drift import cell_label, drift_matrix, plot_drift
from tiny import SPECIALS, WORDS, tiny_config, tiny_tokenizer, write_tiny_glue, write_tiny_model

NAN = float("nan")
LOGGER = logging.getLogger("test_attention_stats")


def stats_dict(values: torch.Tensor) -> dict[str, float]:
    return {name: float(v) for name, v in zip(STATS, values.tolist(), strict=True)}


def assert_stats(got: torch.Tensor, expected: dict[str, float]) -> None:
    for name, value in stats_dict(got).items():
        if math.isnan(expected[name]):
            assert math.isnan(value), name
        else:
            assert value == pytest.approx(expected[name], abs=1e-6), name


# ---------------------------------------------------------------------------------------------
# Hand-built maps. Example 0 is a pair, [CLS] the , [SEP] dog [SEP] (segments 0 0 0 0 1 1);
# example 1 a single sentence, [CLS] cat . [SEP] + 2 padding. Head 0 attends one-hot to the
# previous token ([CLS] to itself); head 1 uniformly over the real tokens. Padding rows hold
# garbage that must not count.
# ---------------------------------------------------------------------------------------------

CLS, SEP = 2, 3


@pytest.fixture
def hand_batch() -> tuple[torch.Tensor, TokenCategories]:
    ids = torch.tensor([[CLS, 10, 30, SEP, 11, SEP], [CLS, 12, 31, SEP, 0, 0]])  # (batch, tokens)
    segments = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    punct = torch.tensor([[0, 0, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0]])
    categories = TokenCategories.from_ids(ids, segments, mask, punct, CLS, SEP)
    probs = torch.zeros(2, 2, 6, 6)  # (batch, heads, query, key)
    for b, length in [(0, 6), (1, 4)]:
        for i in range(length):
            probs[b, 0, i, max(i - 1, 0)] = 1.0
            probs[b, 1, i, :length] = 1.0 / length
        probs[b, :, length:, :] = 0.5  # garbage padding rows
    return probs, categories


HAND = {
    # pair, previous-token head: queries 0..5 attend keys 0,0,1,2,3,4
    (0, 0): {
        "cls": 2 / 6,  # q0, q1 -> [CLS]
        "sep": 1 / 6,  # q4 -> first [SEP]
        "sep_first": 1 / 6,
        "sep_second": 0.0,
        "punct": 1 / 6,  # q3 -> ","
        "self": 1 / 6,  # q0
        "prev": 1.0,  # q1..q5
        "next": 0.0,
        "within_segment": 3 / 6,  # q2 -> the, q3 -> ",", q5 -> dog
        "across_segment": 0.0,
        "overlap": 0.0,  # "the ," and "dog" share no token
        "entropy": 0.0,
    },
    # pair, uniform head: 1/6 per key
    (0, 1): {
        "cls": 1 / 6,
        "sep": 2 / 6,
        "sep_first": 1 / 6,
        "sep_second": 1 / 6,
        "punct": 1 / 6,
        "self": 1 / 6,
        "prev": 1 / 6,
        "next": 1 / 6,
        "within_segment": (4 * 2 / 6 + 2 * 1 / 6) / 6,  # segment-0 queries see 2 content keys, 1 for seg 1
        "across_segment": (4 * 1 / 6 + 2 * 2 / 6) / 6,
        "overlap": 0.0,
        "entropy": math.log(6),
    },
    # single, previous-token head: queries 0..3 attend keys 0,0,1,2
    (1, 0): {
        "cls": 2 / 4,
        "sep": 0.0,
        "sep_first": 0.0,
        "sep_second": NAN,
        "punct": 1 / 4,  # q3 -> "."
        "self": 1 / 4,
        "prev": 1.0,  # q1..q3
        "next": 0.0,  # q0..q2
        "within_segment": 2 / 4,  # q2 -> cat, q3 -> "."
        "across_segment": NAN,
        "overlap": NAN,
        "entropy": 0.0,
    },
    (1, 1): {
        "cls": 1 / 4,
        "sep": 1 / 4,
        "sep_first": 1 / 4,
        "sep_second": NAN,
        "punct": 1 / 4,
        "self": 1 / 4,
        "prev": 1 / 4,
        "next": 1 / 4,
        "within_segment": 2 / 4,
        "across_segment": NAN,
        "overlap": NAN,
        "entropy": math.log(4),
    },
}


@pytest.mark.parametrize(("example", "head"), sorted(HAND))
def test_statistics_by_hand(hand_batch, example, head):
    probs, categories = hand_batch
    stats = reduce_attention(probs, Reduction.of(categories))  # (batch, heads, stats)
    assert stats.shape == (2, 2, len(STATS))
    assert_stats(stats[example, head], HAND[(example, head)])


def test_categories_of_the_separators(hand_batch):
    _, c = hand_batch
    assert c.sep_first.nonzero().tolist() == [[0, 3], [1, 3]]
    assert c.sep_second.nonzero().tolist() == [[0, 5]]
    assert c.is_pair.tolist() == [True, False]


def reference_statistics(probs: torch.Tensor, c: TokenCategories) -> torch.Tensor:
    """The module docstring's definitions, one query at a time."""
    batch, heads, n, _ = probs.shape
    out = torch.full((batch, heads, len(STATS)), NAN, dtype=torch.float64)
    for b in range(batch):
        real = [i for i in range(n) if c.is_real[b, i]]
        content = [k for k in real if not (c.is_cls[b, k] or c.is_sep[b, k])]
        for h in range(heads):
            a = probs[b, h].double()
            rows: dict[str, list[float]] = {name: [] for name in STATS}
            for i in real:
                seg = int(c.segment[b, i])

                def mass(keys: list[int], row: torch.Tensor = a[i]) -> float:
                    return float(sum(row[k] for k in keys))

                rows["cls"].append(mass([k for k in real if c.is_cls[b, k]]))
                rows["sep"].append(mass([k for k in real if c.is_sep[b, k]]))
                rows["sep_first"].append(mass([k for k in real if c.sep_first[b, k]]))
                rows["sep_second"].append(mass([k for k in real if c.sep_second[b, k]]))
                rows["punct"].append(mass([k for k in real if c.is_punct[b, k]]))
                rows["self"].append(float(a[i, i]))
                if i - 1 in real:
                    rows["prev"].append(float(a[i, i - 1]))
                if i + 1 in real:
                    rows["next"].append(float(a[i, i + 1]))
                rows["within_segment"].append(mass([k for k in content if c.segment[b, k] == seg]))
                rows["across_segment"].append(mass([k for k in content if c.segment[b, k] != seg]))
                rows["overlap"].append(
                    mass([k for k in real if c.is_shared[b, k] and c.segment[b, k] != seg])
                )
                rows["entropy"].append(-sum(float(a[i, k] * math.log(a[i, k])) for k in real if a[i, k] > 0))
            for s, name in enumerate(STATS):
                if name in ("sep_second", "across_segment", "overlap") and not c.is_pair[b]:
                    continue
                out[b, h, s] = sum(rows[name]) / len(rows[name])
    return out


def shared_by_loop(ids: torch.Tensor, c: TokenCategories) -> torch.Tensor:
    """(batch, tokens) bool: the content pieces (not punctuation) of a pair whose id a content
    piece of the other segment has too, one pair of positions at a time."""
    out = torch.zeros_like(c.is_real)
    for b in range(ids.shape[0]):
        n = ids.shape[1]
        content = [
            k
            for k in range(n)
            if c.is_real[b, k] and not (c.is_cls[b, k] or c.is_sep[b, k] or c.is_punct[b, k])
        ]
        for k in content:
            out[b, k] = bool(c.is_pair[b]) and any(
                ids[b, j] == ids[b, k] and c.segment[b, j] != c.segment[b, k] for j in content
            )
    return out


def random_inputs(seed: int) -> tuple[torch.Tensor, ...]:
    """Random maps (batch, heads, query, key) over a batch of pairs and single sentences with
    padding, punctuation and repeated ids (few distinct ids, and each pair's first content token
    repeated at the start of its second sentence, so the sentences share some), and the batch's
    ids, segments, attention mask and punctuation (batch, tokens)."""
    generator = torch.Generator().manual_seed(seed)
    lengths, pairs = [9, 7, 5, 9], [True, False, True, False]
    width, heads = max(lengths), 3
    ids = torch.randint(10, 16, (len(lengths), width), generator=generator)  # (batch, tokens)
    segments = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    for b, (length, pair) in enumerate(zip(lengths, pairs, strict=True)):
        ids[b, 0], ids[b, length - 1], ids[b, length:] = CLS, SEP, 0
        mask[b, :length] = 1
        if pair:
            middle = length // 2
            ids[b, middle] = SEP
            segments[b, middle + 1 : length] = 1
    punct = torch.rand(ids.shape, generator=generator) < 0.3  # (batch, tokens)
    for b, (length, pair) in enumerate(zip(lengths, pairs, strict=True)):
        if pair:
            ids[b, length // 2 + 1] = ids[b, 1]
            punct[b, [1, length // 2 + 1]] = False
    scores = torch.randn(len(lengths), heads, width, width, generator=generator) * 2
    scores = scores.masked_fill(~mask.bool()[:, None, None, :], -torch.inf)
    return scores.softmax(dim=-1), ids, segments, mask, punct


def random_batch(seed: int) -> tuple[torch.Tensor, TokenCategories]:
    """Random maps over a batch of pairs and single sentences with padding and punctuation."""
    probs, ids, segments, mask, punct = random_inputs(seed)
    return probs, TokenCategories.from_ids(ids, segments, mask, punct, CLS, SEP)


@pytest.mark.parametrize("seed", [0, 1])
def test_statistics_equal_the_definitions_on_random_maps(seed):
    probs, categories = random_batch(seed)
    got = reduce_attention(probs, Reduction.of(categories)).double()
    torch.testing.assert_close(
        got, reference_statistics(probs, categories), atol=1e-6, rtol=1e-5, equal_nan=True
    )


def test_masses_add_up_to_one():
    probs, categories = random_batch(3)
    stats = stats_dict_array(reduce_attention(probs, Reduction.of(categories)))
    pair = categories.is_pair[:, None]  # (batch, 1)
    total = stats["cls"] + stats["sep"] + stats["within_segment"]
    total = total + torch.where(pair, stats["across_segment"], 0.0)
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-6, rtol=0)
    overlap, across = stats["overlap"][categories.is_pair], stats["across_segment"][categories.is_pair]
    assert bool((overlap >= -1e-6).all()) and bool((overlap <= across + 1e-6).all())  # a part of across


# ---------------------------------------------------------------------------------------------
# Shared tokens and overlap (Sec. 5: words that appear in both sentences)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shared_tokens_and_overlap_equal_loops_on_random_maps(seed):
    probs, ids, segments, mask, punct = random_inputs(seed)
    c = TokenCategories.from_ids(ids, segments, mask, punct, CLS, SEP)
    expected_shared = shared_by_loop(ids, c)
    assert c.is_shared.tolist() == expected_shared.tolist()
    assert bool(c.is_shared.any()) and not bool(c.is_shared[~c.is_pair].any())  # some; none in singles
    got = reduce_attention(probs, Reduction.of(c))[..., STATS.index("overlap")].double()  # (batch, heads)
    expected = torch.full(got.shape, NAN, dtype=torch.float64)
    for b in range(probs.shape[0]):
        real = [i for i in range(probs.shape[2]) if c.is_real[b, i]]
        for h in range(probs.shape[1]):
            per_query = [
                sum(
                    float(probs[b, h, i, k])
                    for k in real
                    if expected_shared[b, k] and segments[b, k] != segments[b, i]
                )
                for i in real
            ]
            if c.is_pair[b]:
                expected[b, h] = sum(per_query) / len(per_query)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert torch.isnan(got[~c.is_pair]).all() and torch.isfinite(got[c.is_pair]).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_padded_batch_gives_the_statistics_of_each_example_alone(seed):
    probs, ids, segments, mask, punct = random_inputs(seed)
    batched = reduce_attention(
        probs, Reduction.of(TokenCategories.from_ids(ids, segments, mask, punct, CLS, SEP))
    )
    for b, n in enumerate(mask.sum(dim=-1).tolist()):
        alone = TokenCategories.from_ids(ids[b:b + 1, :n], segments[b:b + 1, :n], mask[b:b + 1, :n],
                                         punct[b:b + 1, :n], CLS, SEP)  # fmt: skip
        expected = reduce_attention(probs[b : b + 1, :, :n, :n], Reduction.of(alone))[0]  # (heads, stats)
        torch.testing.assert_close(batched[b], expected, rtol=1e-5, atol=1e-6, equal_nan=True)


def tiny_ids(tokenizer, text_a: str, text_b: str | None) -> tuple[list[int], list[int]]:
    encoded = tokenizer(text_a, text_b, return_token_type_ids=True)
    return encoded["input_ids"], encoded["token_type_ids"]


def test_shared_words_and_overlap_of_a_hand_built_pair():
    """[CLS] the cat sat . [SEP] a cat ran . [SEP]: "cat" in both sentences ("." is punctuation),
    and a padded single sentence [CLS] the cat sat . [SEP] with no other segment."""
    tokenizer = tiny_tokenizer()
    pair_ids, pair_types = tiny_ids(tokenizer, "the cat sat .", "a cat ran .")
    single_ids, single_types = tiny_ids(tokenizer, "the cat sat .", None)
    n, m = len(pair_ids), len(single_ids)
    assert (
        " ".join(tokenizer.convert_ids_to_tokens(pair_ids)) == "[CLS] the cat sat . [SEP] a cat ran . [SEP]"
    )
    ids = torch.tensor([pair_ids, single_ids + [0] * (n - m)])  # (2, 11)
    segments = torch.tensor([pair_types, single_types + [0] * (n - m)])
    mask = torch.tensor([[1] * n, [1] * m + [0] * (n - m)])
    punct = ids == tokenizer.convert_tokens_to_ids(".")
    c = TokenCategories.from_ids(ids, segments, mask, punct, tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert c.is_shared.tolist() == [
        [False, False, True, False, False, False, False, True, False, False, False],  # cat, cat
        [False] * n,
    ]
    by_masks = TokenCategories.from_masks(mask, c.is_cls, c.is_sep, punct, segments, torch.ones_like(mask))
    assert by_masks.is_shared.tolist() == [
        [False, *[True] * 3, False, False, *[True] * 3, False, False],
        [False] * n,
    ]
    assert not TokenCategories.from_masks(mask, c.is_cls, c.is_sep, punct, segments).is_shared.any()
    # Head 0 attends one-hot to the second "cat" (position 7), head 1 to the first (position 2).
    probs = torch.zeros(2, 2, n, n)  # (batch, heads, query, key)
    probs[:, 0, :, 7], probs[:, 1, :, 2] = 1.0, 1.0
    probs[1, :, :, :] = 0.0
    probs[1, :, :, 2] = 1.0  # the single sentence: all on its "cat"
    stats = stats_dict_array(reduce_attention(probs, Reduction.of(c)))
    # The 6 queries of segment A ([CLS] the cat sat . [SEP]) see the other "cat" in head 0,
    # the 5 of segment B in head 1.
    assert stats["overlap"][0].tolist() == pytest.approx([6 / 11, 5 / 11], abs=1e-6)
    assert stats["across_segment"][0].tolist() == pytest.approx([6 / 11, 5 / 11], abs=1e-6)
    assert torch.isnan(stats["overlap"][1]).all()


def test_a_shared_word_of_several_pieces_at_word_level():
    """the dogs sat . / a dog ran .: pieces [CLS] the dog ##s sat . [SEP] a dog ran . [SEP]; the piece
    "dog" is shared, "##s" not, so the word "dogs" is shared (one of its pieces is)."""
    tokenizer = pieces_tokenizer()
    table = pl.DataFrame({"row": [0], "text_a": ["the dogs sat ."], "text_b": ["a dog ran ."], "label": [0]})
    tokens = tokenize_table(tokenizer, table, max_length=32, with_words=True)
    assert tokenizer.convert_ids_to_tokens(tokens.encoded.input_ids[0])[2:4] == ["dog", "##s"]
    (batch,) = eval_batches(tokens.encoded, 4, tokenizer.pad_token_id)
    pieces, pooling = batch_categories(tokens, batch), batch_pooling(tokens, batch)
    assert positions(pieces.is_shared[0]) == [2, 8]  # dog, dog
    words = pooling.categories(pieces)
    assert positions(words.is_shared[0]) == [2, 7]  # dogs, dog (words: [CLS] the dogs sat . [SEP] a dog ...)
    n = len(tokens.encoded.input_ids[0])
    probs = torch.zeros(1, 1, n, n)
    probs[..., 3] = 1.0  # every query on "##s"
    piece_stats = stats_dict(reduce_attention(probs, Reduction.of(pieces))[0, 0])
    word_stats = stats_dict(reduce_attention(pooling.pool(probs), Reduction.of(words))[0, 0])
    assert piece_stats["overlap"] == 0.0  # "##s" alone is not shared
    assert word_stats["overlap"] == pytest.approx(5 / 11)  # the 5 words of segment B attend to "dogs"


def positions(mask: torch.Tensor) -> list[int]:
    return mask.nonzero().flatten().tolist()


def stats_dict_array(stats: torch.Tensor) -> dict[str, torch.Tensor]:
    return {name: stats[..., i] for i, name in enumerate(STATS)}


@pytest.mark.parametrize(
    ("token", "expected"),
    [(",", True), ("...", True), ("'", True), ("—", True), ("«", True), ("##", True), ("$", False),
     ("+", False), ("a.", False), ("##s", False), ("[SEP]", False), ("", False)],
)  # fmt: skip
def test_punctuation(token, expected):
    assert is_punctuation(token) is expected


# ---------------------------------------------------------------------------------------------
# Word level
# ---------------------------------------------------------------------------------------------


def test_piece_words_number_the_two_sentences_apart():
    word_ids = [None, 0, 1, 1, 2, None, 0, 0, None]
    sequence_ids = [None, 0, 0, 0, 0, None, 1, 1, None]
    assert piece_words(word_ids, sequence_ids) == [0, 1, 2, 2, 3, 4, 5, 5, 6]


@pytest.fixture
def word_batch() -> tuple[torch.Tensor, TokenCategories, WordPooling]:
    """[CLS] un ##believ ##able , [SEP] [PAD]: words [CLS], unbelievable, ",", [SEP]."""
    ids = torch.tensor([[CLS, 20, 21, 22, 30, SEP, 0]])  # (1, pieces)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])
    punct = torch.tensor([[0, 0, 0, 0, 1, 0, 0]])
    categories = TokenCategories.from_ids(ids, torch.zeros_like(ids), mask, punct, CLS, SEP)
    pooling = WordPooling.from_word_index(torch.tensor([[0, 1, 1, 1, 2, 3, -1]]))
    rows = [
        [1, 0, 0, 0, 0, 0, 0],  # [CLS]
        [0.5, 0.25, 0.25, 0, 0, 0, 0],  # un
        [0, 0.5, 0, 0.5, 0, 0, 0],  # ##believ
        [0, 0, 0, 0, 0.5, 0.5, 0],  # ##able
        [0.25, 0.25, 0.25, 0.25, 0, 0, 0],  # ,
        [0, 0, 0, 0, 0, 1, 0],  # [SEP]
        [0, 0, 0, 0, 0, 0, 1],  # padding: garbage
    ]
    return torch.tensor([[rows]]), categories, pooling  # probs (1, 1, pieces, pieces)


def test_word_pooling_by_hand(word_batch):
    probs, pieces, pooling = word_batch
    words = pooling.pool(probs)  # (1, 1, words, words)
    expected = torch.tensor(
        [
            [1, 0, 0, 0],
            [1 / 6, 1 / 2, 1 / 6, 1 / 6],  # mean of un, ##believ, ##able; sums over key pieces
            [0.25, 0.75, 0, 0],
            [0, 0, 0, 1],
        ]
    )
    torch.testing.assert_close(words[0, 0], expected, atol=1e-7, rtol=0)
    c = pooling.categories(pieces)
    assert c.is_real.tolist() == [[True] * 4]
    assert c.is_cls.tolist() == [[True, False, False, False]]
    assert c.is_sep.tolist() == [[False, False, False, True]]
    assert c.is_punct.tolist() == [[False, False, True, False]]


def test_word_statistics_by_hand(word_batch):
    probs, pieces, pooling = word_batch
    stats = stats_dict(reduce_attention(pooling.pool(probs), Reduction.of(pooling.categories(pieces)))[0, 0])
    assert stats["cls"] == pytest.approx((1 + 1 / 6 + 0.25 + 0) / 4)
    assert stats["self"] == pytest.approx((1 + 1 / 2 + 0 + 1) / 4)
    assert stats["prev"] == pytest.approx((1 / 6 + 0.75 + 0) / 3)
    assert stats["next"] == pytest.approx((0 + 1 / 6 + 0) / 3)
    assert stats["punct"] == pytest.approx((0 + 1 / 6 + 0 + 0) / 4)
    assert stats["within_segment"] == pytest.approx((0 + 2 / 3 + 0.75 + 0) / 4)
    assert math.isnan(stats["sep_second"]) and math.isnan(stats["across_segment"])


# ---------------------------------------------------------------------------------------------
# Through the engine on a tiny BERT whose vocabulary splits "dogs" into dog ##s
# ---------------------------------------------------------------------------------------------


def pieces_tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={w: i for i, w in enumerate([*SPECIALS, *WORDS, "##s"])})


def pieces_model(seed: int = 0) -> BertModel:
    torch.manual_seed(seed)
    config: BertConfig = tiny_config()
    config.vocab_size = len(SPECIALS) + len(WORDS) + 1
    return BertModel(config, add_pooling_layer=False).eval()


def tiny_table(pair: bool) -> pl.DataFrame:
    text_a = ["the dogs sat on the mat .", "a cat ran !", "the dogs , the cats and the birds ran", "dogs"]
    text_b = ["the bird sat .", "not a dog", "dogs ran", "the movie was really good ."]
    return pl.DataFrame(
        {
            "row": [5, 2, 9, 7],
            "text_a": text_a,
            "text_b": text_b if pair else [None] * 4,
            "label": [0, 1, 0, 1],
        },
        schema={"row": pl.Int64, "text_a": pl.String, "text_b": pl.String, "label": pl.Int64},
    )


@pytest.mark.parametrize("level", ["piece", "word"])
@pytest.mark.parametrize("pair", [True, False])
def test_observer_equals_eager_output_attentions(level, pair):
    model, tokenizer = pieces_model(), pieces_tokenizer()
    tokens = tokenize_table(tokenizer, tiny_table(pair), max_length=32, with_words=True)
    assert any(len(set(w)) < len(w) for w in tokens.words), "no multi-piece word in the test data"
    got = statistics_pass(model, tokens, batch_size=3, device="cpu", level=level)  # (examples, L, H, S)
    assert got.shape == (4, model.config.num_hidden_layers, model.config.num_attention_heads, len(STATS))
    model.set_attn_implementation("eager")
    for batch in eval_batches(tokens.encoded, 3, tokenizer.pad_token_id):
        with torch.no_grad():
            attentions = model(**batch.model_inputs(), output_attentions=True).attentions
        categories = batch_categories(tokens, batch)
        pooling = batch_pooling(tokens, batch) if level == "word" else None
        for layer, probs in enumerate(attentions):  # (batch, heads, query, key)
            if pooling is not None:
                expected = reduce_attention(pooling.pool(probs), Reduction.of(pooling.categories(categories)))
            else:
                expected = reduce_attention(probs, Reduction.of(categories))
            np.testing.assert_allclose(
                got[batch.rows, layer], expected.double().numpy(), atol=1e-6, rtol=1e-5
            )
    assert np.isnan(got[..., STATS.index("across_segment")]).all() != pair


# ---------------------------------------------------------------------------------------------
# Drift
# ---------------------------------------------------------------------------------------------


def test_masked_cosine_by_hand():
    # Two real tokens and one padding token; padding cells hold values that would raise the cosine.
    first = torch.tensor([[[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]])  # (1, 1, 3, 3)
    second = torch.tensor([[[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]]])
    is_real = torch.tensor([[True, True, False]])
    # real cells: A = [[.5, .5], [1, 0]], B = [[1, 0], [.5, .5]]: dot 1, |A|^2 = |B|^2 = 1.5
    assert masked_cosine(first, second, is_real).item() == pytest.approx(1 / 1.5, abs=1e-7)


def test_drift_of_a_model_with_itself_is_one_and_with_another_below():
    tokenizer = pieces_tokenizer()
    encoded = encode(tokenizer, tiny_table(pair=True), 32)
    batches = eval_batches(encoded, 3, tokenizer.pad_token_id)
    same = drift_pass(pieces_model(0), pieces_model(0), batches, len(encoded), "cpu")  # (examples, L, H)
    np.testing.assert_allclose(same, 1.0, atol=1e-6, rtol=0)
    other = drift_pass(pieces_model(0), pieces_model(1), batches, len(encoded), "cpu")
    assert np.isfinite(other).all() and (other < 1 - 1e-3).any() and (other <= 1 + 1e-6).all()
    table = drift_table("tiny", "MRPC", other)
    assert table.schema.equals(DRIFT_SCHEMA)
    np.testing.assert_allclose(table["cosine_mean"].to_numpy(), other.mean(axis=0).ravel())


# ---------------------------------------------------------------------------------------------
# Jobs: tables, schemas, order, metadata
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("attention")
    model = write_tiny_model(root / "model")
    glue = write_tiny_glue(root / "glue", tasks=("MRPC",), rows=10)
    dev = root / "dev.parquet"
    table, _ = prepare_split("MRPC", "dev", "local", glue, None, None, 42, None)
    write_table(table, dev)
    return model, dev


@pytest.mark.parametrize(("condition", "level"), [("pretrained", "piece"), ("finetuned", "word")])
def test_stats_job_writes_the_sorted_long_table(tiny_inputs, tmp_path, condition, level):
    from headlab.jobs.attention import AttentionStats, attention_stats  # the job (deferred: it moves)

    model_dir, dev = tiny_inputs
    output = tmp_path / "attention" / f"{condition}.parquet"
    job = AttentionStats(
        model="tiny",
        task="MRPC",
        condition=condition,
        model_entry={"alias": "tiny", "source": "local", "path": str(model_dir)},
        dev=dev,
        checkpoint=model_dir if condition == "finetuned" else None,
        seed=43 if condition == "finetuned" else None,  # the checkpoint's fine-tuning seed
        max_examples=7,
        sample_seed=3,
        batch_size=4,
        level=level,
        max_length=32,
        device="cpu",
        precision="float32",
        table=output,
    )
    attention_stats(job, LOGGER)
    written = pq.read_table(output)
    assert written.schema.equals(STATS_SCHEMA, check_metadata=False)
    table = pl.from_arrow(written)
    layers, heads = 2, 4
    assert table.height == 7 * layers * heads * len(STATS)
    keys = ["example", "layer", "head", "stat"]
    assert table.select(keys).equals(table.select(keys).sort(keys))
    assert table["stat"].unique().sort().to_list() == sorted(STATS)
    sampled = pl.read_parquet(dev)["row"].to_list()
    assert set(table["example"].to_list()) <= set(sampled) and table["example"].n_unique() == 7
    assert set(table["condition"].unique()) == {condition}
    assert table["layer"].min() == 1 and table["head"].max() == heads
    metadata = read_metadata(output)
    assert (metadata["n_examples"], metadata["level"], metadata["sample_seed"]) == (7, level, 3)
    assert metadata["finetune_seed"] == (43 if condition == "finetuned" else None)
    wide = table.pivot(on="stat", index=["example", "layer", "head"], values="value")
    total = wide["cls"] + wide["sep"] + wide["within_segment"] + wide["across_segment"]
    np.testing.assert_allclose(total.to_numpy(), 1.0, atol=1e-5)
    assert not list(output.parent.glob(".*"))


def test_drift_job_of_identical_models(tiny_inputs, tmp_path):
    from headlab.jobs.attention import AttentionDrift, attention_drift  # the job (deferred: it moves)

    model_dir, dev = tiny_inputs
    output = tmp_path / "drift.parquet"
    entry = {"alias": "tiny", "source": "local", "path": str(model_dir)}
    job = AttentionDrift(
        model="tiny",
        task="MRPC",
        model_entry=entry,
        dev=dev,
        checkpoint=model_dir,
        seed=42,
        max_examples=6,
        sample_seed=1,
        batch_size=4,
        max_length=32,
        device="cpu",
        precision="float32",
        table=output,
    )
    attention_drift(job, LOGGER)
    written = pq.read_table(output)
    assert written.schema.equals(DRIFT_SCHEMA, check_metadata=False)
    table = pl.from_arrow(written)
    assert table.select("layer", "head").equals(table.select("layer", "head").sort("layer", "head"))
    np.testing.assert_allclose(table["cosine_mean"].to_numpy(), 1.0, atol=1e-6)
    assert set(table["n_examples"]) == {6}
    assert (read_metadata(output)["sample_seed"], read_metadata(output)["finetune_seed"]) == (1, 42)


def test_chunks_follow_the_row_order_and_a_failed_write_leaves_nothing(tmp_path):
    values = np.arange(3 * 1 * 2 * len(STATS), dtype=np.float64).reshape(3, 1, 2, len(STATS))
    chunks = list(
        statistics_chunks("m", "t", "pretrained", np.array([30, 10, 20]), values, examples_per_chunk=2)
    )
    assert [c.num_rows for c in chunks] == [2 * 2 * len(STATS), 2 * len(STATS)]
    table = pa.concat_tables(chunks)
    assert table["example"].to_pylist()[:: 2 * len(STATS)] == [10, 20, 30]
    assert table["value"][0].as_py() == values[1, 0, 0, 0]

    def failing():
        yield chunks[0]
        raise RuntimeError("interrupted")

    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError):
        write_table_chunks(failing(), STATS_SCHEMA, target)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Figure 5
# ---------------------------------------------------------------------------------------------


def test_figure5(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for task in ("MRPC", "RTE"):
        cosines = rng.uniform(0.5, 1.0, size=(5, 3, 4))  # (examples, layers, heads)
        frames.append(pl.from_arrow(drift_table("tiny", task, cosines)))
    table = pl.concat(frames)
    matrix = drift_matrix(table, "RTE")
    assert matrix.shape == (3, 4)
    assert (
        matrix[2, 1]
        == table.filter((pl.col("task") == "RTE") & (pl.col("layer") == 3) & (pl.col("head") == 2))[
            "cosine_mean"
        ].item()
    )
    assert (cell_label(0.934), cell_label(0.996), cell_label(0.9964, 3)) == (".93", "1.00", ".996")
    plot_drift(table, tmp_path / "figure5.pdf")
    assert (tmp_path / "figure5.pdf").read_bytes().startswith(b"%PDF-")
    assert (tmp_path / "figure5.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
