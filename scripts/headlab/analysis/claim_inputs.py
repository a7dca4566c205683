"""What the claims read: the run's tables and the config's values (`ClaimInputs`).

A table that is not in the run is None (or an empty mapping); the claim that needs it is then
`not run` and says what to add to the config. Estimates are fractions; the claims show points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from headlab.analysis.significance import StatisticsSettings
from headlab.data.tasks import get_task

BERT_BASE_SHAPE = (12, 12)  # (layers, heads) of the paper's model


@dataclass(frozen=True)
class ClaimInputs:
    """The run's tables (None or empty: not in the run) and the config's claims.* and
    statistics.* values (their defaults: the config schema)."""

    model: str
    tasks: list[str]
    pair_heads: Sequence[str]  # claims.pair_heads (of this model)
    pair_heads_named: bool  # whether claims.pair_heads_by_model names this model's pair
    modes: Sequence[str]  # ablation.modes
    agreement_threshold: float  # claims.agreement_threshold
    no_harm_margin: float  # claims.no_harm_margin
    settings: StatisticsSettings  # statistics.*
    # task -> the metric the paper reports for it (figures.metric, else the task's primary one)
    metrics: Mapping[str, str] = field(default_factory=dict)
    shape: tuple[int, int] | None = None  # (layers, heads) of the model
    predictions: pl.DataFrame | None = None  # rule evaluate's, every task and seed
    statistics: pl.DataFrame | None = None  # pooled sweep statistics of the first mode, every task
    selection: pl.DataFrame | None = None  # their best-head estimates
    # task -> per-example statistics of the fine-tuned models, every seed (a `seed` column)
    attention: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    drift: Mapping[str, pl.DataFrame] = field(default_factory=dict)  # task -> per-head cosine, every seed
    # task -> Figure 2's pattern classes (finetune.analysis_seed's model): example, layer, head, pattern
    patterns: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    # task -> Figures 6 and 7's tables (both conditions, finetune.analysis_seed's model)
    features: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    token_relations: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    cls_attention: Mapping[str, pl.DataFrame] = field(default_factory=dict)
    framenet_heads: pl.DataFrame | None = None  # rule framenet_heads' head table
    framenet_sentences: int | None = None  # the sentences that passed the paper's filters
    agreement: pl.DataFrame | None = None  # rule mode_agreement's, every task
    framenet_effect: pl.DataFrame | None = None  # rule framenet_effect's
    framenet_missing: str | None = None  # why the FrameNet experiment is not in the run
    replication: pl.DataFrame | None = None  # rule importance_summary's, every task
    screens: pl.DataFrame | None = None  # its attribution/importance agreement with the sweep
    prunable: pl.DataFrame | None = None  # its prunable shares

    def metric(self, task: str) -> str:
        """The metric the claims use for `task`: the paper's (figures.metric), else the primary."""
        return self.metrics.get(task) or get_task(task).primary_metric

    def pair_heads_problem(self) -> str | None:
        """Why the STS-B/RTE pair of heads cannot be checked on this model, or None: the paper's
        heads are BERT-base's (12 x 12) indices, which name unrelated heads on another shape,
        unless claims.pair_heads_by_model names the model's own pair."""
        if self.pair_heads_named or self.shape == BERT_BASE_SHAPE:
            return None
        shape = " x ".join(map(str, self.shape)) if self.shape else "an unknown number of"
        return (
            f"{' and '.join(self.pair_heads)} are BERT-base's (12 x 12) indices; {self.model} has {shape} "
            f"heads: name its heads in claims.pair_heads_by_model.{self.model}"
        )
