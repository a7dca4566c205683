"""Token categories from the tokenizer, for every encoder family: segments from ``sequence_ids``,
[CLS]/[SEP] by id, punctuation from the original text each piece covers (by offsets).

Three tokenizers built here with the `tokenizers` library (`tiny_families`: BERT's WordPiece,
RoBERTa's byte-level BPE, XLM-R's SentencePiece Unigram) against hand-written expectations on a
pair, then the real attention statistics pass on a tiny random RoBERTa against a hand
computation from its eager attention maps."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch

from headlab.data.segments import model_token_type_ids, segments_from_sequence_ids
from headlab.measure.attention_stats import STATS, batch_categories, statistics_pass, tokenize_table
from headlab.measure.tokens import is_punctuation
from headlab.model.batching import Encoded, collate, encode, eval_batches
from tiny_families import bpe_tokenizer, tiny_roberta, unigram_tokenizer, wordpiece_tokenizer

FAMILIES = {"wordpiece": wordpiece_tokenizer, "bpe": bpe_tokenizer, "unigram": unigram_tokenizer}
PAIR = ("the cat , sat .", "a dog, !")  # "," "." "!" after a space, and a "," glued to its word

# Hand-written: the pieces of PAIR, their segments, and where punctuation, [CLS] and [SEP] are.
EXPECTED = {
    "wordpiece": {
        "tokens": ["[CLS]", "the", "cat", ",", "sat", ".", "[SEP]", "a", "dog", ",", "!", "[SEP]"],
        "segments": [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
        "token_type_ids": [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],  # BERT's own, = segments
        "punct": [3, 5, 9, 10],
        "cls": [0],
        "sep": [6, 11],
    },
    "bpe": {
        "tokens": ["<s>", "the", "Ġcat", "Ġ,", "Ġsat", "Ġ.", "</s>", "</s>", "a", "Ġdog", ",", "Ġ!", "</s>"],
        "segments": [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
        "token_type_ids": [0] * 13,  # RoBERTa has no token types
        "punct": [3, 5, 10, 11],
        "cls": [0],
        "sep": [6, 7, 12],
    },
    "unigram": {
        "tokens": [
            "<s>",
            "▁the",
            "▁cat",
            "▁,",
            "▁sat",
            "▁.",
            "</s>",
            "</s>",
            "▁a",
            "▁dog",
            ",",
            "▁!",
            "</s>",
        ],
        "segments": [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
        "token_type_ids": [0] * 13,
        "punct": [3, 5, 10, 11],
        "cls": [0],
        "sep": [6, 7, 12],
    },
}


def pair_table(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row": list(range(len(pairs))),
            "text_a": [a for a, _ in pairs],
            "text_b": [b for _, b in pairs],
            "label": [0] * len(pairs),
        },
        schema={"row": pl.Int64, "text_a": pl.String, "text_b": pl.String, "label": pl.Int64},
    )


def positions(mask: torch.Tensor) -> list[int]:
    return mask.nonzero().flatten().tolist()


def test_segments_from_sequence_ids_by_hand():
    assert segments_from_sequence_ids([None, 0, 0, None, 1, 1, None]) == [0, 0, 0, 0, 1, 1, 1]  # BERT
    assert segments_from_sequence_ids([None, 0, None, None, 1, None]) == [0, 0, 0, 0, 1, 1]  # RoBERTa
    assert segments_from_sequence_ids([None, None, 0, 0]) == [0, 0, 0, 0]  # specials before content
    assert segments_from_sequence_ids([0, 0, None, 1, None, None]) == [0, 0, 0, 1, 1, 1]  # XLNet's tail
    assert segments_from_sequence_ids([None, 0, None]) == [0, 0, 0]  # one sentence


@pytest.mark.parametrize(
    ("text", "expected"),
    [(",", True), (" , ", True), (" .", True), ("...", True), ("!", True), ("Ġ,", False), ("▁,", False),
     ("$", False), (" ", False), ("", False), ("a,", False)],
)  # fmt: skip
def test_punctuation_of_covered_text(text, expected):
    # The covered text of BPE's Ġ, is "," (or " ,"); its token string "Ġ," is not punctuation.
    assert is_punctuation(text) is expected


@pytest.mark.parametrize("family", list(FAMILIES))
def test_categories_of_a_pair_from_the_tokenizer(family):
    tokenizer, expected = FAMILIES[family](), EXPECTED[family]
    assert tokenizer.is_fast
    encoded = encode(tokenizer, pair_table([PAIR]), max_length=32)
    assert tokenizer.convert_ids_to_tokens(encoded.input_ids[0]) == expected["tokens"]
    assert encoded.segments == [expected["segments"]]
    assert encoded.token_type_ids == [expected["token_type_ids"]]  # the model's input is unchanged

    tokens = tokenize_table(tokenizer, pair_table([PAIR]), max_length=32, with_words=True)
    assert tokens.encoded.input_ids == encoded.input_ids
    assert tokens.encoded.segments == encoded.segments
    assert [p for p, punct in enumerate(tokens.is_punct[0]) if punct] == expected["punct"]
    assert (tokens.cls_id, tokens.sep_id) == (tokenizer.cls_token_id, tokenizer.sep_token_id)

    (batch,) = eval_batches(tokens.encoded, batch_size=4, pad_id=tokenizer.pad_token_id)
    categories = batch_categories(tokens, batch)
    assert categories.segment[0].tolist() == expected["segments"]
    assert positions(categories.is_punct[0]) == expected["punct"]
    assert positions(categories.is_cls[0]) == expected["cls"]
    assert positions(categories.is_sep[0]) == expected["sep"]
    assert positions(categories.sep_first[0]) == expected["sep"][:1]
    assert positions(categories.sep_second[0]) == expected["sep"][-1:]
    assert categories.is_pair.tolist() == [True] and categories.n_segments == 2


def test_missing_token_types_are_zeros_and_slow_tokenizers_are_refused():
    tokenizer = bpe_tokenizer()
    encoding = tokenizer(["the cat"], ["a dog"], return_token_type_ids=False)
    assert "token_type_ids" not in encoding
    assert model_token_type_ids(encoding) == [[0] * 8]  # <s> the Ġcat </s> </s> a Ġdog </s>
    with pytest.raises(ValueError, match="fast tokenizer"):
        tokenize_table(SimpleNamespace(is_fast=False), pair_table([PAIR]), max_length=32)
    no_segments = Encoded([[0, 5, 2]], [[0, 0, 0]], np.zeros(1, dtype=np.int64))  # e.g. a slow tokenizer's
    batch = collate(no_segments, np.array([0]), pad_id=1)
    assert batch.segments is None
    table = tokenize_table(tokenizer, pair_table([PAIR]), max_length=32)
    with pytest.raises(ValueError, match="no segments"):
        batch_categories(table, batch)


# ---------------------------------------------------------------------------------------------
# The attention statistics pass on a tiny random RoBERTa, against its eager attention maps
# ---------------------------------------------------------------------------------------------

PAIRS = [PAIR, ("the dogs ran", "the cat , the dog ."), ("a cat !", "dog")]
# Hand-written categories of PAIRS under the BPE tokenizer (pieces in the comments); shared: the
# content pieces whose id the other sentence has too (by id: "the" and "Ġthe" differ).
HAND = [
    # <s> the Ġcat Ġ, Ġsat Ġ. </s> </s> a Ġdog , Ġ! </s>
    {"segments": [0] * 8 + [1] * 5, "punct": [3, 5, 10, 11], "cls": [0], "sep": [6, 7, 12], "shared": []},
    # <s> the Ġdog s Ġran </s> </s> the Ġcat Ġ, Ġthe Ġdog Ġ. </s>
    {"segments": [0] * 7 + [1] * 7, "punct": [9, 12], "cls": [0], "sep": [5, 6, 13], "shared": [1, 2, 7, 11]},
    # <s> a Ġcat Ġ! </s> </s> dog </s>
    {"segments": [0] * 6 + [1] * 2, "punct": [3], "cls": [0], "sep": [4, 5, 7], "shared": []},
]
CHECKED = (
    "cls",
    "sep",
    "sep_first",
    "sep_second",
    "punct",
    "within_segment",
    "across_segment",
    "overlap",
    "self",
)


def hand_statistics(attention: np.ndarray, hand: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Per head, the means over the real queries of one example's (heads, query, key) map."""
    n = attention.shape[-1]
    segment = np.asarray(hand["segments"])
    special = np.zeros(n, dtype=bool)
    special[hand["cls"] + hand["sep"]] = True
    per_query: dict[str, np.ndarray] = {}
    per_query["cls"] = attention[:, :, hand["cls"]].sum(-1)  # (heads, query)
    per_query["sep"] = attention[:, :, hand["sep"]].sum(-1)
    per_query["sep_first"] = attention[:, :, hand["sep"][0]]
    per_query["sep_second"] = attention[:, :, hand["sep"][-1]]
    per_query["punct"] = attention[:, :, hand["punct"]].sum(-1)
    same = segment[:, None] == segment[None, :]  # (query, key)
    per_query["within_segment"] = (attention * (same & ~special)[None]).sum(-1)
    per_query["across_segment"] = (attention * (~same & ~special)[None]).sum(-1)
    shared = np.zeros(n, dtype=bool)
    shared[hand["shared"]] = True
    per_query["overlap"] = (attention * (~same & shared[None, :])[None]).sum(-1)  # shared keys of the other
    per_query["self"] = np.diagonal(attention, axis1=-2, axis2=-1)
    total = per_query["cls"] + per_query["sep"] + per_query["within_segment"] + per_query["across_segment"]
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-5)  # every real query
    assert (per_query["across_segment"] > 0).all()
    return {name: values.mean(axis=-1) for name, values in per_query.items()}  # (heads,)


def test_statistics_pass_on_a_tiny_roberta_equals_a_hand_computation():
    tokenizer = bpe_tokenizer()
    model = tiny_roberta(len(tokenizer))
    tokens = tokenize_table(tokenizer, pair_table(PAIRS), max_length=32, with_words=True)
    assert tokens.encoded.segments == [h["segments"] for h in HAND]
    assert tokens.encoded.token_type_ids == [[0] * len(h["segments"]) for h in HAND]
    for batch in eval_batches(tokens.encoded, 2, tokenizer.pad_token_id):  # padded as in the pass
        shared = batch_categories(tokens, batch).is_shared
        assert [positions(shared[i]) for i in range(len(batch.rows))] == [
            HAND[r]["shared"] for r in batch.rows
        ]
    got = statistics_pass(model, tokens, batch_size=2, device="cpu", pad_id=tokenizer.pad_token_id)
    assert got.shape == (3, 2, 4, len(STATS))  # (examples, layers, heads, stats)

    for e, (ids, hand) in enumerate(zip(tokens.encoded.input_ids, HAND, strict=True)):
        with torch.no_grad():  # each example alone: no padding, transformers' eager attention
            attentions = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
        for layer, probs in enumerate(attentions):  # (1, heads, query, key)
            expected = hand_statistics(probs[0].double().numpy(), hand)
            for name in CHECKED:
                np.testing.assert_allclose(
                    got[e, layer, :, STATS.index(name)], expected[name], rtol=1e-5, atol=1e-6, err_msg=name
                )
    overlap = got[..., STATS.index("overlap")]  # (examples, layers, heads)
    assert (overlap[1] > 0).all() and (overlap[[0, 2]] == 0).all()  # only example 1 shares pieces

    def stat(values: np.ndarray, name: str) -> np.ndarray:
        return values[..., STATS.index(name)]

    words = statistics_pass(model, tokens, 2, "cpu", level="word", pad_id=tokenizer.pad_token_id)
    for values in (got, words):
        total = stat(values, "cls") + stat(values, "sep") + stat(values, "within_segment")
        total = total + stat(values, "across_segment")
        np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-5)
        assert (stat(values, "across_segment") > 0).all()  # 0 when segments were RoBERTa's token types
        assert (stat(values, "punct")[0] > 0).all()  # "the cat , sat ." : Ġ, and Ġ. are punctuation
        assert np.isfinite(stat(values, "sep_second")).all()
