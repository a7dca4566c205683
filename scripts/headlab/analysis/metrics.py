"""GLUE metrics with numpy and scipy only.

Every metric takes `(pred, gold)` array-likes of equal, non-zero length and returns a plain
``float``. Accuracy and F1 are fractions in [0, 1], not percentages. Classification metrics
expect class indices (see `predictions_from_logits`); correlations expect floats.

Degenerate cases, chosen to match scikit-learn with ``zero_division=0``:

* `f1_binary` is 0.0 when precision + recall == 0 (no true positive), including the case of no
  positive predicted and none gold.
* `matthews` is 0.0 when the coefficient is undefined (a constant prediction or constant gold).
* `pearson` and `spearman` are NaN when either input is constant (the correlation is undefined;
  this is what scipy returns, without its warning).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from scipy import stats

Metric = Callable[[npt.ArrayLike, npt.ArrayLike], float]

# Short labels as the paper prints them (Table 1 "F1/Acc", figure panel titles).
METRIC_LABELS: dict[str, str] = {
    "accuracy": "Acc",
    "f1": "F1",
    "pearson": "Pearson",
    "spearman": "Spearman",
    "matthews": "MCC",
}


def metric_label(name: str) -> str:
    """The paper-style label of a metric name; unknown names are returned unchanged."""
    return METRIC_LABELS.get(name, name)


def _pair(pred: npt.ArrayLike, gold: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as 1-D arrays of the same non-zero length, or a ValueError."""
    p = np.asarray(pred).reshape(-1)
    g = np.asarray(gold).reshape(-1)
    if p.shape != g.shape:
        raise ValueError(f"predictions and gold differ in length: {p.shape[0]} != {g.shape[0]}")
    if p.size == 0:
        raise ValueError("metrics need at least one example")
    return p, g


def accuracy(pred: npt.ArrayLike, gold: npt.ArrayLike) -> float:
    """Fraction of exact matches."""
    p, g = _pair(pred, gold)
    return float(np.mean(p == g))


def f1_binary(pred: npt.ArrayLike, gold: npt.ArrayLike, positive: int = 1) -> float:
    """F1 of the class `positive`: 2·TP / (2·TP + FP + FN), and 0.0 when TP == 0."""
    p, g = _pair(pred, gold)
    tp = int(np.sum((p == positive) & (g == positive)))
    fp = int(np.sum((p == positive) & (g != positive)))
    fn = int(np.sum((p != positive) & (g == positive)))
    if tp == 0:
        return 0.0
    return 2.0 * tp / (2.0 * tp + fp + fn)


def _correlation(pred: npt.ArrayLike, gold: npt.ArrayLike, kind: str) -> float:
    p, g = _pair(pred, gold)
    p = p.astype(np.float64)
    g = g.astype(np.float64)
    if p.size < 2 or np.all(p == p[0]) or np.all(g == g[0]):
        return float("nan")
    if kind == "pearson":
        return float(stats.pearsonr(p, g).statistic)
    return float(stats.spearmanr(p, g).statistic)


def pearson(pred: npt.ArrayLike, gold: npt.ArrayLike) -> float:
    """Pearson's r (scipy.stats.pearsonr); NaN when either input is constant."""
    return _correlation(pred, gold, "pearson")


def spearman(pred: npt.ArrayLike, gold: npt.ArrayLike) -> float:
    """Spearman's rho (scipy.stats.spearmanr); NaN when either input is constant."""
    return _correlation(pred, gold, "spearman")


def matthews(pred: npt.ArrayLike, gold: npt.ArrayLike) -> float:
    """Matthews correlation coefficient (multiclass R_K form); 0.0 when undefined.

    With confusion matrix C (rows gold, columns predicted), t = row sums, p = column sums,
    c = trace and s = total: MCC = (c·s − t·p) / sqrt((s² − p·p)(s² − t·t)). For two classes
    this equals (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)).
    """
    p, g = _pair(pred, gold)
    classes, codes = np.unique(np.concatenate([g, p]), return_inverse=True)
    k = classes.size
    confusion = np.zeros((k, k), dtype=np.float64)
    np.add.at(confusion, (codes[: g.size], codes[g.size :]), 1.0)
    t = confusion.sum(axis=1)
    q = confusion.sum(axis=0)
    c = np.trace(confusion)
    s = confusion.sum()
    denominator = (s * s - q @ q) * (s * s - t @ t)
    if denominator == 0.0:
        return 0.0
    return float((c * s - t @ q) / np.sqrt(denominator))


METRICS: dict[str, Metric] = {
    "accuracy": accuracy,
    "f1": f1_binary,
    "pearson": pearson,
    "spearman": spearman,
    "matthews": matthews,
}


def compute_metrics(names: Sequence[str], predictions: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Each named metric of `predictions` against `gold`, in the order of `names`.

    `predictions` are class indices for classification tasks and floats for regression.
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    return {name: METRICS[name](predictions, gold) for name in names}


def predictions_from_logits(logits: np.ndarray, is_regression: bool) -> np.ndarray:
    """Class indices (argmax over labels) or, for regression, the single output column.

    `logits` has shape (n, num_labels). A regression head must have exactly one output; any
    other width raises, since taking column 0 of a classifier would silently be wrong.
    """
    array = np.asarray(logits)
    if array.ndim != 2:
        raise ValueError(f"logits must have shape (n, num_labels), got {array.shape}")
    if is_regression:
        if array.shape[1] != 1:
            raise ValueError(f"regression logits must have one column, got {array.shape[1]}")
        return array[:, 0].astype(np.float64)
    return np.argmax(array, axis=1)
