"""Table 1 of the paper: GLUE dev scores under three initialisation / training conditions.

Input is a tidy scores table with one row per (model, task, seed, condition, metric):

    model, task, seed (fine-tuning seed), condition, metric, value (fraction), n_examples

where `condition` is one of `headlab.conditions.CONDITIONS` (its columns, in that order):

* ``pretrained``: the pre-trained encoder with a freshly initialised classifier, no fine-tuning;
* ``scratch``: fine-tuned from random (normal) initialisation;
* ``finetuned``: fine-tuned from the pre-trained weights.

`table1` returns one row per (model, task): models sorted by name, tasks in the order of the
`task_metrics` mapping. Scores are percentages with one decimal, the mean over seeds ± their
sample standard deviation (none with one seed), several metrics joined by "/" in the order
`task_metrics` gives (MRPC f1 0.879 ± 0.012, accuracy 0.823 ± 0.008 -> "87.9 ± 1.2/82.3 ± 0.8");
a condition with no rows at all for that (model, task) is shown as `MISSING`.

Seeds: each condition's cell is over the seeds that condition has scores for, counted in
`n_<condition>` (n_pretrained, n_scratch, n_finetuned; 0 for MISSING): the scratch condition may
be fine-tuned for fewer seeds (finetune.scratch_seeds). `n_seeds` counts the row's seeds (any
condition). In the Markdown, a cell over fewer seeds than the row's says its own n ("52.7 (n=1)").
The files are written by the job through `headlab.io.text`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import polars as pl

from headlab.analysis.metrics import metric_label
from headlab.conditions import CONDITIONS, FINETUNED, PRETRAINED, SCRATCH

MISSING = "–"
SCORE_COLUMNS = ("model", "task", "seed", "condition", "metric", "value", "n_examples")
TABLE1_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "metric": pl.String(),
    PRETRAINED: pl.String(),
    SCRATCH: pl.String(),
    FINETUNED: pl.String(),
    "n_dev": pl.Int64(),
    "n_seeds": pl.Int64(),
    **{f"n_{condition}": pl.Int64() for condition in CONDITIONS},  # seeds behind each cell
}
MARKDOWN_HEADERS: dict[str, str] = {
    "model": "Model",
    "task": "Dataset",
    PRETRAINED: "Pre-trained",
    SCRATCH: "Fine-tuned, init. normal distr.",
    FINETUNED: "Fine-tuned, init. pre-trained",
    "metric": "Metric",
    "n_dev": "Dev size",
    "n_seeds": "Seeds",
}
CAPTION = (
    "Table 1: GLUE task performance (%, validation data) with different initialisation. "
    "Pre-trained: pre-trained encoder with a freshly initialised classifier and no fine-tuning; "
    "Fine-tuned, init. normal distr.: fine-tuned from random (normal) initialisation; "
    "Fine-tuned, init. pre-trained: fine-tuned from the pre-trained weights. "
    "Mean ± sample standard deviation over the fine-tuning seeds (Seeds: how many; a cell over "
    "fewer seeds gives its own n)."
)


def format_mean_sd(per_metric: Sequence[Sequence[float]]) -> str:
    """Each metric's values over seeds as "mean ± sd" in percent (one decimal; the mean alone for
    one seed), joined by '/': ((0.87, 0.89), (0.82, 0.83)) -> '88.0 ± 1.4/82.5 ± 0.7'."""
    cells = []
    for values in per_metric:
        finite = [v for v in values if not math.isnan(v)]
        if len(finite) < len(values) or not finite:
            cells.append("nan")
            continue
        mean = sum(finite) / len(finite)
        if len(finite) == 1:
            cells.append(f"{100.0 * mean:.1f}")
            continue
        sd = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
        cells.append(f"{100.0 * mean:.1f} ± {100.0 * sd:.1f}")
    return "/".join(cells)


def _check_scores(scores: pl.DataFrame, task_metrics: Mapping[str, Sequence[str]]) -> None:
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores table lacks column(s) {missing}")
    unknown = sorted(set(scores["condition"].unique().to_list()) - set(CONDITIONS))
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; expected {list(CONDITIONS)}")
    extra = sorted(set(scores["task"].unique().to_list()) - set(task_metrics))
    if extra:
        raise ValueError(f"task(s) {extra} have scores but no entry in task_metrics")
    duplicated = scores.filter(pl.struct("model", "task", "seed", "condition", "metric").is_duplicated())
    if duplicated.height:
        first = duplicated.row(0, named=True)
        raise ValueError(
            f"duplicate scores for model {first['model']!r}, task {first['task']!r}, seed {first['seed']}, "
            f"condition {first['condition']!r}, metric {first['metric']!r}"
        )


def _condition_cell(rows: pl.DataFrame, task: str, condition: str, metrics: Sequence[str]) -> str:
    """The formatted scores of one (model, task, condition), or MISSING when it has no rows."""
    if rows.height == 0:
        return MISSING
    seeds = sorted(rows["seed"].unique().to_list())
    by_metric: dict[str, list[float]] = {}
    for metric in metrics:
        values = rows.filter(pl.col("metric") == metric).sort("seed")
        if values["seed"].to_list() != seeds:
            raise ValueError(
                f"task {task!r}, condition {condition!r}: metric {metric!r} has scores for seeds "
                f"{values['seed'].to_list()}, not for every seed {seeds}"
            )
        by_metric[metric] = [float(v) for v in values["value"].to_list()]
    return format_mean_sd([by_metric[m] for m in metrics])


def _n_dev(rows: pl.DataFrame, model: str, task: str) -> int:
    sizes = rows["n_examples"].unique().to_list()
    if len(sizes) != 1:
        raise ValueError(f"model {model!r}, task {task!r}: inconsistent n_examples {sorted(sizes)}")
    return int(sizes[0])


def _table1_row(rows: pl.DataFrame, model: str, task: str, metrics: Sequence[str]) -> dict[str, object]:
    row: dict[str, object] = {
        "model": model,
        "task": task,
        "metric": "/".join(metric_label(m) for m in metrics),
    }
    counts: dict[str, int] = {}
    for condition in CONDITIONS:
        subset = rows.filter(pl.col("condition") == condition)
        row[condition] = _condition_cell(subset, task, condition, metrics)
        counts[f"n_{condition}"] = subset["seed"].n_unique()
    row["n_dev"] = _n_dev(rows.filter(pl.col("metric").is_in(list(metrics))), model, task)
    row["n_seeds"] = rows["seed"].n_unique()
    return row | counts


def table1(scores: pl.DataFrame, task_metrics: Mapping[str, Sequence[str]]) -> pl.DataFrame:
    """One row per (model, task) with the paper's formatted scores for each condition.

    Columns: model, task, metric ("F1/Acc", "Acc", "Pearson/Spearman", ...), one per condition
    (pretrained, scratch, finetuned: strings like "87.9/82.3"), n_dev, n_seeds (the row's seeds)
    and the seeds of each condition's cell (n_pretrained, n_scratch, n_finetuned).
    """
    _check_scores(scores, task_metrics)
    rows: list[dict[str, object]] = []
    for model in sorted(scores["model"].unique().to_list()):
        of_model = scores.filter(pl.col("model") == model)
        for task, metrics in task_metrics.items():
            of_task = of_model.filter(pl.col("task") == task)
            if of_task.height:
                rows.append(_table1_row(of_task, model, task, list(metrics)))
    return pl.DataFrame(rows, schema=TABLE1_SCHEMA)


def _markdown_cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def _with_own_n(table: pl.DataFrame) -> pl.DataFrame:
    """Each condition's cell followed by " (n=k)" where it is over fewer seeds than its row
    (and is not MISSING)."""
    return table.with_columns(
        [
            pl.when((pl.col(f"n_{c}") < pl.col("n_seeds")) & (pl.col(f"n_{c}") > 0))
            .then(pl.format("{} (n={})", pl.col(c), pl.col(f"n_{c}")))
            .otherwise(pl.col(c))
            .alias(c)
            for c in CONDITIONS
            if c in table.columns and f"n_{c}" in table.columns
        ]
    )


def table1_markdown(table: pl.DataFrame) -> str:
    """The caption line, a blank line and a pipe table in the paper's column order; a cell over
    fewer seeds than its row says its n."""
    table = _with_own_n(table)
    columns = [c for c in MARKDOWN_HEADERS if c in table.columns]
    lines = [
        CAPTION,
        "",
        "| " + " | ".join(MARKDOWN_HEADERS[c] for c in columns) + " |",
        "| " + " | ".join("---:" if c == "n_dev" else "---" for c in columns) + " |",
    ]
    for row in table.select(columns).iter_rows():
        lines.append("| " + " | ".join(_markdown_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
