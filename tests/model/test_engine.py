"""The attention engine against transformers' eager attention and hand computations."""

from __future__ import annotations

import pytest
import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from headlab.model.engine import ENGINE_KEY, Controls, engine_attached
from headlab.model.interventions import Intervention
from tiny import eager_context, tiny_classifier

LAYERS, HEADS = 2, 4


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


def eager_outputs(model, **inputs):
    model.set_attn_implementation("eager")
    return model(**inputs, output_attentions=True, output_hidden_states=True)


def engine_outputs(model, controls=None, **inputs):
    with engine_attached(model):
        return model(**inputs, output_attentions=True, output_hidden_states=True, headlab=controls)


def disabled(batch: int, *heads: tuple[int, int, int]) -> torch.Tensor:
    """(batch, layers, heads) bool with the given (row, layer, head) entries set."""
    out = torch.zeros(batch, LAYERS, HEADS, dtype=torch.bool)
    for row, layer, head in heads:
        out[row, layer, head] = True
    return out


def test_registered_under_one_key_in_both_registries():
    assert ENGINE_KEY in ALL_ATTENTION_FUNCTIONS
    assert ENGINE_KEY in ALL_MASK_ATTENTION_FUNCTIONS


@pytest.mark.parametrize("padded", [False, True])
def test_no_intervention_equals_eager_exactly(model, inputs, padded):
    if not padded:
        inputs = {"input_ids": inputs["input_ids"][:1], "attention_mask": inputs["attention_mask"][:1]}
    reference = eager_outputs(model, **inputs)
    ours = engine_outputs(model, **inputs)
    assert torch.equal(ours.logits, reference.logits)
    for a, b in zip(ours.attentions, reference.attentions, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(ours.hidden_states, reference.hidden_states, strict=True):
        assert torch.equal(a, b)


def test_empty_controls_equal_eager(model, inputs):
    reference = eager_outputs(model, **inputs)
    ours = engine_outputs(model, Controls(), **inputs)
    assert torch.equal(ours.logits, reference.logits)


def test_padding_is_masked(model, inputs):
    """Without the AttentionMaskInterface registration padding keys would get weight."""
    ours = engine_outputs(model, **inputs)
    for attentions in ours.attentions:  # (batch, heads, query, key)
        assert torch.all(attentions[1, :, :, 6:] == 0)
        assert torch.all(attentions[2, :, :, 4:] == 0)


def test_uniform_rows_are_one_over_real_length(model, inputs):
    controls = Controls(Intervention(disabled(3, (1, 0, 2), (2, 1, 3)), "uniform"))
    attentions = engine_outputs(model, controls, **inputs).attentions
    row1 = attentions[0][1, 2]  # (query, key) of row 1, layer 0, head 2; 6 real tokens
    torch.testing.assert_close(row1[:, :6], torch.full((9, 6), 1 / 6), rtol=0, atol=0)
    assert torch.all(row1[:, 6:] == 0)
    row2 = attentions[1][2, 3]  # 4 real tokens
    torch.testing.assert_close(row2[:, :4], torch.full((9, 4), 1 / 4), rtol=0, atol=0)
    assert torch.all(row2[:, 4:] == 0)
    # other heads and rows keep their learned attention
    reference = eager_outputs(model, **inputs).attentions
    assert torch.equal(attentions[0][1, :2], reference[0][1, :2])
    assert torch.equal(attentions[0][0], reference[0][0])


def test_uniform_layer_output_matches_hand_computation(model, inputs):
    """Disabling head h of layer 0: its context vectors are the mean of the real tokens' values."""
    self_attention = model.bert.encoder.layer[0].attention.self
    captured = {}

    def capture(module, args, output):
        captured["out"] = output[0]  # (batch, tokens, hidden) context vectors before the output projection

    handle = self_attention.register_forward_hook(capture)
    hidden = eager_outputs(model, **inputs).hidden_states[0]  # (batch, tokens, hidden) input of layer 0
    head = 1
    engine_outputs(model, Controls(Intervention(disabled(3, (1, 0, head)), "uniform")), **inputs)
    handle.remove()
    size = self_attention.attention_head_size
    value = self_attention.value(hidden[1])  # (tokens, hidden)
    expected = value[:6, head * size : (head + 1) * size].mean(dim=0)  # (head_dim,) mean over 6 real tokens
    got = captured["out"][1, :, head * size : (head + 1) * size]  # (tokens, head_dim)
    torch.testing.assert_close(got, expected.expand_as(got), rtol=1e-5, atol=1e-6)


def test_zero_equals_hand_computation(model, inputs):
    """`zero`: the head's context is 0, so the layer output equals a manual forward with that slice zeroed."""
    layer = model.bert.encoder.layer[1]
    hidden = eager_outputs(model, **inputs).hidden_states[1]  # (batch, tokens, hidden) input of layer 1
    self_attention = layer.attention.self
    size = self_attention.attention_head_size
    with torch.no_grad():
        context = eager_context(self_attention, hidden, inputs["attention_mask"])  # (batch, tokens, hidden)
        context[0, :, 3 * size : 4 * size] = 0
        attention_out = layer.attention.output(context, hidden)
        expected = layer.output(layer.intermediate(attention_out), attention_out)
    got = engine_outputs(
        model, Controls(Intervention(disabled(3, (0, 1, 3)), "zero")), **inputs
    ).hidden_states[2]
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-5)


def test_per_row_masks_equal_separate_runs(model, inputs):
    masks = disabled(3, (0, 0, 1), (1, 1, 0), (1, 1, 2), (2, 0, 3))
    together = engine_outputs(model, Controls(Intervention(masks, "uniform")), **inputs).logits
    for row in range(3):
        single = {k: v[row : row + 1] for k, v in inputs.items()}
        alone = engine_outputs(
            model, Controls(Intervention(masks[row : row + 1], "uniform")), **single
        ).logits
        torch.testing.assert_close(together[row : row + 1], alone, rtol=1e-5, atol=1e-6)


def test_disabling_changes_the_output(model, inputs):
    """Guards the other tests: the tiny model's heads matter, so equalities above are not vacuous."""
    reference = engine_outputs(model, **inputs).logits
    changed = engine_outputs(
        model, Controls(Intervention(disabled(3, (0, 0, 0)), "uniform")), **inputs
    ).logits
    assert (changed[0] - reference[0]).abs().max() > 1e-4
    assert torch.equal(changed[1:], reference[1:])


def test_observers_see_each_layer_with_key_mask(model, inputs):
    seen = []

    def observe(layer, probs, key_is_real):
        seen.append((layer, probs.sum(-1), key_is_real.clone()))

    engine_outputs(model, Controls(observers=[observe]), **inputs)
    assert [layer for layer, _, _ in seen] == list(range(LAYERS))
    for _, row_sums, key_is_real in seen:
        torch.testing.assert_close(row_sums, torch.ones_like(row_sums))
        assert torch.equal(key_is_real, inputs["attention_mask"].bool())


def test_attach_restores_and_leaves_no_state(model, inputs):
    model.set_attn_implementation("sdpa")
    with engine_attached(model):
        assert model.config._attn_implementation == ENGINE_KEY
    assert model.config._attn_implementation == "sdpa"
    with pytest.raises(RuntimeError), engine_attached(model):
        raise RuntimeError("boom")
    assert model.config._attn_implementation == "sdpa"
    # a call with controls leaves nothing behind: the next plain call equals eager again
    engine_outputs(model, Controls(Intervention(disabled(3, (0, 0, 0)), "zero")), **inputs)
    assert torch.equal(engine_outputs(model, **inputs).logits, eager_outputs(model, **inputs).logits)


def test_bad_intervention_is_refused(model, inputs):
    with pytest.raises(ValueError, match="unknown disabling mode 'half'"):
        Intervention(disabled(3), "half")
    with pytest.raises(ValueError, match="2 rows but the batch has 3"):
        engine_outputs(model, Controls(Intervention(disabled(2), "uniform")), **inputs)


def test_inference_is_float32_unless_bf16_is_asked_for_on_cuda() -> None:
    """The precision of scoring, sweeps and attention passes (config key precision): float32 by
    default on every device; bf16 autocast only on CUDA when asked; bf16 on a CPU is an error."""
    import contextlib
    import contextvars

    from headlab.model.inference import inference_autocast, set_inference_precision

    def under(precision: str | None, device: str) -> object:
        def run() -> object:
            if precision is not None:
                set_inference_precision(precision, torch.device(device))
            return inference_autocast(torch.device(device))

        return contextvars.copy_context().run(run)

    assert isinstance(under(None, "cuda"), contextlib.nullcontext)  # the default: float32
    assert isinstance(under("float32", "cuda"), contextlib.nullcontext)
    assert isinstance(under(None, "cpu"), contextlib.nullcontext)
    bf16 = under("bf16", "cuda")
    assert isinstance(bf16, torch.autocast) and bf16.fast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="bf16 needs a CUDA device"):
        under("bf16", "cpu")
    with pytest.raises(ValueError, match="valid: float32, bf16"):
        under("fp16", "cuda")
