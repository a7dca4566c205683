"""The GLUE tasks the workflow knows: where their text and labels live, and how they are scored.

Every task is one frozen `TaskSpec` in `TASKS`, keyed by the name configs use ("MRPC", "STS-B",
...). A spec describes both sources of the data:

* the Hugging Face dataset ``nyu-mll/glue`` (``hub_config``, ``hub_text_columns``, and the hub
  split name of each of our splits), and
* the classic GLUE TSV files (``tsv_text_columns``, ``tsv_label_column`` and the file name of each
  split). Columns are named by their header names; for files without a header row (CoLA, and
  the QQP subset in ``shared/data``) the names are resolved through ``tsv_positional_columns``,
  the full column list in file order. CoLA's sentence is therefore "sentence" (position 3) and
  its label "label" (position 1).

``labels`` lists the label strings in the hub's ClassLabel order, so a label's class index is
the same whichever source it came from. For MRPC, SST-2, QQP and CoLA the TSV files write the
class index itself ("0"/"1"), which is why their label strings are "0" and "1".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class UnknownTaskError(ValueError):
    """A task name that is not in `TASKS`."""


@dataclass(frozen=True)
class SplitSpec:
    """Where one of our splits lives: its hub split name and its local TSV file name."""

    hub: str
    file: str


def _splits(dev_hub: str = "validation", dev_file: str = "dev.tsv") -> Mapping[str, SplitSpec]:
    return MappingProxyType(
        {"train": SplitSpec(hub="train", file="train.tsv"), "dev": SplitSpec(hub=dev_hub, file=dev_file)}
    )


@dataclass(frozen=True)
class TaskSpec:
    """One GLUE task. See the module docstring for what each column field refers to."""

    name: str
    hub_config: str
    hub_text_columns: tuple[str, ...]
    tsv_text_columns: tuple[str, ...]
    tsv_label_column: str
    tsv_positional_columns: tuple[str, ...]
    labels: tuple[str, ...]
    is_regression: bool
    metrics: tuple[str, ...]
    primary_metric: str
    splits: Mapping[str, SplitSpec] = field(default_factory=_splits, hash=False)

    def __post_init__(self) -> None:
        problems = _spec_problems(self)
        if problems:
            raise ValueError(f"invalid TaskSpec {self.name!r}: " + "; ".join(problems))

    @property
    def num_labels(self) -> int:
        """Size of the classifier output: 1 for regression, else the number of classes."""
        return 1 if self.is_regression else len(self.labels)

    @property
    def is_pair(self) -> bool:
        """Whether an example is a sentence pair (text_a, text_b) rather than one sentence."""
        return len(self.hub_text_columns) == 2


def _spec_problems(spec: TaskSpec) -> list[str]:
    problems: list[str] = []
    if len(spec.hub_text_columns) not in (1, 2):
        problems.append("hub_text_columns must name 1 or 2 columns")
    if len(spec.tsv_text_columns) != len(spec.hub_text_columns):
        problems.append("tsv_text_columns and hub_text_columns must have the same length")
    needed = (*spec.tsv_text_columns, spec.tsv_label_column)
    missing = [name for name in needed if name not in spec.tsv_positional_columns]
    if missing:
        problems.append(f"tsv_positional_columns lacks {missing}")
    if spec.is_regression == bool(spec.labels):
        problems.append("labels must be empty exactly when the task is a regression")
    if spec.primary_metric not in spec.metrics:
        problems.append(f"primary_metric {spec.primary_metric!r} is not in metrics {spec.metrics}")
    if set(spec.splits) != {"train", "dev"}:
        problems.append("splits must define exactly 'train' and 'dev'")
    return problems


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")

_SPECS = (
    TaskSpec(
        name="MRPC",
        hub_config="mrpc",
        hub_text_columns=("sentence1", "sentence2"),
        tsv_text_columns=("#1 String", "#2 String"),
        tsv_label_column="Quality",
        tsv_positional_columns=("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
        labels=_BINARY,
        is_regression=False,
        metrics=("f1", "accuracy"),
        primary_metric="accuracy",
    ),
    TaskSpec(
        name="STS-B",
        hub_config="stsb",
        hub_text_columns=("sentence1", "sentence2"),
        tsv_text_columns=("sentence1", "sentence2"),
        tsv_label_column="score",
        tsv_positional_columns=(
            "index",
            "genre",
            "filename",
            "year",
            "old_index",
            "source1",
            "source2",
            "sentence1",
            "sentence2",
            "score",
        ),
        labels=(),
        is_regression=True,
        metrics=("pearson", "spearman"),
        primary_metric="pearson",
    ),
    TaskSpec(
        name="SST-2",
        hub_config="sst2",
        hub_text_columns=("sentence",),
        tsv_text_columns=("sentence",),
        tsv_label_column="label",
        tsv_positional_columns=("sentence", "label"),
        labels=_BINARY,
        is_regression=False,
        metrics=("accuracy",),
        primary_metric="accuracy",
    ),
    TaskSpec(
        name="QQP",
        hub_config="qqp",
        hub_text_columns=("question1", "question2"),
        tsv_text_columns=("question1", "question2"),
        tsv_label_column="is_duplicate",
        tsv_positional_columns=("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
        labels=_BINARY,
        is_regression=False,
        metrics=("f1", "accuracy"),
        primary_metric="accuracy",
    ),
    TaskSpec(
        name="RTE",
        hub_config="rte",
        hub_text_columns=("sentence1", "sentence2"),
        tsv_text_columns=("sentence1", "sentence2"),
        tsv_label_column="label",
        tsv_positional_columns=("index", "sentence1", "sentence2", "label"),
        labels=_NLI2,
        is_regression=False,
        metrics=("accuracy",),
        primary_metric="accuracy",
    ),
    TaskSpec(
        name="QNLI",
        hub_config="qnli",
        hub_text_columns=("question", "sentence"),
        tsv_text_columns=("question", "sentence"),
        tsv_label_column="label",
        tsv_positional_columns=("index", "question", "sentence", "label"),
        labels=_NLI2,
        is_regression=False,
        metrics=("accuracy",),
        primary_metric="accuracy",
    ),
    TaskSpec(
        name="MNLI",
        hub_config="mnli",
        hub_text_columns=("premise", "hypothesis"),
        tsv_text_columns=("sentence1", "sentence2"),
        tsv_label_column="gold_label",
        # The dev_matched.tsv layout; train.tsv has label1 only and always carries a header.
        tsv_positional_columns=(
            "index",
            "promptID",
            "pairID",
            "genre",
            "sentence1_binary_parse",
            "sentence2_binary_parse",
            "sentence1_parse",
            "sentence2_parse",
            "sentence1",
            "sentence2",
            "label1",
            "label2",
            "label3",
            "label4",
            "label5",
            "gold_label",
        ),
        labels=("entailment", "neutral", "contradiction"),
        is_regression=False,
        metrics=("accuracy",),
        primary_metric="accuracy",
        splits=_splits(dev_hub="validation_matched", dev_file="dev_matched.tsv"),
    ),
    TaskSpec(
        name="CoLA",
        hub_config="cola",
        hub_text_columns=("sentence",),
        tsv_text_columns=("sentence",),
        tsv_label_column="label",
        tsv_positional_columns=("source", "label", "original_label", "sentence"),
        labels=_BINARY,
        is_regression=False,
        metrics=("matthews",),
        primary_metric="matthews",
    ),
)

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _SPECS}


def get_task(name: str) -> TaskSpec:
    """The spec of task `name` (exact config name, e.g. "STS-B"); `UnknownTaskError` otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        valid = ", ".join(TASKS)
        raise UnknownTaskError(f"unknown GLUE task {name!r}; valid task names: {valid}") from None
