"""The Hugging Face dataset ``nyu-mll/glue`` -> the normalised table (`read_hub_dataset`).

Loading never waits long for a hub that cannot be reached: with ``HF_HUB_OFFLINE`` or
``HF_DATASETS_OFFLINE`` set, only the datasets cache is read; otherwise one short request
(`hub_unreachable`, a few seconds) comes first, and when it gets no answer the cache is read in
offline mode instead of letting ``datasets`` retry for half a minute. A split that cannot be had
fails at once with `unreachable_message`: connect, or use a local GLUE folder. `start_problem`
makes the same decision before any job starts (rule prepare_task's input function), so a run
that cannot get its data stops once, while the jobs are planned.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from headlab.data.glue_table import GlueDataError, RowBuffer, SkippedLine, clean_texts, split_spec
from headlab.data.tasks import TaskSpec

HUB_DATASET = "nyu-mll/glue"
# The variables that put datasets and huggingface_hub in offline mode (the cache only).
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
PROBE_SECONDS = 5.0

LOGGER = logging.getLogger(__name__)


class HubDataset(Protocol):
    """What `normalise_hub_dataset` needs of a `datasets.Dataset`."""

    @property
    def column_names(self) -> list[str]: ...

    def __getitem__(self, key: str) -> Iterable[Any]: ...

    def __len__(self) -> int: ...


def _hub_label(raw: Any, task: TaskSpec) -> int | float | str:
    """The label value of a hub label cell, or the reason it is invalid."""
    if task.is_regression:
        valid = isinstance(raw, Real) and not isinstance(raw, bool) and math.isfinite(raw)
        return float(raw) if valid else f"score {raw!r} is not a finite number"
    if isinstance(raw, Integral) and not isinstance(raw, bool) and 0 <= raw < task.num_labels:
        return int(raw)
    return f"label {raw!r} is not a class index in 0..{task.num_labels - 1}"


def read_hub_dataset(dataset: HubDataset, task: TaskSpec) -> tuple[pl.DataFrame, list[SkippedLine]]:
    """Map a ``nyu-mll/glue`` dataset of `task` into the normalised table, plus its skipped rows.

    ``row`` is the dataset's ``idx`` column (0..n-1 when absent); a skipped row's ``line`` is
    that row id. Texts are stripped like TSV texts; rows with an empty text or a label outside
    the task's classes (e.g. the -1 of unlabelled test splits) are skipped. Raises
    `GlueDataError` when a needed column is missing.
    """
    names = list(dataset.column_names)
    missing = [name for name in (*task.hub_text_columns, "label") if name not in names]
    if missing:
        raise GlueDataError(f"hub dataset for GLUE {task.name} lacks columns {missing}; it has {names}")
    texts = [list(dataset[name]) for name in task.hub_text_columns]
    labels = list(dataset["label"])
    ids = [int(i) for i in dataset["idx"]] if "idx" in names else list(range(len(labels)))
    rows, skipped = RowBuffer(), []
    for position, row in enumerate(ids):
        parsed = _hub_example([column[position] for column in texts], labels[position], task)
        if isinstance(parsed, str):
            skipped.append(SkippedLine(row, parsed))
        else:
            rows.add(row, *parsed)
    return rows.frame(task), skipped


def _hub_example(raw_texts: Sequence[Any], raw_label: Any, task: TaskSpec) -> tuple[list[str], Any] | str:
    if not all(isinstance(text, str) for text in raw_texts):
        return "text is not a string"
    texts = clean_texts(raw_texts, task.hub_text_columns)
    if isinstance(texts, str):
        return texts
    label = _hub_label(raw_label, task)
    return label if isinstance(label, str) else (texts, label)


def normalise_hub_dataset(dataset: HubDataset, task: TaskSpec) -> pl.DataFrame:
    """The normalised table of a hub dataset; skipped rows are logged (see `read_hub_dataset`)."""
    frame, skipped = read_hub_dataset(dataset, task)
    if skipped:
        LOGGER.warning("%s: skipped %d hub rows, first: %s", task.name, len(skipped), skipped[0])
    return frame


def offline_variables() -> list[str]:
    """The offline variables set to a true value (1, ON, YES, TRUE) in the environment."""
    return [
        name
        for name in OFFLINE_VARIABLES
        if os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    ]


def hub_unreachable(timeout: float = PROBE_SECONDS) -> str | None:
    """Why the hub (``HF_ENDPOINT``, through the environment's proxy) gave no answer within
    `timeout` seconds; None when it answered (any HTTP status counts as an answer)."""
    import httpx  # a dependency of huggingface_hub
    from huggingface_hub import constants

    url = f"{constants.ENDPOINT}/api/datasets/{HUB_DATASET}"
    outcome: dict[str, str | None] = {}

    def probe() -> None:
        try:
            httpx.head(url, timeout=timeout, follow_redirects=False)
            outcome["error"] = None
        except Exception as error:  # DNS, refused, timeout, TLS, proxy: all mean no answer
            outcome["error"] = f"{type(error).__name__}: {error}"

    # A thread bounds the name lookup too, which httpx's timeout does not cover.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return outcome.get("error", f"no answer from {url} within {timeout:g} s")


@contextmanager
def offline_mode() -> Iterator[None]:
    """datasets and huggingface_hub in offline mode (the cache only, no retries) for the block."""
    import datasets
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def unreachable_message(task: TaskSpec, split: str, why: str) -> str:
    """What to do when `split` of `task` cannot be had from the hub or the datasets cache."""
    return (
        f"cannot read GLUE {task.name} {split} from the Hugging Face hub ({HUB_DATASET}, config "
        f"{task.hub_config!r}): {why}, and the datasets cache holds no copy of it. Two ways on: connect "
        "this machine to the internet (with HF_HUB_OFFLINE and HF_DATASETS_OFFLINE unset) and run again; "
        "or point data.local_dir at a GLUE folder in the glue_data/<TASK>/{train,dev}.tsv layout "
        "(MNLI: dev_matched.tsv), with data.source: local or auto "
        "(make quick GLUE_DIR=/path/to/glue_data does this for the quick run)"
    )


def offline_reason() -> str | None:
    """Why only the datasets cache can be read: an offline variable is set, or the hub gave no
    answer to `hub_unreachable`; None when the hub answered."""
    flags = offline_variables()
    if flags:
        return f"offline mode is on ({', '.join(f'{name}=1' for name in flags)})"
    unreachable = hub_unreachable()
    return None if unreachable is None else f"the hub cannot be reached ({unreachable})"


def cached_copies() -> list[Path]:
    """The folders of the Hugging Face caches (hub files, built datasets) that hold nyu-mll/glue."""
    from huggingface_hub import constants

    datasets_cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets")
    places = [Path(constants.HF_HUB_CACHE) / "datasets--nyu-mll--glue", datasets_cache / "nyu-mll___glue"]
    return [place for place in places if place.exists()]


@functools.cache
def start_problem() -> str | None:
    """Before any job: why the hub cannot serve GLUE here (`offline_reason`, when no cache holds
    a copy either), or None. Probed once per process: the Snakemake process that plans the jobs."""
    if cached_copies():
        return None  # the job reads the cache (and says so if that fails)
    return offline_reason()


def load_hub_dataset(task: TaskSpec, split: str, revision: str | None) -> HubDataset:
    """`split` of `task` from the hub (or the datasets cache); a failure is a `GlueDataError`.

    Offline (an offline variable set, or the hub unreachable by `hub_unreachable`) only the
    cache is read, so the failure comes within seconds and says how to get the data.
    """
    import datasets  # deferred: a heavy import that local runs do not need

    hub_name = split_spec(task, split).hub
    why = offline_reason()
    try:
        if why is None:
            return datasets.load_dataset(HUB_DATASET, task.hub_config, split=hub_name, revision=revision)
        LOGGER.warning("%s; reading %s from the datasets cache only", why, HUB_DATASET)
        with offline_mode():
            return datasets.load_dataset(HUB_DATASET, task.hub_config, split=hub_name, revision=revision)
    except Exception as error:
        if why is not None or isinstance(error, ConnectionError):
            reason = why or f"the hub cannot be reached ({error})"
            raise GlueDataError(unreachable_message(task, split, reason)) from error
        raise GlueDataError(
            f"could not load {HUB_DATASET} config {task.hub_config!r} split {hub_name!r} "
            f"(revision {revision or 'default'}): {error}"
        ) from error
