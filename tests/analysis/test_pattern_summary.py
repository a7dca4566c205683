"""What Figures 1 and 2 show (`headlab.analysis.pattern_summary`), against hand counts.

Counts are integers and the shares hand fractions with exact binary values (1/2, 1/4, 1), so they
are compared exactly.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from headlab.analysis.pattern_summary import class_shares, classifier_names, typical_maps
from headlab.analysis.patterns import PATTERNS


def maps_table(ids: list[str]) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame(
        {
            "map_id": ids,
            "task": ["T"] * n,
            "example": list(range(n)),
            "layer": [1] * n,
            "head": [1] * n,
            "size": [2] * n,
            "values": [[0.25, 0.25, 0.25, 0.25]] * n,
        }
    )


def test_typical_maps_pick_the_most_confident_map_first_on_ties() -> None:
    maps = maps_table(["a", "b", "c", "d", "e"])
    classes = pl.DataFrame(
        {
            "map_id": ["a", "b", "c", "d", "e", "zz"],  # zz: not an exported map, left out
            "pattern": ["vertical", "vertical", "diagonal", "diagonal", "block", "heterogeneous"],
            "classifier": ["rules"] * 6,
            "confidence": [0.5, 0.75, 0.5, 0.5, 0.25, 1.0],
        }
    )
    chosen = typical_maps(maps, classes)
    assert list(chosen) == list(PATTERNS)
    picked = {p: (row["map_id"] if row else None) for p, row in chosen.items()}
    assert picked == {
        "vertical": "b",  # 0.75 > 0.5
        "diagonal": "c",  # tie at 0.5: the first in the maps table's order
        "vertical+diagonal": None,
        "block": "e",
        "heterogeneous": None,
    }
    assert chosen["block"] is not None and chosen["block"]["confidence"] == 0.25
    with pytest.raises(ValueError, match="values"):
        typical_maps(maps.drop("values"), classes)
    with pytest.raises(ValueError, match="confidence"):
        typical_maps(maps, classes.drop("confidence"))


def test_class_shares_count_each_class_per_task() -> None:
    patterns = pl.DataFrame(
        {
            "task": ["T2", "T2", "T1", "T2", "T1", "T1", "T2"],
            "pattern": [
                "vertical",
                "block",
                "heterogeneous",
                "vertical",
                "heterogeneous",
                "heterogeneous",
                "diagonal",
            ],
            "classifier": ["cnn", "cnn", "rules", "cnn", "rules", "rules", "cnn"],
        }
    )
    shares = class_shares(patterns)
    assert shares.tasks == ["T2", "T1"]  # first appearance
    assert shares.n_maps == [4, 3]
    expected_counts = np.zeros((len(PATTERNS), 2), dtype=np.int64)  # (patterns, tasks)
    for pattern, column, count in (
        ("vertical", 0, 2),
        ("diagonal", 0, 1),
        ("block", 0, 1),
        ("heterogeneous", 1, 3),
    ):
        expected_counts[PATTERNS.index(pattern), column] = count
    np.testing.assert_array_equal(shares.counts, expected_counts)
    np.testing.assert_array_equal(shares.shares, expected_counts / np.array([4, 3]))
    assert shares.shares[PATTERNS.index("vertical"), 0] == 0.5 and shares.shares[-1, 1] == 1.0
    np.testing.assert_allclose(shares.shares.sum(axis=0), [1.0, 1.0], rtol=1e-15, atol=0)
    assert shares.classifiers == ["cnn", "rules"]
    with pytest.raises(ValueError, match="empty"):
        class_shares(patterns.head(0))
    with pytest.raises(ValueError, match="classifier"):
        class_shares(patterns.drop("classifier"))


def test_classifier_names_once_each_in_order() -> None:
    table = pl.DataFrame({"classifier": ["rules", "cnn", "rules"]})
    assert classifier_names(table) == ["rules", "cnn"]
