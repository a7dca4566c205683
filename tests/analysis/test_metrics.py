"""GLUE metrics against hand-computed answers, degenerate cases, and scikit-learn (a dev dependency)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as skm

from headlab.analysis.metrics import (
    METRICS,
    accuracy,
    compute_metrics,
    f1_binary,
    matthews,
    metric_label,
    pearson,
    predictions_from_logits,
    spearman,
)

# pred vs gold: TP = 3 (0, 3, 5), FP = 1 (1), FN = 1 (4), TN = 1 (2).
PRED = np.array([1, 1, 0, 1, 0, 1])
GOLD = np.array([1, 0, 0, 1, 1, 1])


def test_accuracy_by_hand() -> None:
    assert accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert accuracy(PRED, GOLD) == pytest.approx(4 / 6)
    assert accuracy([2, 2], [2, 2]) == 1.0


def test_f1_by_hand() -> None:
    # precision 3/4, recall 3/4
    assert f1_binary(PRED, GOLD) == pytest.approx(0.75)
    # TP 1, FP 0, FN 2: precision 1, recall 1/3 -> 2 * (1/3) / (4/3) = 0.5
    assert f1_binary([1, 0, 0, 0], [1, 1, 1, 0]) == pytest.approx(0.5)


def test_f1_other_positive_class() -> None:
    # class 0 positive: TP 1 (3), FP 2 (1, 2), FN 0 -> 2 / (2 + 2) = 0.5
    assert f1_binary([1, 0, 0, 0], [1, 1, 1, 0], positive=0) == pytest.approx(0.5)


def test_f1_degenerate_cases_are_zero() -> None:
    assert f1_binary([0, 0, 0], [0, 0, 0]) == 0.0  # nothing positive anywhere
    assert f1_binary([0, 0, 0], [1, 0, 1]) == 0.0  # no positive predicted
    assert f1_binary([1, 1, 0], [0, 0, 0]) == 0.0  # no positive gold


def test_pearson_by_hand() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert pearson(2.0 * x + 3.0, x) == pytest.approx(1.0)
    assert pearson(-x, x) == pytest.approx(-1.0)
    # deviations (-1, 0, 1) and (-1, 1, 0): cov 1, variances 2 and 2 -> 0.5
    assert pearson([1.0, 3.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(0.5)


def test_spearman_by_hand() -> None:
    x = np.array([0.1, 0.5, 1.0, 2.0, 4.0])
    assert spearman(np.exp(x), x) == pytest.approx(1.0)  # monotone, not linear
    assert pearson(np.exp(x), x) < 1.0
    assert spearman(-(x**3), x) == pytest.approx(-1.0)
    # ranks (1, 3, 2) vs (1, 2, 3): same as Pearson on ranks = 0.5
    assert spearman([10.0, 30.0, 20.0], [1.0, 2.0, 3.0]) == pytest.approx(0.5)


def test_correlations_of_constant_input_are_nan() -> None:
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert math.isnan(spearman([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))


def test_matthews_by_hand() -> None:
    tp, tn, fp, fn = 3, 1, 1, 1
    expected = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert expected == pytest.approx(0.25)
    assert matthews(PRED, GOLD) == pytest.approx(expected)
    assert matthews(GOLD, GOLD) == pytest.approx(1.0)
    assert matthews(1 - GOLD, GOLD) == pytest.approx(-1.0)


def test_matthews_undefined_is_zero() -> None:
    assert matthews([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0  # constant prediction
    assert matthews([1, 0, 1, 0], [0, 0, 0, 0]) == 0.0  # constant gold
    assert matthews([1, 1], [1, 1]) == 0.0  # a single class


def test_matthews_multiclass_by_hand() -> None:
    gold = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    confusion = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]], dtype=float)  # rows gold, cols pred
    t, p, c, s = confusion.sum(1), confusion.sum(0), np.trace(confusion), confusion.sum()
    expected = (c * s - t @ p) / math.sqrt((s * s - p @ p) * (s * s - t @ t))
    assert matthews(pred, gold) == pytest.approx(expected)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_length_mismatch_and_empty_input_raise(name: str) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        METRICS[name]([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="at least one"):
        METRICS[name]([], [])


def test_compute_metrics_in_order_and_unknown_names() -> None:
    result = compute_metrics(["f1", "accuracy"], PRED, GOLD)
    assert list(result) == ["f1", "accuracy"]
    assert result == {"f1": pytest.approx(0.75), "accuracy": pytest.approx(4 / 6)}
    assert all(isinstance(v, float) for v in result.values())
    with pytest.raises(ValueError, match="unknown metric"):
        compute_metrics(["accuracy", "bleu"], PRED, GOLD)


def test_predictions_from_logits() -> None:
    logits = np.array([[0.1, 2.0], [3.0, -1.0], [0.0, 0.5]])
    np.testing.assert_array_equal(predictions_from_logits(logits, is_regression=False), [1, 0, 1])
    regression = np.array([[0.25], [4.5], [-1.0]])
    out = predictions_from_logits(regression, is_regression=True)
    np.testing.assert_array_equal(out, [0.25, 4.5, -1.0])
    assert out.dtype == np.float64
    with pytest.raises(ValueError, match="one column"):
        predictions_from_logits(logits, is_regression=True)
    with pytest.raises(ValueError, match="shape"):
        predictions_from_logits(np.zeros(3), is_regression=False)


def test_metric_labels() -> None:
    assert [metric_label(m) for m in ("f1", "accuracy", "pearson", "spearman")] == [
        "F1",
        "Acc",
        "Pearson",
        "Spearman",
    ]
    assert metric_label("something") == "something"


def test_against_sklearn() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        gold = rng.integers(0, 2, size=50)
        pred = rng.integers(0, 2, size=50)
        assert accuracy(pred, gold) == pytest.approx(skm.accuracy_score(gold, pred), abs=1e-12)
        assert f1_binary(pred, gold) == pytest.approx(skm.f1_score(gold, pred, zero_division=0), abs=1e-12)
        assert matthews(pred, gold) == pytest.approx(skm.matthews_corrcoef(gold, pred), abs=1e-12)
        gold3 = rng.integers(0, 3, size=50)
        pred3 = rng.integers(0, 3, size=50)
        assert matthews(pred3, gold3) == pytest.approx(skm.matthews_corrcoef(gold3, pred3), abs=1e-12)
    assert f1_binary([0, 0], [0, 0]) == skm.f1_score([0, 0], [0, 0], zero_division=0)
    assert matthews([1, 1, 1], [0, 1, 0]) == skm.matthews_corrcoef([0, 1, 0], [1, 1, 1])
