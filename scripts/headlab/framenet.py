"""FrameNet exemplar sentences for the relation-specific heads of Sec. 4.2 (Figure 3).

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

The corpus is read with NLTK's FramenetCorpusReader by walking ``fn.lus()`` and each LU's
``exemplars``. An LU listed in the index whose file is absent or unreadable is skipped, logged
and counted, never fatal (FrameNet 1.5 as shipped here holds 736 of its 11829 LU files).
NLTK >= 3.9 reads only corpus roots on ``nltk.data.path``, so the corpus folder is added there.

Span alignment to a model's word pieces (`align_spans`) goes through the fast tokenizer's
character offsets, never through string matching. This module imports neither torch nor
transformers (and nltk only inside `framenet_sentences`), so each job environment can use it.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import ParseError

import polars as pl

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Span = tuple[int, int]  # character offsets [start, end), or word-piece positions [first, last + 1)

SENTENCE_COLUMNS: dict[str, Any] = {
    "sentence_id": pl.String,
    "text": pl.String,
    "frame": pl.String,
    "lu": pl.String,
    "fe": pl.String,
    "target_start": pl.Int64,
    "target_end": pl.Int64,
    "fe_start": pl.Int64,
    "fe_end": pl.Int64,
    "n_tokens": pl.Int64,
    "fe_tokens": pl.Int64,
    "distance": pl.Int64,
}

# The filter chain, in order; every count is logged and stored in the Parquet metadata.
COUNT_KEYS = (
    "lus_listed",  # LUs in luIndex.xml
    "lu_files_missing",  # listed, but lu/lu<ID>.xml is absent: skipped
    "lu_files_unreadable",  # present but not parseable: skipped
    "sentences_read",  # annotated exemplar sentences of the readable LU files
    "sentences_with_target",  # with a target (contiguous, possibly multi-word)
    "sentences_with_core_fe",  # ... and at least one overt core frame element
    "sentences_max_tokens",  # ... and at most max_sentence_tokens tokens
    "sentences_fe_max_tokens",  # ... and a core element of at most max_fe_tokens tokens
    "sentences_min_distance",  # ... which is at least min_distance tokens from the target
    "links_core",  # target-core FE links in sentences_with_core_fe
    "links_max_tokens",  # ... of those in sentences of at most max_sentence_tokens tokens
    "links_fe_max_tokens",  # ... with an element of at most max_fe_tokens tokens
    "links_kept",  # ... at least min_distance tokens apart: the rows of the table
    "sentences_kept",  # distinct annotated sentences (sentence_id) among the rows
    "texts_kept",  # distinct sentence texts among the rows
    "sentences_no_target",  # left out: no Target layer
    "sentences_discontinuous_target",  # left out: target pieces with other tokens between them
    "labels_unplaced",  # FE labels whose span covers no token (bad offsets): skipped
)


class FramenetDataError(RuntimeError):
    """A FrameNet folder that cannot be read at all."""


# ---------------------------------------------------------------------------------------------
# Tokens, spans, distances (pure; tested directly)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Reading the corpus
# ---------------------------------------------------------------------------------------------


def corpus_location(corpus_dir: str | None, *parts: str) -> str:
    """Config key framenet.corpus_dir (~ expanded), or a file in it; a clear error when unset."""
    if not corpus_dir:
        raise FramenetDataError(
            "config key framenet.corpus_dir is not set: point it at a FrameNet XML folder, e.g. "
            "~/nltk_data/corpora/framenet_v17 after python -c \"import nltk; nltk.download('framenet_v17')\""
        )
    return str(Path(corpus_dir).expanduser().joinpath(*parts))


def open_framenet(corpus_dir: str | Path) -> Any:
    """NLTK's FramenetCorpusReader on `corpus_dir` (a FrameNet 1.5 or 1.7 XML release folder).

    NLTK >= 3.9 refuses corpus roots outside ``nltk.data.path``; the folder itself is added
    there (once). ``nltk.download('framenet_v17')`` puts FrameNet 1.7 in
    ``~/nltk_data/corpora/framenet_v17``.
    """
    import nltk
    from nltk.corpus.reader.framenet import FramenetCorpusReader

    root = Path(corpus_dir).expanduser().resolve()
    missing = [
        name for name in ("frameIndex.xml", "luIndex.xml", "frame", "lu") if not (root / name).exists()
    ]
    if missing:
        raise FramenetDataError(
            f"{root} is not a FrameNet XML folder: {', '.join(missing)} missing "
            "(get FrameNet 1.7 with nltk.download('framenet_v17'))"
        )
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return FramenetCorpusReader(str(root), [])


@dataclass(frozen=True)
class _Filters:
    max_sentence_tokens: int
    max_fe_tokens: int
    min_distance: int


def _core_elements(frame: Any) -> set[str]:
    return {name for name, fe in frame.FE.items() if fe.coreType == "Core"}


def _sentence_links(
    sentence: Any, lu: Any, core: set[str], filters: _Filters, counts: Counter[str]
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


def _lu_exemplars(
    lu: Any, lu_dir: Path, counts: Counter[str], missing: list[str], logger: logging.Logger
) -> list[Any]:
    """The LU's exemplar sentences, or [] (counted) when its file is missing or unreadable.

    Absent files are listed in `missing` (logged once, in bulk: a partial release lacks thousands).
    """
    from nltk.corpus.reader.framenet import FramenetError

    if not (lu_dir / f"lu{lu.ID}.xml").is_file():
        counts["lu_files_missing"] += 1
        missing.append(f"lu{lu.ID}.xml ({lu.name})")
        return []
    try:
        return list(lu.exemplars)
    except FramenetError as error:  # "Unknown LU id": the reader could not open the file
        counts["lu_files_missing"] += 1
        logger.warning("LU %s (%s) skipped: %s", lu.ID, lu.name, error)
    except (ParseError, OSError, ValueError, KeyError, AssertionError) as error:
        counts["lu_files_unreadable"] += 1
        logger.warning("LU %s (%s) skipped, unreadable: %s: %s", lu.ID, lu.name, type(error).__name__, error)
    return []


def framenet_sentences(
    corpus_dir: str | Path,
    max_sentence_tokens: int = 12,
    max_fe_tokens: int = 3,
    min_distance: int = 2,
    logger: logging.Logger | None = None,
    progress: Any = None,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Target-core FE links of FrameNet's exemplar sentences that pass the paper's filters.

    Returns the links (columns `SENTENCE_COLUMNS`, one row per annotated sentence x core FE
    label, sorted by FrameNet sentence ID, annotation set ID, FE span and name) and the count
    after each filter (`COUNT_KEYS`). `progress`, if given, is a tqdm-like bar advanced per LU.
    """
    logger = logger or logging.getLogger("headlab")
    filters = _Filters(max_sentence_tokens, max_fe_tokens, min_distance)
    fn = open_framenet(corpus_dir)
    lu_dir = Path(corpus_dir).expanduser().resolve() / "lu"
    counts: Counter[str] = Counter({key: 0 for key in COUNT_KEYS})
    lus = sorted(fn.lus(), key=lambda lu: int(lu.ID))
    counts["lus_listed"] = len(lus)
    if progress is not None:
        progress.reset(total=len(lus))
    core_by_frame: dict[str, set[str]] = {}
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for lu in lus:
        for sentence in _lu_exemplars(lu, lu_dir, counts, missing, logger):
            frame = lu.frame
            if frame.name not in core_by_frame:
                core_by_frame[frame.name] = _core_elements(frame)
            rows.extend(_sentence_links(sentence, lu, core_by_frame[frame.name], filters, counts))
        if progress is not None:
            progress.update(1)
    table = _links_table(rows)
    counts["sentences_kept"] = table["sentence_id"].n_unique()
    counts["texts_kept"] = table["text"].n_unique()
    result = {key: int(counts[key]) for key in COUNT_KEYS}
    if missing:
        logger.warning(
            "%d of %d listed LU files are missing and were skipped, e.g. %s",
            len(missing),
            result["lus_listed"],
            ", ".join(missing[:10]),
        )
    for key in COUNT_KEYS:
        logger.info("%-32s %d", key, result[key])
    return table, result


def _links_table(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    schema = {**SENTENCE_COLUMNS, "_sentence": pl.Int64, "_annotation": pl.Int64}
    table = pl.DataFrame(list(rows), schema=schema, orient="row")
    order = ["_sentence", "_annotation", "fe_start", "fe_end", "fe"]
    return table.sort(order).select(list(SENTENCE_COLUMNS))


def framenet_sentences_job(
    corpus_dir: str | Path,
    max_sentence_tokens: int,
    max_fe_tokens: int,
    min_distance: int,
    output: str | Path,
    logger: logging.Logger,
    progress: Any = None,
) -> dict[str, int]:
    """Rule framenet_sentences: the filtered links to Parquet, counts in its metadata."""
    from headlab.parquet_io import write_table

    table, counts = framenet_sentences(
        corpus_dir, max_sentence_tokens, max_fe_tokens, min_distance, logger, progress
    )
    if table.height == 0:
        raise FramenetDataError(f"no FrameNet link in {corpus_dir} passes the filters ({counts})")
    write_table(
        table.to_arrow(),
        output,
        {
            "corpus_dir": str(Path(corpus_dir).expanduser().resolve()),
            "filters": {
                "max_sentence_tokens": max_sentence_tokens,
                "max_fe_tokens": max_fe_tokens,
                "min_distance": min_distance,
            },
            "counts": counts,
            "nltk": _nltk_version(),
        },
    )
    return counts


def _nltk_version() -> str:
    from importlib.metadata import version

    return version("nltk")


# ---------------------------------------------------------------------------------------------
# Character spans -> word pieces
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alignment:
    """One text encoded by a model's tokenizer, with each requested span's word pieces.

    Positions count the whole encoded sequence, so with BERT's ``[CLS] ... [SEP]`` the first
    word piece is at 1. ``pieces[i]`` is [first, last + 1) of the pieces that overlap span i,
    or None when no piece does (a span of whitespace, or cut off by truncation).
    """

    input_ids: list[int]
    token_type_ids: list[int]
    tokens: list[str]
    pieces: list[Span | None]


def align_spans(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    spans: Sequence[Sequence[Span]],
    max_length: int | None = None,
) -> list[Alignment]:
    """Map character spans [start, end) of each text to word-piece positions.

    Uses the fast tokenizer's ``offset_mapping``: a piece belongs to a span when their character
    ranges overlap; special tokens ([CLS], [SEP], offsets (0, 0)) never do. A span's pieces are
    contiguous, so [first, last + 1) describes them.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("align_spans needs a fast tokenizer (return_offsets_mapping)")
    if len(texts) != len(spans):
        raise ValueError(f"{len(texts)} texts but {len(spans)} span lists")
    encoded = tokenizer(
        list(texts),
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_token_type_ids=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    alignments = []
    for i, text_spans in enumerate(spans):
        offsets = encoded["offset_mapping"][i]
        special = encoded["special_tokens_mask"][i]
        pieces: list[Span | None] = []
        for start, end in text_spans:
            hit = [
                p
                for p, ((s, e), is_special) in enumerate(zip(offsets, special, strict=True))
                if not is_special and e > s and s < end and e > start
            ]
            pieces.append((hit[0], hit[-1] + 1) if hit else None)
        alignments.append(
            Alignment(
                input_ids=list(encoded["input_ids"][i]),
                token_type_ids=list(encoded["token_type_ids"][i]),
                tokens=encoded.tokens(i),
                pieces=pieces,
            )
        )
    return alignments
