"""Feature flags and token-to-token relations of parsed tokens (Sec. 4.4, 4.5): pure rules, no spaCy.

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
from typing import Any

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
    """The flags of one token, keyed as `headlab.data.linguistic.TOKEN_FEATURES`."""
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
RELATIONS = tuple(RELATION_PAIRS)  # the order of the relation axis of the feature tables
