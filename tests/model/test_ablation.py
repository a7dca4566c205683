"""Disabling sweeps: the cached-prefix sweep against full forward passes, masks, score tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headlab.analysis.scoring import ablation_table
from headlab.data.tasks import get_task
from headlab.model.ablation import cached_sweep, layer_inputs_recorded, naive_sweep, started_at_layer
from headlab.model.batching import Batch, collate, encode, eval_batches
from headlab.model.masks import MaskError, mask_tensor, parse_named_mask, sweep_masks
from tiny import tiny_classifier, tiny_tokenizer

LAYERS, HEADS = 3, 4
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return tiny_classifier(seed=3, layers=LAYERS, heads=HEADS, num_labels=2)


@pytest.fixture(scope="module")
def batches():
    import polars as pl

    texts = ["the cat sat on the mat .", "a dog ran", "the movie was very good !", "bad plot", "the bird sat"]
    table = pl.DataFrame(
        {
            "row": list(range(5)),
            "text_a": texts,
            "text_b": ["a mat", "a cat", "the plot", "the film was awful", "a bird ran on the rug"],
            "label": [1, 0, 1, 0, 1],
        },
        schema={"row": pl.Int64, "text_a": pl.Utf8, "text_b": pl.Utf8, "label": pl.Int64},
    )
    encoded = encode(tiny_tokenizer(), table, max_length=16)
    return encoded, eval_batches(encoded, batch_size=2, pad_id=0)


def all_masks():
    return [*sweep_masks(LAYERS, HEADS), parse_named_mask("pair", ["L2-H1", "L3-H4"], LAYERS, HEADS)]


@pytest.mark.parametrize("mode", ["uniform", "zero"])
def test_cached_sweep_equals_full_forward_passes(model, batches, mode):
    encoded, eval_batches_ = batches
    naive = naive_sweep(model, eval_batches_, len(encoded), all_masks(), mode, CPU)
    cached = cached_sweep(model, eval_batches_, len(encoded), all_masks(), mode, CPU)
    assert naive.shape == (1 + LAYERS * HEADS + LAYERS + 1, len(encoded), 2)
    np.testing.assert_allclose(cached, naive, rtol=1e-5, atol=1e-6)
    # the sweep is not vacuous: masks do change the logits
    assert np.abs(naive[1:] - naive[0]).max() > 1e-3


def test_stacked_variants_equal_one_at_a_time(model, batches):
    encoded, eval_batches_ = batches
    one = cached_sweep(model, eval_batches_, len(encoded), all_masks(), "uniform", CPU, variants_per_pass=1)
    stacked = cached_sweep(
        model, eval_batches_, len(encoded), all_masks(), "uniform", CPU, variants_per_pass=5
    )
    np.testing.assert_allclose(stacked, one, rtol=1e-5, atol=1e-5)


def test_baseline_row_is_the_plain_model(model, batches):
    encoded, eval_batches_ = batches
    cached = cached_sweep(model, eval_batches_, len(encoded), all_masks(), "uniform", CPU)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        for batch in eval_batches_:
            plain = model(**batch.model_inputs()).logits.numpy()
            np.testing.assert_allclose(cached[0, batch.rows], plain, rtol=1e-5, atol=1e-6)


def test_tail_from_recorded_state_reproduces_the_model(model, batches):
    _, eval_batches_ = batches
    batch: Batch = eval_batches_[-1]
    with torch.no_grad(), layer_inputs_recorded(model) as states:
        full = model(**batch.model_inputs()).logits
    for start in range(LAYERS):
        with torch.no_grad(), started_at_layer(model, start, states[start]):
            tail = model(**batch.model_inputs()).logits
        torch.testing.assert_close(tail, full, rtol=1e-5, atol=1e-6)


def test_surgery_is_undone_even_after_errors(model):
    layers_before = list(model.bert.encoder.layer)
    with pytest.raises(RuntimeError), started_at_layer(model, 2, torch.zeros(1, 3, 32)):
        raise RuntimeError("boom")
    assert list(model.bert.encoder.layer) == layers_before
    assert not model.bert.embeddings._forward_hooks
    assert all(not layer._forward_pre_hooks for layer in model.bert.encoder.layer)


def test_masks_parse_and_validate():
    pair = parse_named_mask("pair", ["L2-H12", "L4-H1"], layers=12, heads=12)
    assert pair.heads == frozenset({(1, 11), (3, 0)})
    assert pair.first_layer == 1
    whole = parse_named_mask("first", ["L1"], layers=6, heads=12)
    assert whole.heads == frozenset((0, h) for h in range(12))
    with pytest.raises(
        MaskError, match=r"masks\.bad\[0\].*layer 13 does not exist; the model has layers 1\.\.12"
    ):
        parse_named_mask("bad", ["L13-H1"], layers=12, heads=12)
    with pytest.raises(MaskError, match=r"head 13 does not exist"):
        parse_named_mask("bad", ["L1-H13"], layers=12, heads=12)
    with pytest.raises(MaskError, match="expected 'L<layer>-H<head>'"):
        parse_named_mask("bad", ["layer2"], layers=12, heads=12)
    table = mask_tensor(sweep_masks(2, 3), 2, 3)  # (masks, layers, heads)
    assert table.shape == (1 + 6 + 2, 2, 3)
    assert table[0].sum() == 0 and table[1:7].sum(dim=(1, 2)).tolist() == [1] * 6
    assert table[7:].sum(dim=(1, 2)).tolist() == [3, 3]


def test_ablation_table_scores_and_deltas():
    task = get_task("RTE")
    masks = sweep_masks(1, 2)  # baseline, L1-H1, L1-H2, L1
    gold = np.array([0, 1, 1, 0])
    # logits (masks, examples, labels): baseline gets 3/4 right, L1-H1 4/4, L1-H2 2/4, L1 1/4
    predictions = [[0, 1, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1], [1, 0, 1, 1]]
    logits = np.stack([np.eye(2)[p] for p in predictions])
    table = ablation_table("m", task, 42, "uniform", masks, logits, gold).to_pylist()
    values = {row["mask"]: (row["value"], row["delta"]) for row in table}
    assert values == {
        "baseline": (0.75, 0.0),
        "L1-H1": (1.0, 0.25),
        "L1-H2": (0.5, -0.25),
        "L1": (0.25, -0.5),
    }
    assert [row["kind"] for row in table] == ["baseline", "head", "head", "layer"]
    assert all(row["n_examples"] == 4 and row["baseline"] == 0.75 for row in table)


def test_collate_pads_dynamically():
    encoded = encode(
        tiny_tokenizer(),
        __import__("polars").DataFrame(
            {
                "row": [0, 1],
                "text_a": ["the cat", "the cat sat on the mat"],
                "text_b": [None, None],
                "label": [0, 1],
            }
        ),
        max_length=32,
    )
    batch = collate(encoded, np.array([0, 1]), pad_id=0)
    assert batch.input_ids.shape == (2, 8)  # [CLS] + 6 words + [SEP]
    assert batch.attention_mask.sum(dim=1).tolist() == [4, 8]
