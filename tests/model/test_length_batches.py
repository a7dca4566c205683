"""Length-grouped training batches (`headlab.model.batching.train_order`, finetune.group_by_length):
every example once per epoch in ceil(n / batch) batches, a function of (seed, epoch) only, other
batches in another epoch, far less padding than the plain shuffle on a skewed length mix, the
plain shuffle of before when off, and `finetune` training on exactly these batches."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from headlab.model.batching import Batch, Encoded, collate, real_token_share, train_batches, train_order
from headlab.model.finetune import LogRow, TrainingSettings, finetune
from headlab.workflow.defaults import config_defaults
from tiny import tiny_classifier

CHUNK = config_defaults("finetune")["length_chunk"]


def skewed_lengths(n: int, seed: int = 0) -> np.ndarray:
    """85 % short examples (8-24 pieces), 15 % long ones (64-128), as in SST-2 vs a few long pairs."""
    rng = np.random.default_rng(seed)
    long = rng.random(n) < 0.15  # (n,)
    return np.where(long, rng.integers(64, 129, n), rng.integers(8, 25, n))  # (n,)


def encoded_of_lengths(lengths: np.ndarray, vocab: int = 30) -> Encoded:
    """Examples of the given piece counts (ids 5.. so none is padding 0), labels 0/1 alternating."""
    rng = np.random.default_rng(1)
    ids = [rng.integers(5, vocab, int(k)).tolist() for k in lengths]
    return Encoded(
        input_ids=ids,
        token_type_ids=[[0] * len(i) for i in ids],
        labels=(np.arange(len(ids)) % 2).astype(np.int64),  # (examples,)
    )


def todays_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The training batches before length grouping, written out: the (seed, epoch) permutation cut
    into consecutive batches."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


@pytest.mark.parametrize(
    ("n", "batch_size", "chunk"),
    [(2000, 32, 50), (1000, 32, 3), (101, 8, 4), (7, 32, 50), (64, 32, 1), (97, 1, 5)],
)
def test_every_example_once_per_epoch_in_the_usual_number_of_batches(
    n: int, batch_size: int, chunk: int
) -> None:
    lengths = skewed_lengths(n)
    for seed, epoch in [(0, 0), (42, 3)]:
        batches = train_order(lengths, batch_size, seed, epoch, chunk)
        assert len(batches) == math.ceil(n / batch_size)  # training_steps counts on it
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n))
        sizes = sorted(len(b) for b in batches)
        assert sizes[1:] == [batch_size] * (len(batches) - 1)  # at most one short batch
        assert sizes[0] == n - batch_size * (len(batches) - 1)


def test_same_seed_and_epoch_give_the_same_batches() -> None:
    lengths = skewed_lengths(500)
    first = train_order(lengths, 16, 7, 2, CHUNK)
    again = train_order(lengths.copy(), 16, 7, 2, CHUNK)
    assert len(first) == len(again)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    # the same through the padded tensors
    encoded = encoded_of_lengths(lengths)
    for a, b in zip(
        train_batches(encoded, 16, 0, 7, 2, CHUNK), train_batches(encoded, 16, 0, 7, 2, CHUNK), strict=True
    ):
        assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.attention_mask, b.attention_mask)


def test_other_epochs_and_seeds_give_other_batches() -> None:
    lengths = skewed_lengths(500)

    def compositions(seed: int, epoch: int) -> set[frozenset[int]]:
        return {frozenset(b.tolist()) for b in train_order(lengths, 16, seed, epoch, CHUNK)}

    base = compositions(0, 0)
    for other in (compositions(0, 1), compositions(0, 2), compositions(1, 0)):
        # another shuffle, not the same groups in another order: hardly a batch is shared
        assert len(base & other) <= 2, len(base & other)


def test_grouping_removes_most_padding_of_a_skewed_length_mix() -> None:
    lengths = skewed_lengths(2000)
    for seed, epoch in [(0, 0), (42, 1), (43, 2)]:
        shuffled = real_token_share(lengths, train_order(lengths, 32, seed, epoch, None))
        grouped = real_token_share(lengths, train_order(lengths, 32, seed, epoch, CHUNK))
        assert shuffled < 0.6 and grouped >= 0.9, (shuffled, grouped)


def test_real_token_share_against_a_hand_count() -> None:
    lengths = np.array([2, 4, 3, 3, 1])
    # batches (2, 4) -> 6 real of 2 x 4; (3, 3) -> 6 of 6; (1) -> 1 of 1: 13 / 15
    share = real_token_share(lengths, [np.array([0, 1]), np.array([2, 3]), np.array([4])])
    assert share == pytest.approx(13 / 15, rel=1e-12, abs=0)


def test_one_chunk_cuts_the_length_sorted_order() -> None:
    """A chunk as large as the set sorts all of it: the batches are consecutive slices of the
    length order (distinct lengths, so the order is unique), in shuffled batch order."""
    lengths = np.random.default_rng(3).permutation(np.arange(1, 101))  # (100,) distinct
    batches = train_order(lengths, 10, 5, 0, chunk := 10)
    assert chunk * 10 >= len(lengths)
    expected = {frozenset(np.argsort(lengths)[i : i + 10].tolist()) for i in range(0, 100, 10)}
    assert {frozenset(b.tolist()) for b in batches} == expected
    first_lengths = [int(lengths[b].min()) for b in batches]
    assert first_lengths != sorted(first_lengths)  # the batches themselves are shuffled


def test_off_reproduces_the_plain_shuffle_exactly() -> None:
    lengths = skewed_lengths(203)
    encoded = encoded_of_lengths(lengths)
    for seed, epoch in [(42, 0), (42, 1), (7, 0)]:
        reference = todays_batches(len(lengths), 16, seed, epoch)
        ours = train_order(lengths, 16, seed, epoch, None)
        assert all(np.array_equal(a, b) for a, b in zip(reference, ours, strict=True))
        for batch, rows in zip(train_batches(encoded, 16, 0, seed, epoch, None), reference, strict=True):
            expected = collate(encoded, rows, 0)
            np.testing.assert_array_equal(batch.rows, expected.rows)
            assert torch.equal(batch.input_ids, expected.input_ids)
            assert torch.equal(batch.token_type_ids, expected.token_type_ids)
            assert torch.equal(batch.attention_mask, expected.attention_mask)
            assert torch.equal(batch.labels, expected.labels)


def test_a_chunk_of_no_batches_is_refused() -> None:
    with pytest.raises(ValueError, match="length_chunk"):
        train_order(skewed_lengths(10), 4, 0, 0, 0)


def training_settings(**values: Any) -> TrainingSettings:
    """The schema's finetune.* defaults that are training settings, with `values`."""
    names = {f.name for f in dataclasses.fields(TrainingSettings)}
    defaults = {k: v for k, v in config_defaults("finetune").items() if k in names}
    return TrainingSettings(**{**defaults, **values})


@pytest.mark.parametrize("group", [True, False])
def test_finetune_trains_on_the_batches_of_its_setting(group: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows of every step, over 2.5 epochs, are train_order's for (seed, epoch) and the setting."""
    import headlab.model.finetune as module

    seen: list[np.ndarray] = []
    original = module.train_batches

    def recording(*args: Any, **kwargs: Any) -> Iterator[Batch]:
        for batch in original(*args, **kwargs):
            seen.append(batch.rows.copy())
            yield batch

    monkeypatch.setattr(module, "train_batches", recording)
    lengths = skewed_lengths(40, seed=2) // 4 + 1  # (40,) 3-33 pieces: within the tiny model's positions
    settings = training_settings(
        epochs=2.5, batch_size=4, learning_rate=1e-3, seed=9, group_by_length=group, length_chunk=2
    )
    rows: list[LogRow] = []
    finetune(
        tiny_classifier(seed=0), encoded_of_lengths(lengths), 0, settings, torch.device("cpu"), rows.append
    )
    chunk = 2 if group else None
    expected = [b for epoch in range(3) for b in train_order(lengths, 4, 9, epoch, chunk)][: len(rows)]
    assert len(rows) == 25  # ceil(2.5 x 10)
    assert len(seen) == len(rows)
    assert all(np.array_equal(a, b) for a, b in zip(seen, expected, strict=True))
