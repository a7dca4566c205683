"""Fine-tuning (`headlab.model.finetune`): the learning-rate schedule against a hand computation,
the number of steps of fractional epochs, and what step 1 of the warm-up (learning rate 0) does."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import polars as pl
import pytest
import torch

from headlab.model.batching import Encoded, encode
from headlab.model.finetune import LogRow, TrainingSettings, finetune, optimizer_for
from headlab.workflow.defaults import config_defaults
from tiny import NEGATIVE, POSITIVE, tiny_classifier, tiny_tokenizer

CPU = torch.device("cpu")


def training_settings(**values: Any) -> TrainingSettings:
    """The config schema's finetune.* defaults that are training settings (not the seed lists),
    with `values` (the seed among them)."""
    names = {f.name for f in dataclasses.fields(TrainingSettings)}
    defaults = {k: v for k, v in config_defaults("finetune").items() if k in names}
    return TrainingSettings(**{**defaults, **values})


def training_set(n: int) -> Encoded:
    """`n` single sentences whose label follows the sentiment word."""
    words = [*POSITIVE, *NEGATIVE]
    texts = [f"the movie was {words[i % len(words)]} ." for i in range(n)]
    labels = [int(words[i % len(words)] in POSITIVE) for i in range(n)]
    table = pl.DataFrame(
        {"row": list(range(n)), "text_a": texts, "text_b": [None] * n, "label": labels},
        schema={"row": pl.Int64, "text_a": pl.Utf8, "text_b": pl.Utf8, "label": pl.Int64},
    )
    return encode(tiny_tokenizer(), table, max_length=16)


def hand_schedule(peak: float, warmup: int, total: int) -> list[float]:
    """The learning rate of steps 1..total: linear from 0 over `warmup` steps, then linear to 0
    at step total + 1 (step s uses the rate of scheduler index s - 1)."""
    rates = []
    for index in range(total):
        if index < warmup:
            rates.append(peak * index / warmup)
        else:
            rates.append(peak * (total - index) / (total - warmup))
    return rates


def test_warmup_then_linear_decay_matches_a_hand_computation() -> None:
    # 20 examples, batch 4: 5 steps per epoch; 2 epochs = 10 steps; warm-up round(0.3 * 10) = 3.
    settings = training_settings(epochs=2, batch_size=4, learning_rate=1e-3, warmup_ratio=0.3, seed=1)
    log = finetune(tiny_classifier(seed=2), training_set(20), 0, settings, CPU)
    expected = [0.0, 1e-3 / 3, 2e-3 / 3, 1e-3, 6e-3 / 7, 5e-3 / 7, 4e-3 / 7, 3e-3 / 7, 2e-3 / 7, 1e-3 / 7]
    assert expected == pytest.approx(hand_schedule(1e-3, 3, 10), rel=1e-12)  # the formula, written out
    assert [row.learning_rate for row in log] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert [row.step for row in log] == list(range(1, 11))
    assert [row.epoch for row in log] == [1] * 5 + [2] * 5


def test_without_warmup_the_decay_starts_at_the_peak() -> None:
    settings = training_settings(epochs=1, batch_size=4, learning_rate=2e-3, warmup_ratio=0.0, seed=1)
    log = finetune(tiny_classifier(seed=2), training_set(16), 0, settings, CPU)
    assert [row.learning_rate for row in log] == pytest.approx([2e-3, 1.5e-3, 1e-3, 0.5e-3], rel=1e-12)


def test_the_logged_rate_is_the_one_the_optimizer_used() -> None:
    """Step 1 of a warm-up has rate 0, so AdamW (decoupled weight decay scaled by the rate too)
    leaves every weight exactly as it was; step 2 has a positive rate and moves them."""
    model = tiny_classifier(seed=2)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    snapshots: list[dict[str, torch.Tensor]] = []

    def on_step(row: LogRow) -> None:
        snapshots.append({name: p.detach().clone() for name, p in model.named_parameters()})

    settings = training_settings(epochs=1, batch_size=4, learning_rate=1e-2, warmup_ratio=0.5, seed=1)
    log = finetune(model, training_set(16), 0, settings, CPU, on_step)
    assert [row.learning_rate for row in log] == pytest.approx([0.0, 5e-3, 1e-2, 5e-3], rel=1e-12)
    assert all(torch.equal(snapshots[0][name], before[name]) for name in before)
    moved = [name for name in before if not torch.equal(snapshots[1][name], before[name])]
    assert "classifier.weight" in moved and len(moved) > len(before) // 2, moved


def test_the_fused_optimizer_makes_the_per_parameter_loops_update() -> None:
    """optimizer_for uses torch's fused AdamW on CPU: five steps with the same gradients and two
    parameter groups (weight decay on matrices only) land where the plain loop lands."""
    settings = training_settings(epochs=1, batch_size=4, learning_rate=1e-2, seed=1)
    fused_model, loop_model = tiny_classifier(seed=3), tiny_classifier(seed=3)
    fused = optimizer_for(fused_model, settings)
    assert fused.defaults["fused"] is True
    groups = [
        {"params": group["params"], "weight_decay": group["weight_decay"]}
        for group in optimizer_for(loop_model, settings).param_groups
    ]
    loop = torch.optim.AdamW(groups, lr=settings.learning_rate, foreach=False, fused=False)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        for a, b in zip(fused_model.parameters(), loop_model.parameters(), strict=True):
            a.grad = torch.randn(a.shape, generator=generator)
            b.grad = a.grad.clone()
        fused.step()
        loop.step()
    for (name, a), b in zip(fused_model.named_parameters(), loop_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(next(fused_model.parameters()), next(tiny_classifier(seed=3).parameters()))


@pytest.mark.parametrize(
    ("n", "batch_size", "epochs", "epoch_numbers"),
    [
        (20, 8, 1.5, [1, 1, 1, 2, 2]),  # 3 batches per epoch (8, 8, 4): ceil(1.5 * 3) = 5
        (20, 8, 0.5, [1, 1]),  # ceil(0.5 * 3) = 2: a part of the first epoch
        (20, 8, 0.1, [1]),  # ceil(0.3) = 1
        (20, 8, 2.0, [1, 1, 1, 2, 2, 2]),
        (16, 4, 1.25, [1, 1, 1, 1, 2]),  # 4 batches per epoch: 5 steps
        (16, 4, 2.6, [1] * 4 + [2] * 4 + [3] * 3),  # ceil(10.4) = 11
    ],
)
def test_fractional_epochs_give_the_expected_steps(
    n: int, batch_size: int, epochs: float, epoch_numbers: list[int]
) -> None:
    assert len(epoch_numbers) == math.ceil(epochs * math.ceil(n / batch_size))  # the documented count
    settings = training_settings(epochs=epochs, batch_size=batch_size, learning_rate=1e-3, seed=3)
    log = finetune(tiny_classifier(seed=0), training_set(n), 0, settings, CPU)
    assert [row.step for row in log] == list(range(1, len(epoch_numbers) + 1))
    assert [row.epoch for row in log] == epoch_numbers
    warmup = round(settings.warmup_ratio * len(epoch_numbers))
    expected = hand_schedule(settings.learning_rate, warmup, len(epoch_numbers))
    assert [row.learning_rate for row in log] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert all(math.isfinite(row.loss) for row in log)
