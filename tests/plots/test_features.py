"""Figures 6 and 7 draw what `headlab.analysis.feature_summary` computed: valid PDF and PNG files,
nothing left behind on an error (the numbers are tested in tests/analysis/test_feature_summary.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from headlab.analysis.feature_summary import (
    category_bars,
    feature_changes,
    relation_grids,
    special_token_grids,
)
from headlab.data.linguistic import FEATURES
from headlab.data.token_rules import RELATIONS
from headlab.plots.features import plot_figure6, plot_figure6_features, plot_figure7

PDF_SIGNATURE = b"%PDF-"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """features, token_to_token and cls_attention of two tasks, 3 layers x 2 heads; SST-2 has no
    negation values (null)."""
    rng = np.random.default_rng(0)
    features, tokens, cls = [], [], []
    for task in ("MRPC", "SST-2"):
        for condition in ("pretrained", "finetuned"):
            for layer in (1, 2, 3):
                for head in (1, 2):
                    for feature in FEATURES:
                        value = None if feature == "negation" and task == "SST-2" else float(rng.random())
                        features.append(
                            (task, condition, feature, layer, head, value, 0 if value is None else 5)
                        )
                    for relation in RELATIONS:
                        tokens.append((task, condition, relation, layer, head, float(rng.random()), 4, 2.5))
            for head in (1, 2):
                for feature in FEATURES:
                    cls.append((task, condition, feature, 3, head, float(rng.random()), 5))
    columns = ["task", "condition", "feature", "layer", "head", "value", "n_examples"]
    return (
        pl.DataFrame(features, schema=columns, orient="row"),
        pl.DataFrame(
            tokens,
            schema=["task", "condition", "relation", "layer", "head", "value", "n_examples", "mean_distance"],
            orient="row",
        ),
        pl.DataFrame(cls, schema=columns, orient="row"),
    )


def test_figures_render_pdf_and_png(tmp_path: Path) -> None:
    features, tokens, cls = synthetic_tables()
    plot_figure6(special_token_grids(features, ["SST-2", "MRPC"]), tmp_path / "figure6.pdf", label="m")
    changes = feature_changes(features, ["MRPC", "SST-2"])
    plot_figure6_features(changes, tmp_path / "figure6_features.pdf", label="m")
    tasks = ["MRPC", "SST-2"]
    plot_figure7(
        category_bars(cls, tasks), relation_grids(tokens, tasks), tmp_path / "figure7.pdf", label="m"
    )
    only_bars = relation_grids(tokens.with_columns(relation=pl.lit("other")), tasks)  # no known relation
    plot_figure7(category_bars(cls, tasks), only_bars, tmp_path / "figure7_bars.pdf")
    for name in ("figure6", "figure6_features", "figure7", "figure7_bars"):
        assert (tmp_path / f"{name}.pdf").read_bytes().startswith(PDF_SIGNATURE), name
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG_SIGNATURE), name
    assert not list(tmp_path.glob(".*"))


def test_figure7_refuses_parts_of_different_tasks(tmp_path: Path) -> None:
    _, tokens, cls = synthetic_tables()
    with pytest.raises(ValueError, match="tasks"):
        plot_figure7(category_bars(cls, ["MRPC"]), relation_grids(tokens, ["SST-2"]), tmp_path / "bad.pdf")
    with pytest.raises(ValueError, match="RTE"):
        special_token_grids(synthetic_tables()[0], ["RTE"])
    assert list(tmp_path.iterdir()) == []
