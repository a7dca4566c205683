"""FrameNet exemplar sentences for the relation-specific heads of Sec. 4.2 (Figure 3): reading the corpus.

The paper links each frame-evoking lexical unit (the *target*) of FrameNet's example sentences
to the *core* frame elements annotated for it, and keeps short elements away from their target
in short sentences; those filters and the definitions they need are
`headlab.data.framenet_filters`. Every count along the filter chain is kept (`COUNT_KEYS`).

The corpus is read with NLTK's FramenetCorpusReader by walking ``fn.lus()`` and each LU's
``exemplars``. An LU listed in the index whose file is absent or unreadable is skipped, logged
and counted, never fatal (FrameNet 1.5 as shipped here holds 736 of its 11829 LU files).
NLTK >= 3.9 reads only corpus roots on ``nltk.data.path``, so the corpus folder is added there.

The links' character spans are aligned to a model's word pieces by
`headlab.data.alignment.align_spans`. This module imports neither torch nor transformers (and
nltk only inside `framenet_sentences`), so each job environment can use it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import polars as pl

from headlab.data.framenet_filters import Filters, core_elements, sentence_links

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
    filters = Filters(max_sentence_tokens, max_fe_tokens, min_distance)
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
                core_by_frame[frame.name] = core_elements(frame)
            rows.extend(sentence_links(sentence, lu, core_by_frame[frame.name], filters, counts))
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
