"""The paper's filters on FrameNet's annotated sentences (Sec. 4.2): tokens, spans, distances, links.

The paper takes FrameNet's example sentences, links each frame-evoking lexical unit (the
*target*) to the *core* frame elements annotated for it, and keeps

* core frame elements of at most 3 tokens,
* sentences of at most 12 tokens ("less likely to evoke multiple frames"),
* links whose two ends are at least 2 tokens apart (so that previous/next-token attention
  cannot explain them).

Definitions used here (the paper leaves them implicit):

* **token**: a maximal run of non-whitespace characters of the sentence text. FrameNet texts
  are pre-tokenised with spaces (``"He was becoming agitated ."`` has 5 tokens).
* a character span **covers** the tokens it overlaps; an FE's length is the number of tokens
  it covers.
* **distance** between the target and an FE: the difference of the indices of their nearest
  tokens, ``fe_first - target_last`` when the FE follows the target, ``target_first - fe_last``
  when it precedes it, 0 when they share a token. Adjacent tokens are at distance 1, so
  ``min_distance=2`` keeps only links with at least one token between their ends.
* **target**: the annotation set's Target layer. A multi-word target whose pieces are separated
  by whitespace only (``a cinch``, ``clear up``) is merged into one span; a target whose pieces
  have other tokens between them (``cleared ... up``) is left out and counted.
* **frame elements**: the labels of the annotation set's first-rank FE layer that have a span
  (null instantiations have none) and whose element has ``coreType == "Core"`` in the frame.
  Each label is its own link (an element annotated twice gives two links). FE layers of rank 2
  and 3 (secondary annotation) are not used.
* **annotated sentence**: one exemplar sentence of one lexical unit (one frame annotation set).
  Its ``sentence_id`` is ``"<FrameNet sentence ID>-<annotation set ID>"``; FrameNet reuses a
  sentence ID when the same sentence is annotated for two targets, the annotation set ID is
  unique.

`sentence_links` applies the filters to one annotated sentence (an NLTK exemplar) and adds to
the counts of `headlab.data.framenet.COUNT_KEYS`.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from headlab.data.alignment import Span


def whitespace_tokens(text: str) -> list[Span]:
    """Character spans [start, end) of the whitespace-separated tokens of `text`."""
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def covered_tokens(tokens: Sequence[Span], span: Span) -> tuple[int, int] | None:
    """(first, last) indices of the tokens that `span` overlaps; None when it overlaps none."""
    start, end = span
    hit = [i for i, (s, e) in enumerate(tokens) if s < end and e > start]
    return (hit[0], hit[-1]) if hit else None


def token_distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Distance between token ranges (first, last): gap between their nearest tokens, 0 if they overlap."""
    if b[0] > a[1]:
        return b[0] - a[1]
    if a[0] > b[1]:
        return a[0] - b[1]
    return 0


def merge_target(tokens: Sequence[Span], pieces: Sequence[Span]) -> Span | None:
    """One character span for a (possibly multi-piece) target; None if the pieces are discontinuous.

    Pieces are merged when each starts in the token after (or within) the previous one's last
    token, i.e. only whitespace separates them.
    """
    ranges = [covered_tokens(tokens, piece) for piece in sorted(pieces)]
    if not ranges or any(r is None for r in ranges):
        return None
    placed = [r for r in ranges if r is not None]
    for previous, current in itertools.pairwise(placed):
        if current[0] > previous[1] + 1:
            return None
    ordered = sorted(pieces)
    return (ordered[0][0], max(end for _, end in ordered))


@dataclass(frozen=True)
class Filters:
    """The paper's three thresholds (config keys framenet.*)."""

    max_sentence_tokens: int
    max_fe_tokens: int
    min_distance: int


def core_elements(frame: Any) -> set[str]:
    """Names of the frame's elements with ``coreType == "Core"``."""
    return {name for name, fe in frame.FE.items() if fe.coreType == "Core"}


def sentence_links(
    sentence: Any, lu: Any, core: set[str], filters: Filters, counts: Counter[str]
) -> list[dict[str, Any]]:
    """The kept rows of one annotated sentence; updates the filter counts."""
    counts["sentences_read"] += 1
    annotation = sentence.get("frameAnnotation")
    if annotation is None or not sentence.get("Target"):
        counts["sentences_no_target"] += 1
        return []
    text: str = sentence.text
    tokens = whitespace_tokens(text)
    target = merge_target(tokens, sentence.Target)
    if target is None:
        counts["sentences_discontinuous_target"] += 1
        return []
    counts["sentences_with_target"] += 1
    target_tokens = covered_tokens(tokens, target)
    assert target_tokens is not None  # merge_target placed every piece
    links = []
    overt = sentence.FE[0] if sentence.get("FE") else []
    for start, end, name in overt:
        if name not in core:
            continue
        fe_tokens = covered_tokens(tokens, (start, end))
        if fe_tokens is None:
            counts["labels_unplaced"] += 1
            continue
        links.append((start, end, name, fe_tokens))
    if not links:
        return []
    counts["sentences_with_core_fe"] += 1
    counts["links_core"] += len(links)
    if len(tokens) > filters.max_sentence_tokens:
        return []
    counts["sentences_max_tokens"] += 1
    counts["links_max_tokens"] += len(links)
    short = [link for link in links if link[3][1] - link[3][0] + 1 <= filters.max_fe_tokens]
    if not short:
        return []
    counts["sentences_fe_max_tokens"] += 1
    counts["links_fe_max_tokens"] += len(short)
    rows = []
    for start, end, name, fe_tokens in short:
        distance = token_distance(target_tokens, fe_tokens)
        if distance < filters.min_distance:
            continue
        rows.append(
            {
                "sentence_id": f"{sentence.ID}-{annotation.ID}",
                "text": text,
                "frame": lu.frame.name,
                "lu": lu.name,
                "fe": name,
                "target_start": target[0],
                "target_end": target[1],
                "fe_start": start,
                "fe_end": end,
                "n_tokens": len(tokens),
                "fe_tokens": fe_tokens[1] - fe_tokens[0] + 1,
                "distance": distance,
                "_sentence": int(sentence.ID),
                "_annotation": int(annotation.ID),
            }
        )
    if rows:
        counts["sentences_min_distance"] += 1
        counts["links_kept"] += len(rows)
    return rows
