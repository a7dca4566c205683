"""Jobs of rules/finetune.smk called directly: the same seed gives the same training log,
checkpoint and Table 1 scores; another seed gives others; the `scratch` condition
starts from the model's own initialiser, not from the pretrained weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from headlab.analysis.metrics import compute_metrics
from headlab.conditions import CONDITIONS, SCRATCH, TRAINED
from headlab.data.tasks import get_task
from headlab.io.parquet import read_metadata
from headlab.jobs.finetune import Evaluate, evaluate
from headlab.model.loading import load_for_task
from headlab.model.specs import ModelSpec
from job_helpers import (
    INIT_RANGE,
    MAX_LENGTH,
    PRETRAINED_SHIFT,
    PRETRAINED_STD,
    TASK,
    Trained,
    job_logger,
    model_entry,
    tensors,
)


def metadata_without_time(path: Path) -> dict[str, object]:
    record = read_metadata(path)
    record.pop("created")
    return record


def assert_same_tensors(a: Path, b: Path) -> None:
    first, second = tensors(a), tensors(b)
    assert sorted(first) == sorted(second)
    unequal = [name for name in first if not torch.equal(first[name], second[name])]
    assert unequal == [], f"{a} and {b} differ in {unequal}"


@pytest.mark.parametrize("condition", TRAINED)
def test_same_seed_twice_gives_identical_log_and_checkpoint(
    trained: dict[tuple[str, str], Trained], condition: str
) -> None:
    a, b = trained[condition, "a"], trained[condition, "b"]
    log_a, log_b = pl.read_parquet(a.training_log), pl.read_parquet(b.training_log)
    assert log_a.height == 5  # 40 examples, batch 8, one epoch
    assert_frame_equal(log_a, log_b, check_exact=True)
    assert metadata_without_time(a.training_log) == metadata_without_time(b.training_log)
    assert_same_tensors(a.checkpoint, b.checkpoint)
    files = sorted(p.name for p in a.checkpoint.iterdir())
    assert files == sorted(p.name for p in b.checkpoint.iterdir())
    assert {"config.json", "model.safetensors"} <= set(files)
    for name in files:
        if name != "model.safetensors":  # the tensors are compared above (the header may order keys)
            assert (a.checkpoint / name).read_bytes() == (b.checkpoint / name).read_bytes(), name


@pytest.mark.parametrize("condition", TRAINED)
def test_another_seed_gives_another_log_and_checkpoint(
    trained: dict[tuple[str, str], Trained], condition: str
) -> None:
    a, c = trained[condition, "a"], trained[condition, "c"]
    log_a, log_c = pl.read_parquet(a.training_log), pl.read_parquet(c.training_log)
    # Same schedule (it does not depend on the seed), other losses.
    assert_frame_equal(log_a.drop("loss"), log_c.drop("loss"), check_exact=True)
    assert (log_a["loss"] != log_c["loss"]).all()
    first, other = tensors(a.checkpoint), tensors(c.checkpoint)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])
    # Every weight matrix of every encoder layer took other steps (other head, shuffle, dropout).
    layer_weights = [name for name in first if ".layer." in name and name.endswith(".weight")]
    assert layer_weights
    same = [name for name in layer_weights if torch.equal(first[name], other[name])]
    assert same == [], same


def run_evaluate(
    trained: dict[tuple[str, str], Trained],
    run: str,
    pretrained: Path,
    dev: Path,
    out: Path,
    seed: int,
    scratch: bool = True,
) -> Path:
    """The evaluate job on run `run`'s checkpoints; without `scratch`, as for a seed that is not
    one of finetune.scratch_seeds."""
    params = Evaluate(
        model="tiny",
        task=TASK,
        model_entry=model_entry(pretrained),
        dev=dev,
        scratch=trained["scratch", run].checkpoint if scratch else None,
        finetuned=trained["finetuned", run].checkpoint,
        max_length=MAX_LENGTH,
        batch_size=8,
        seed=seed,
        device="cpu",
        precision="float32",
        scores=out,
        predictions=out.with_name(f"{out.stem}-predictions.parquet"),
    )
    evaluate(params, job_logger())
    return out


def test_evaluate_is_reproducible_and_depends_on_the_seed(
    trained: dict[tuple[str, str], Trained], pretrained_dir: Path, tables: dict[str, Path], tmp_path: Path
) -> None:
    dev = tables["dev"]
    a = pl.read_parquet(run_evaluate(trained, "a", pretrained_dir, dev, tmp_path / "a.parquet", 42))
    again = pl.read_parquet(run_evaluate(trained, "a", pretrained_dir, dev, tmp_path / "a2.parquet", 42))
    b = pl.read_parquet(run_evaluate(trained, "b", pretrained_dir, dev, tmp_path / "b.parquet", 42))
    c = pl.read_parquet(run_evaluate(trained, "c", pretrained_dir, dev, tmp_path / "c.parquet", 7))
    conditions = list(CONDITIONS)
    assert a["condition"].unique(maintain_order=True).to_list() == conditions
    assert set(a["n_examples"]) == {40}
    assert_frame_equal(a, again, check_exact=True)
    assert_frame_equal(a, b, check_exact=True)  # independent checkpoints of the same seed
    assert_frame_equal(a.drop("value", "seed"), c.drop("value", "seed"), check_exact=True)
    assert set(a["seed"]) == {42} and set(c["seed"]) == {7}
    assert not a["value"].equals(c["value"]), (a, c)


def test_evaluate_without_scratch_scores_the_other_conditions_alike(
    trained: dict[tuple[str, str], Trained], pretrained_dir: Path, tables: dict[str, Path], tmp_path: Path
) -> None:
    """A seed outside finetune.scratch_seeds: no scratch rows, the others exactly as with it."""
    dev = tables["dev"]
    full = run_evaluate(trained, "a", pretrained_dir, dev, tmp_path / "full.parquet", 42)
    part = run_evaluate(trained, "a", pretrained_dir, dev, tmp_path / "part.parquet", 42, scratch=False)
    others = [c for c in CONDITIONS if c != SCRATCH]
    for name in ("", "-predictions"):
        with_scratch = pl.read_parquet(full.with_name(f"full{name}.parquet"))
        without = pl.read_parquet(part.with_name(f"part{name}.parquet"))
        assert without["condition"].unique(maintain_order=True).to_list() == others
        assert_frame_equal(without, with_scratch.filter(pl.col("condition") != SCRATCH), check_exact=True)


def test_evaluate_predictions_give_its_scores(
    trained: dict[tuple[str, str], Trained], pretrained_dir: Path, tables: dict[str, Path], tmp_path: Path
) -> None:
    """Every score of Table 1 is recomputed from the per-example predictions table alone."""
    scores = pl.read_parquet(
        run_evaluate(trained, "a", pretrained_dir, tables["dev"], tmp_path / "a.parquet", 42)
    )
    predictions = pl.read_parquet(tmp_path / "a-predictions.parquet")
    dev = pl.read_parquet(tables["dev"])
    gold = dev["label"].to_numpy()
    task = get_task(TASK)
    for condition in CONDITIONS:
        rows = predictions.filter(pl.col("condition") == condition).sort("example")
        assert rows["example"].to_list() == dev["row"].to_list()  # the dev table's keys, in order
        np.testing.assert_array_equal(rows["label"].to_numpy(), gold)
        recomputed = compute_metrics(task.metrics, rows["prediction"].to_numpy(), gold)
        for metric, value in recomputed.items():
            expected = scores.filter((pl.col("condition") == condition) & (pl.col("metric") == metric))[
                "value"
            ]
            assert value == pytest.approx(expected.item(), rel=0, abs=1e-12), (condition, metric)


# ----------------------------------------------------------------------------------------------
# Table 1's scratch: every weight re-initialised by the model's own initialiser


def encoder_parameters(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's tensors (no task head), names without the `bert.` prefix."""
    return {name.removeprefix("bert."): t for name, t in state.items() if name.startswith("bert.")}


def check_initialiser_spread(encoder: dict[str, torch.Tensor], init_range: float, tolerance: float) -> None:
    """Weight matrices (embeddings, linear layers) ~ N(0, init_range); biases 0; LayerNorm 1 and 0
    (up to `tolerance` of movement by training)."""
    matrices = {name: t for name, t in encoder.items() if t.ndim == 2}
    assert len(matrices) >= 3 + 2 * 6 + 1  # 3 embeddings, 6 linear layers per layer, the pooler
    pooled = torch.cat([t.flatten().double() for t in matrices.values()])
    # ~12k values: the sample std is within 3 % of the truth with overwhelming probability.
    assert pooled.std().item() == pytest.approx(init_range, rel=0.03)
    assert abs(pooled.mean().item()) < 4 * init_range / pooled.numel() ** 0.5 + tolerance
    for name, t in matrices.items():
        values = t.flatten().double()
        if name.endswith("word_embeddings.weight"):
            values = values[1:]  # the padding row is zeroed by the initialiser
        # smallest matrix: token types, 64 values -> standard error of the std about 9 %
        assert values.std().item() == pytest.approx(init_range, rel=0.4), name
    for name, t in encoder.items():
        if t.ndim == 1:
            expected = 1.0 if "LayerNorm.weight" in name else 0.0
            assert (t.double() - expected).abs().max().item() <= tolerance, name


@pytest.fixture(scope="module")
def fresh(pretrained_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(pretrained, random) encoder tensors as load_for_task gives them to the finetune job."""
    spec = ModelSpec.from_config("tiny", model_entry(pretrained_dir))
    task = get_task(TASK)
    pretrained, _ = load_for_task(spec, task, "pretrained", seed=42)
    random, _ = load_for_task(spec, task, "scratch", seed=42)
    return (
        encoder_parameters({k: v.detach() for k, v in pretrained.state_dict().items()}),
        encoder_parameters({k: v.detach() for k, v in random.state_dict().items()}),
    )


def test_random_init_differs_from_the_pretrained_weights_everywhere(
    fresh: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]],
) -> None:
    pretrained, random = fresh
    assert sorted(pretrained) == sorted(random)
    # The pretrained weights are the folder's (matrices from N(0, 0.3), tests/jobs/conftest.py)...
    pooled = torch.cat([t.flatten().double() for t in pretrained.values() if t.ndim == 2])
    assert pooled.std().item() == pytest.approx(PRETRAINED_STD, rel=0.05)
    norms = torch.cat([t for name, t in pretrained.items() if name.endswith("LayerNorm.weight")])
    assert (norms - 1).abs().min().item() > 0
    assert (norms - 1).std().item() == pytest.approx(PRETRAINED_SHIFT, rel=0.2)
    # ...and no single value of them survives re-initialisation.
    floats = [name for name, t in pretrained.items() if t.is_floating_point()]
    assert len(floats) > 30
    kept = {name: int((pretrained[name] == random[name]).sum()) for name in floats}
    assert all(count == 0 for count in kept.values()), {k: v for k, v in kept.items() if v}


def test_random_init_spread_is_the_models_initializer_range(
    fresh: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], pretrained_dir: Path
) -> None:
    init_range = json.loads((pretrained_dir / "config.json").read_text())["initializer_range"]
    assert init_range == INIT_RANGE and init_range != pytest.approx(PRETRAINED_STD, rel=0.5)
    check_initialiser_spread(fresh[1], init_range, tolerance=0.0)


def test_random_init_depends_on_the_seed(pretrained_dir: Path) -> None:
    spec = ModelSpec.from_config("tiny", model_entry(pretrained_dir))
    one, _ = load_for_task(spec, get_task(TASK), "scratch", seed=1)
    same, _ = load_for_task(spec, get_task(TASK), "scratch", seed=1)
    other, _ = load_for_task(spec, get_task(TASK), "scratch", seed=2)
    for name, tensor in one.state_dict().items():
        assert torch.equal(tensor, same.state_dict()[name]), name
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(one.state_dict()[query], other.state_dict()[query])


def test_finetuned_random_checkpoint_is_the_initialiser_not_the_pretrained_weights(
    trained: dict[tuple[str, str], Trained], fresh: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]
) -> None:
    """What Table 1's scratch reads: the checkpoint the finetune job wrote for condition
    scratch keeps the initialiser's spread (five small steps moved it by little) and shares no
    value with the pretrained weights; the finetuned one stays near them."""
    pretrained = fresh[0]
    from_random = encoder_parameters(tensors(trained["scratch", "a"].checkpoint))
    from_pretrained = encoder_parameters(tensors(trained["finetuned", "a"].checkpoint))
    for name, value in pretrained.items():
        if not value.is_floating_point():
            continue
        assert int((from_random[name] == value).sum()) == 0, name
        moved = (from_pretrained[name] - value).abs().max().item()
        assert moved < 0.05 * PRETRAINED_STD, (name, moved)  # 5 steps at lr 1e-3: at most ~5e-3
    check_initialiser_spread(from_random, INIT_RANGE, tolerance=0.01)
