"""Does the fine-tuned model learn? Each seed's fine-tuned model against two references scored on
the same dev examples, with paired standard errors.

A disabling sweep on a model that did not learn its task says nothing about BERT, so a run says
first whether its fine-tuned models beat

* ``majority``: the best constant prediction on the dev set itself, its most frequent class (the
  smallest label on a tie); for a regression task the dev mean. Chosen on the dev labels, it is
  at least as good as any constant a classifier could learn from the training set, so beating
  it is the harder test;
* ``pretrained``: the same seed's pre-trained encoder with a freshly initialised classifier and no
  fine-tuning (Table 1's first column; rule evaluate's ``pretrained`` condition).

Per example the credit is 1 for a correct class and 0 otherwise (the mean is the accuracy), or
minus the squared error for a regression task (the mean is minus the mean squared error: the
correlations of STS-B have no per-example terms and are undefined for a constant). With
d_i = credit(finetuned)_i - credit(reference)_i over the n dev examples, the difference is
mean(d) and its paired standard error sd(d) / sqrt(n) (ddof 1): the examples are the unit, the
seed's model fixed. ``margin`` is the difference in standard errors (+inf / -inf when every d_i
is the same non-zero number, NaN when every d_i is 0); a seed ``beats`` a reference when the
difference exceeds `SE_MULTIPLE` standard errors. A task ``learns`` when every seed beats both
references.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from headlab.conditions import FINETUNED, PRETRAINED

MAJORITY = "majority"
REFERENCES = (MAJORITY, PRETRAINED)
SE_MULTIPLE = 2.0
ACCURACY = "accuracy"
NEGATIVE_MSE = "neg_mse"
LEARNING_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "task": pl.String(),
    "seed": pl.Int64(),
    "reference": pl.String(),
    "measure": pl.String(),
    "n_examples": pl.Int64(),
    "finetuned": pl.Float64(),
    "reference_value": pl.Float64(),
    "difference": pl.Float64(),
    "paired_se": pl.Float64(),
    "margin": pl.Float64(),
    "beats": pl.Boolean(),
}


def credit(prediction: np.ndarray, label: np.ndarray, regression: bool) -> np.ndarray:
    """Per-example credit: 1.0 / 0.0 for a correct / wrong class, minus the squared error for a
    regression output. (n,) -> (n,)."""
    if regression:
        return -((prediction - label) ** 2)
    return (prediction == label).astype(np.float64)


def constant_prediction(label: np.ndarray, regression: bool) -> float:
    """The best constant on these labels: the mean (regression) or the most frequent class,
    the smallest on a tie."""
    if label.size == 0:
        raise ValueError("no dev examples: the best constant prediction is undefined")
    if regression:
        return float(label.mean())
    classes, counts = np.unique(label, return_counts=True)  # classes sorted ascending
    return float(classes[int(np.argmax(counts))])


def paired_difference(better: np.ndarray, worse: np.ndarray) -> tuple[float, float, float]:
    """(mean difference, paired standard error, margin in standard errors) of two per-example
    credits of the same examples, as the module docstring defines them."""
    if better.shape != worse.shape or better.ndim != 1:
        raise ValueError(f"credits of different examples: shapes {better.shape} and {worse.shape}")
    if better.size < 2:
        raise ValueError(f"{better.size} paired example(s): a standard error needs at least 2")
    d = better - worse  # (n,)
    if not np.isfinite(d).all():
        bad = int((~np.isfinite(d)).sum())
        raise ValueError(f"{bad} non-finite per-example credit(s) (NaN or inf outputs)")
    difference = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    if se > 0:
        margin = difference / se
    elif difference == 0:
        margin = math.nan
    else:
        margin = math.copysign(math.inf, difference)
    return difference, se, margin


def learning_check(predictions: pl.DataFrame, regression_tasks: set[str] | frozenset[str]) -> pl.DataFrame:
    """One row per (model, task, seed, reference) of rule evaluate's predictions (columns model,
    task, seed, condition, example, prediction, label): the fine-tuned model against the
    reference, in LEARNING_SCHEMA. A seed without both conditions, or whose two conditions
    scored different examples, stops with the seed named; so do no predictions at all."""
    if predictions.is_empty():
        raise ValueError("no predictions: the learning check needs rule evaluate's tables")
    rows = []
    groups = predictions.partition_by("model", "task", "seed", as_dict=True)  # one pass over the table
    for (model, task, seed), of_seed in sorted(groups.items()):
        by_condition = {}
        for condition in (FINETUNED, PRETRAINED):
            table = of_seed.filter(pl.col("condition") == condition).sort("example")
            if table.is_empty():
                raise ValueError(f"{model} {task} seed {seed}: no {condition} predictions to compare")
            by_condition[condition] = table
        tuned, plain = by_condition[FINETUNED], by_condition[PRETRAINED]
        if not tuned["example"].equals(plain["example"]):
            raise ValueError(
                f"{model} {task} seed {seed}: {FINETUNED} and {PRETRAINED} scored different examples"
            )
        regression = task in regression_tasks
        label = tuned["label"].to_numpy()  # (n,)
        ours = credit(tuned["prediction"].to_numpy(), label, regression)  # (n,)
        constant = np.full_like(label, constant_prediction(label, regression))  # (n,)
        references = {
            MAJORITY: credit(constant, label, regression),
            PRETRAINED: credit(plain["prediction"].to_numpy(), label, regression),
        }
        for reference in REFERENCES:
            theirs = references[reference]
            try:
                difference, se, margin = paired_difference(ours, theirs)
            except ValueError as error:
                raise ValueError(f"{model} {task} seed {seed} against {reference}: {error}") from None
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "seed": seed,
                    "reference": reference,
                    "measure": NEGATIVE_MSE if regression else ACCURACY,
                    "n_examples": label.size,
                    "finetuned": float(ours.mean()),
                    "reference_value": float(theirs.mean()),
                    "difference": difference,
                    "paired_se": se,
                    "margin": margin,
                    "beats": bool(difference > SE_MULTIPLE * se and difference > 0),
                }
            )
    return pl.DataFrame(rows, schema=LEARNING_SCHEMA)


def task_verdicts(table: pl.DataFrame) -> pl.DataFrame:
    """Per (model, task): seeds, how many beat each reference, and `learns` (every seed beats both)."""
    return (
        table.group_by("model", "task", maintain_order=True)
        .agg(
            pl.col("seed").n_unique().alias("seeds"),
            pl.col("seed")
            .filter((pl.col("reference") == MAJORITY) & pl.col("beats"))
            .n_unique()
            .alias("beat_majority"),
            pl.col("seed")
            .filter((pl.col("reference") == PRETRAINED) & pl.col("beats"))
            .n_unique()
            .alias("beat_pretrained"),
        )
        .with_columns(
            learns=(pl.col("beat_majority") == pl.col("seeds"))
            & (pl.col("beat_pretrained") == pl.col("seeds"))
        )
        .sort("model", "task")
    )


def _points(value: float, measure: str) -> str:
    """Accuracy in percent (one decimal); minus the MSE as it is (three decimals)."""
    return f"{100 * value:.1f}" if measure == ACCURACY else f"{value:.3f}"


def learning_markdown(table: pl.DataFrame) -> str:
    """The check as Markdown: one verdict line per (model, task), then a row per seed and reference."""
    lines = [
        f"Does each fine-tuned model beat the best constant prediction (`{MAJORITY}`: the dev set's "
        f"most frequent class, or its mean for regression) and the pre-trained encoder without "
        f"fine-tuning (`{PRETRAINED}`), by more than {SE_MULTIPLE:g} paired standard errors over the "
        "dev examples? Accuracy in %, or minus the mean squared error for regression.",
        "",
    ]
    for model, task, seeds, majority, pretrained, learns in task_verdicts(table).iter_rows():
        verdict = "learns" if learns else "does **not** clearly learn"
        lines.append(
            f"- {model} on {task}: {verdict}: {majority} of {seeds} seed(s) beat {MAJORITY}, "
            f"{pretrained} of {seeds} beat {PRETRAINED}."
        )
    lines += [
        "",
        "| Model | Task | Seed | Reference | Fine-tuned | Reference value | Difference | Paired SE "
        "| Margin (SE) | Beats |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in table.iter_rows(named=True):
        measure = row["measure"]
        sign = "+" if row["difference"] >= 0 else ""
        lines.append(
            f"| {row['model']} | {row['task']} | {row['seed']} | {row['reference']} | "
            f"{_points(row['finetuned'], measure)} | {_points(row['reference_value'], measure)} | "
            f"{sign}{_points(row['difference'], measure)} | {_points(row['paired_se'], measure)} | "
            f"{row['margin']:.1f} | {'yes' if row['beats'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"
