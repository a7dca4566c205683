"""Jobs of rules/ablation.smk called directly: a sweep run twice (and on an independent
checkpoint of the same seed) gives the same table, another seed's checkpoint another one; a
named mask the model cannot have fails at the start of the job (how hub models' masks are
checked: the config check at parse time has no config.json of a hub model)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import headlab.model.ablation
from headlab.analysis.metrics import compute_metrics
from headlab.data.tasks import get_task
from headlab.io.parquet import read_metadata
from headlab.jobs.ablation import Ablate, ablate
from headlab.model.masks import MaskError
from headlab.workflow.checks import check_config
from job_helpers import MAX_LENGTH, TASK, Trained, job_logger


def run_sweep(
    checkpoint: Path, dev: Path, table: Path, named_mask: tuple[str, list[str]] | None = None
) -> Path:
    params = Ablate(
        model="tiny",
        task=TASK,
        seed=42,
        mode="uniform",
        checkpoint=checkpoint,
        dev=dev,
        max_length=MAX_LENGTH,
        batch_size=8,
        variants_per_pass=2,
        device="cpu",
        precision="float32",
        table=table,
        predictions=table.with_name(f"{table.stem}-predictions.parquet"),
        named_mask=named_mask,
    )
    ablate(params, job_logger())
    return table


def test_sweep_is_reproducible_and_depends_on_the_seed(
    trained: dict[tuple[str, str], Trained], tables: dict[str, Path], tmp_path: Path
) -> None:
    dev = tables["dev"]
    a = run_sweep(trained["finetuned", "a"].checkpoint, dev, tmp_path / "a.parquet")
    again = run_sweep(trained["finetuned", "a"].checkpoint, dev, tmp_path / "again.parquet")
    b = run_sweep(trained["finetuned", "b"].checkpoint, dev, tmp_path / "b.parquet")
    c = run_sweep(trained["finetuned", "c"].checkpoint, dev, tmp_path / "c.parquet")
    sweep_a = pl.read_parquet(a)
    assert sweep_a.height == (1 + 2 * 4 + 2) * 2  # baseline, 8 heads, 2 layers; f1 and accuracy
    assert_frame_equal(sweep_a, pl.read_parquet(again), check_exact=True)
    assert_frame_equal(sweep_a, pl.read_parquet(b), check_exact=True)
    record_a, record_b = read_metadata(a), read_metadata(b)
    for record in (record_a, record_b):
        record.pop("created")
        record.pop("checkpoint")  # the folders differ by name only
    assert record_a == record_b
    sweep_c = pl.read_parquet(c)
    keys = ["mask", "kind", "layer", "head", "metric", "n_examples"]
    assert_frame_equal(sweep_a.select(keys), sweep_c.select(keys), check_exact=True)
    differ = sweep_a.filter(pl.col("value") != sweep_c["value"])
    assert differ.height > 0, "another seed's checkpoint gave the very same sweep"


def test_sweep_predictions_give_its_scores(
    trained: dict[tuple[str, str], Trained], tables: dict[str, Path], tmp_path: Path
) -> None:
    """Every value of the sweep table is recomputed from its per-example predictions alone."""
    table = run_sweep(trained["finetuned", "a"].checkpoint, tables["dev"], tmp_path / "a.parquet")
    sweep = pl.read_parquet(table)
    predictions = pl.read_parquet(tmp_path / "a-predictions.parquet")
    assert predictions.height == sweep["mask"].n_unique() * pl.read_parquet(tables["dev"]).height
    task = get_task(TASK)
    for mask in sweep["mask"].unique().to_list():
        rows = predictions.filter(pl.col("mask") == mask).sort("example")
        recomputed = compute_metrics(task.metrics, rows["prediction"].to_numpy(), rows["label"].to_numpy())
        for metric, value in recomputed.items():
            expected = sweep.filter((pl.col("mask") == mask) & (pl.col("metric") == metric))["value"].item()
            assert value == pytest.approx(expected, rel=0, abs=1e-12), (mask, metric)


def test_named_mask_beyond_the_model_fails_at_the_start_of_the_job(
    trained: dict[tuple[str, str], Trained],
    tables: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A hub model's masks pass the parse-time check (it has no config.json to read) ...
    config = {
        "models": [{"alias": "hubbert", "source": "hub", "id": "some/bert", "revision": None}],
        "tasks": [TASK],
        "data": {"source": "hub"},
        "ablation": {"masks": [{"name": "deep", "heads": ["L1-H1", "L9-H2"]}]},
    }
    check_config(config)
    # ... and fail when the job has read the model, before any forward pass.
    started: list[object] = []
    monkeypatch.setattr(headlab.model.ablation, "cached_sweep", lambda *args, **kw: started.append(args))
    table = tmp_path / "mask-deep.parquet"
    with pytest.raises(MaskError) as error:
        run_sweep(trained["finetuned", "a"].checkpoint, tables["dev"], table, ("deep", ["L1-H1", "L9-H2"]))
    message = str(error.value)
    assert "ablation.masks" in message and "deep[1] = 'L9-H2'" in message, message
    assert "layer 9 does not exist; the model has layers 1..2" in message, message
    assert started == [] and not table.exists() and list(tmp_path.iterdir()) == []
