"""Mode `mean`: a head's context vector replaced by a given mean, against hand computations.

Proved: the engine's mean ablation of one head equals a manual forward of the layer with that
head's slice of the context replaced by the vector on real query rows, padding rows keeping
their computed context; it changes nothing else (other rows, other heads); the reference means
of `headlab.model.head_means` equal the hand-computed mean of the head's context over real
tokens; a cached sweep in mode mean equals one full pass per mask; the mode is refused without
means, and for a family whose attention headlab reaches only through its probabilities.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch

from headlab.model.ablation import cached_sweep, naive_sweep
from headlab.model.batching import encode, eval_batches
from headlab.model.engine import Controls, EngineError, engine_attached
from headlab.model.head_means import means_table, read_means, reference_means
from headlab.model.interventions import Intervention
from headlab.model.masks import baseline_mask, parse_named_mask, sweep_masks
from tiny import eager_context, tiny_classifier, tiny_tokenizer

LAYERS, HEADS = 2, 4
RTOL, ATOL = 1e-5, 1e-5


@pytest.fixture
def model():
    return tiny_classifier(seed=0, layers=LAYERS, heads=HEADS, num_labels=3)


@pytest.fixture
def inputs():
    torch.manual_seed(1)
    input_ids = torch.randint(5, 30, (3, 9))  # (batch, tokens)
    attention_mask = torch.ones(3, 9, dtype=torch.long)
    attention_mask[1, 6:] = 0
    attention_mask[2, 4:] = 0
    input_ids[attention_mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def hidden_states(model, inputs, controls=None):
    with torch.no_grad(), engine_attached(model):
        return model(**inputs, output_hidden_states=True, headlab=controls).hidden_states


def test_mean_ablation_equals_the_hand_computation(model, inputs):
    layer_index, head, row = 1, 2, 1  # row 1 has padding from token 6 on
    layer = model.bert.encoder.layer[layer_index]
    size = layer.attention.self.attention_head_size
    vector = torch.linspace(-1, 1, size)  # (head_dim,)
    means = torch.zeros(LAYERS, HEADS, size)
    means[layer_index, head] = vector
    disabled = torch.zeros(3, LAYERS, HEADS, dtype=torch.bool)
    disabled[row, layer_index, head] = True
    plain = hidden_states(model, inputs)
    got = hidden_states(model, inputs, Controls(Intervention(disabled, "mean", means)))
    hidden = plain[layer_index]  # (batch, tokens, hidden) input of the layer
    with torch.no_grad():
        context = eager_context(layer.attention.self, hidden, inputs["attention_mask"])
        real = inputs["attention_mask"][row].bool()  # (tokens,)
        context[row, real, head * size : (head + 1) * size] = vector  # padding rows keep theirs
        attention_out = layer.attention.output(context, hidden)
        expected = layer.output(layer.intermediate(attention_out), attention_out)
    torch.testing.assert_close(got[layer_index + 1][row], expected[row], rtol=RTOL, atol=ATOL)
    # the other rows are the unablated model's
    for other in (0, 2):
        torch.testing.assert_close(got[-1][other], plain[-1][other], rtol=RTOL, atol=ATOL)


def test_reference_means_equal_the_hand_mean(model, inputs):
    tokenizer = tiny_tokenizer()
    table = pl.DataFrame(
        {"text_a": ["a b c d", "b c", "d a b c d a"], "text_b": [None, None, None], "label": [0, 1, 2]}
    )
    encoded = encode(tokenizer, table, 16)
    batches = eval_batches(encoded, 2, tokenizer.pad_token_id)
    means, tokens = reference_means(model, batches, torch.device("cpu"))
    assert means.shape == (LAYERS, HEADS, model.config.hidden_size // HEADS)
    # by hand: layer 0's context of every real token of every example, one example at a time
    self_attention = model.bert.encoder.layer[0].attention.self
    size = self_attention.attention_head_size
    contexts = []
    with torch.no_grad():
        for ids in encoded.input_ids:
            input_ids = torch.tensor([ids])
            mask = torch.ones_like(input_ids)
            hidden = model.bert.embeddings(input_ids=input_ids)
            contexts.append(eager_context(self_attention, hidden, mask)[0])  # (tokens, hidden)
    stacked = torch.cat(contexts).double()  # (all real tokens, hidden)
    assert tokens[0] == stacked.shape[0]
    for head in range(HEADS):
        expected = stacked[:, head * size : (head + 1) * size].mean(0)
        torch.testing.assert_close(means[0, head], expected, rtol=1e-5, atol=1e-6)
    back = read_means(means_table("m", "T", 1, means, tokens, len(encoded)), model)
    torch.testing.assert_close(back, means.float(), rtol=0, atol=0)


def test_cached_sweep_in_mean_mode_equals_full_passes(model):
    tokenizer = tiny_tokenizer()
    table = pl.DataFrame(
        {"text_a": ["a b c d", "b c", "d a b c d a", "c c b"], "text_b": [None] * 4, "label": [0, 1, 2, 0]}
    )
    encoded = encode(tokenizer, table, 16)
    batches = eval_batches(encoded, 3, tokenizer.pad_token_id)
    size = model.config.hidden_size // HEADS
    means = torch.randn(LAYERS, HEADS, size, generator=torch.Generator().manual_seed(3))
    masks = [*sweep_masks(LAYERS, HEADS), parse_named_mask("pair", ["L1-H2", "L2-H3"], LAYERS, HEADS)]
    cpu = torch.device("cpu")
    full = naive_sweep(model, batches, len(encoded), masks, "mean", cpu, means=means)
    cached = cached_sweep(model, batches, len(encoded), masks, "mean", cpu, means=means)
    np.testing.assert_allclose(cached, full, rtol=1e-5, atol=1e-6)
    baseline = naive_sweep(model, batches, len(encoded), [baseline_mask()], "uniform", cpu)[0]
    assert np.abs(full[1:] - baseline[None]).max() > 1e-4, "mean ablation changed nothing"


def test_mean_mode_needs_means_of_the_mask_shape():
    disabled = torch.zeros(1, LAYERS, HEADS, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"needs Intervention\.means"):
        Intervention(disabled, "mean")
    with pytest.raises(ValueError, match="layers x heads"):
        Intervention(disabled, "mean", torch.zeros(LAYERS + 1, HEADS, 4))


def test_hook_route_families_refuse_mean_by_name():
    import transformers as T

    torch.manual_seed(0)
    config = T.DebertaV2Config(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        num_labels=2,
        relative_attention=True,
        pos_att_type=["p2c", "c2p"],
        position_buckets=8,
        max_relative_positions=16,
        type_vocab_size=0,
        position_biased_input=False,
    )
    model = T.AutoModelForSequenceClassification.from_config(config).eval()
    disabled = torch.zeros(
        1, model.config.num_hidden_layers, model.config.num_attention_heads, dtype=torch.bool
    )
    size = model.config.hidden_size // model.config.num_attention_heads
    means = torch.zeros(model.config.num_hidden_layers, model.config.num_attention_heads, size)
    controls = Controls(Intervention(disabled, "mean", means))
    input_ids = torch.randint(5, 30, (1, 6))
    with (
        engine_attached(model),
        pytest.raises(EngineError, match=r"'deberta-v2'.*mean ablation is not available"),
    ):
        model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), headlab=controls)


def test_means_table_schema(model):
    means = torch.zeros(LAYERS, HEADS, 3, dtype=torch.float64)
    table = means_table("m", "T", 7, means, [5, 5], 2)
    assert table.num_rows == LAYERS * HEADS
    assert table.schema.field("mean").type == pa.list_(pa.float64())
