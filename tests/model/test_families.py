"""Every supported encoder family, exact or refused: a matrix over tiny random models of each.

For each family (2-3 layers, 4 heads, hidden 32, padding in the batch): the engine with no
intervention equals the model's own eager output; a uniformly disabled head's rows are 1/L over
the real tokens for every real query (sliding-window layers included); `zero` equals zeroing
that head's slice of the value projection by hand; per-row masks equal separate runs; the
cached sweep equals one full pass per mask; and every pass reaches each layer exactly once
(the guard). Unsupported model types are refused by name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import transformers as T
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from headlab.model.ablation import cached_sweep, naive_sweep
from headlab.model.batching import Batch
from headlab.model.engine import (
    Controls,
    EngineError,
    engine_attached,
    head_count,
    layer_count,
    layer_modules,
)
from headlab.model.families import SUPPORTED_MODEL_TYPES, UnsupportedModelError, family_of
from headlab.model.inference import batch_logits, inference_session
from headlab.model.interventions import Intervention
from headlab.model.masks import sweep_masks

VOCAB = 64
SMALL = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 37,
    "max_position_embeddings": 64,
    "num_labels": 3,
    "pad_token_id": 1,
    "initializer_range": 0.3,  # peaked attention, so disabling a head matters
}


@dataclass(frozen=True)
class Case:
    """A family's tiny config and where one layer's value projection for head h lives."""

    config: Callable[[], T.PretrainedConfig]
    value: Callable[[PreTrainedModel, int], tuple[torch.nn.Linear, slice]]  # (layer 0, head) -> rows


def _rows(head: int, head_dim: int = 8, offset: int = 0) -> slice:
    return slice(offset + head * head_dim, offset + (head + 1) * head_dim)


def _bert_value(model: PreTrainedModel, head: int) -> tuple[torch.nn.Linear, slice]:
    return layer_modules(model)[0].attention.self.value, _rows(head)


CASES: dict[str, Case] = {
    "bert": Case(lambda: T.BertConfig(**SMALL), _bert_value),
    "roberta": Case(lambda: T.RobertaConfig(**SMALL), _bert_value),
    "xlm-roberta": Case(lambda: T.XLMRobertaConfig(**SMALL), _bert_value),
    "camembert": Case(lambda: T.CamembertConfig(**SMALL), _bert_value),
    "electra": Case(lambda: T.ElectraConfig(embedding_size=32, **SMALL), _bert_value),
    "electra-small-embeddings": Case(lambda: T.ElectraConfig(embedding_size=16, **SMALL), _bert_value),
    "distilbert": Case(
        lambda: T.DistilBertConfig(
            vocab_size=VOCAB,
            dim=32,
            n_layers=3,
            n_heads=4,
            hidden_dim=37,
            max_position_embeddings=64,
            num_labels=3,
            pad_token_id=1,
            initializer_range=0.3,
        ),
        lambda model, head: (layer_modules(model)[0].attention.v_lin, _rows(head)),
    ),
    "albert": Case(
        lambda: T.AlbertConfig(embedding_size=16, **SMALL),
        lambda model, head: (layer_modules(model)[0].attention.value, _rows(head)),
    ),
    "deberta-v2": Case(
        lambda: T.DebertaV2Config(
            relative_attention=True,
            pos_att_type=["p2c", "c2p"],
            position_buckets=8,
            max_relative_positions=16,
            type_vocab_size=0,
            position_biased_input=False,
            **SMALL,
        ),
        lambda model, head: (layer_modules(model)[0].attention.self.value_proj, _rows(head)),
    ),
    "modernbert": Case(
        lambda: T.ModernBertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=3,
            num_attention_heads=4,
            local_attention=4,
            global_attn_every_n_layers=2,
            pad_token_id=1,
            bos_token_id=2,
            eos_token_id=3,
            cls_token_id=2,
            sep_token_id=3,
            num_labels=3,
            initializer_range=0.3,
        ),
        lambda model, head: (layer_modules(model)[0].attn.Wqkv, _rows(head, offset=2 * 32)),
    ),
    "mpnet": Case(
        lambda: T.MPNetConfig(**SMALL),
        lambda model, head: (layer_modules(model)[0].attention.attn.v, _rows(head)),
    ),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def family_model(request: pytest.FixtureRequest) -> tuple[str, PreTrainedModel, Case]:
    case = CASES[request.param]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForSequenceClassification.from_config(case.config(), attn_implementation="eager")
    return request.param, model.eval(), case


def _batch(lengths: tuple[int, ...] = (10, 7, 4), seed: int = 3) -> Batch:
    """Random ids (never a special id below 5), right-padded with id 1 to the longest row."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    input_ids = torch.full((len(lengths), width), 1, dtype=torch.long)  # (batch, tokens)
    mask = torch.zeros((len(lengths), width), dtype=torch.long)  # (batch, tokens)
    for row, n in enumerate(lengths):
        input_ids[row, :n] = torch.randint(5, VOCAB, (n,), generator=generator)
        mask[row, :n] = 1
    types = torch.zeros_like(input_ids)
    return Batch(np.arange(len(lengths)), input_ids, types, mask, torch.zeros(len(lengths), dtype=torch.long))


def _run(model: PreTrainedModel, batch: Batch, controls: Controls | None) -> np.ndarray:
    with inference_session(model, torch.device("cpu")):
        return batch_logits(model, batch, torch.device("cpu"), controls)


def _disabled(model: PreTrainedModel, rows: int, *cells: tuple[int, int, int]) -> torch.Tensor:
    mask = torch.zeros(rows, layer_count(model), head_count(model), dtype=torch.bool)
    for row, layer, head in cells:
        mask[row, layer, head] = True
    return mask  # (batch, layers, heads)


def test_every_required_family_is_supported() -> None:
    required = {
        "bert",
        "roberta",
        "xlm-roberta",
        "camembert",
        "electra",
        "distilbert",
        "albert",
        "deberta-v2",
        "modernbert",
        "mpnet",
    }
    assert required <= set(SUPPORTED_MODEL_TYPES)


def test_no_intervention_equals_the_models_own_eager_output(family_model) -> None:
    name, model, _ = family_model
    batch = _batch()
    types = family_of(model.config.model_type).takes_token_type_ids(model.config)
    with torch.inference_mode():
        reference = model(**batch.model_inputs("cpu", token_type_ids=types)).logits.numpy()
    ours = _run(model, batch, None)
    np.testing.assert_array_equal(ours, reference, err_msg=name)
    observed = _run(model, batch, Controls(observers=[lambda layer, probs, real: None]))
    np.testing.assert_allclose(observed, reference, rtol=1e-5, atol=1e-6, err_msg=name)


def test_uniform_disabling_gives_one_over_length_on_real_tokens_for_every_query(family_model) -> None:
    name, model, _ = family_model
    batch = _batch()
    n_layers = layer_count(model)
    seen: dict[int, torch.Tensor] = {}
    disabled = _disabled(model, 3, *[(row, layer, 1) for row in range(3) for layer in range(n_layers)])

    def keep(layer: int, probs: torch.Tensor, key_is_real: torch.Tensor) -> None:
        seen[layer] = probs[:, 1].clone()  # (batch, query, key) of the disabled head

    _run(model, batch, Controls(Intervention(disabled, "uniform"), observers=[keep]))
    assert sorted(seen) == list(range(n_layers)), name
    lengths = batch.attention_mask.sum(dim=1)
    for layer, probs in seen.items():  # sliding-window layers (ModernBERT layer 2) included
        for row, n in enumerate(lengths.tolist()):
            real = probs[row, :n]  # (real queries, key)
            torch.testing.assert_close(real[:, :n], torch.full((n, n), 1.0 / n), rtol=1e-6, atol=0)
            assert torch.all(real[:, n:] == 0), (name, layer, row)


def test_zero_equals_zeroing_the_heads_value_projection_by_hand(family_model) -> None:
    name, model, case = family_model
    batch = _batch()
    head = 2
    # ALBERT shares one layer's weights across depth: zeroing them is disabling the head everywhere
    layers = range(layer_count(model)) if name == "albert" else [0]
    disabled = _disabled(model, 3, *[(row, layer, head) for row in range(3) for layer in layers])
    ours = _run(model, batch, Controls(Intervention(disabled, "zero")))
    linear, rows = case.value(model, head)
    saved_weight, saved_bias = linear.weight.detach().clone(), None
    with torch.no_grad():
        linear.weight[rows] = 0
        if linear.bias is not None:
            saved_bias = linear.bias.detach().clone()
            linear.bias[rows] = 0
    try:
        by_hand = _run(model, batch, None)
    finally:
        with torch.no_grad():
            linear.weight.copy_(saved_weight)
            if saved_bias is not None:
                linear.bias.copy_(saved_bias)
    np.testing.assert_allclose(ours, by_hand, rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.abs(ours - _run(model, batch, None)).max() > 1e-5, f"{name}: the head has no effect"


def test_per_row_masks_equal_separate_runs(family_model) -> None:
    name, model, _ = family_model
    batch = _batch()
    disabled = _disabled(model, 3, (0, 0, 1), (1, 1, 0), (1, 2, 3), (2, 0, 3))
    together = _run(model, batch, Controls(Intervention(disabled, "uniform")))
    for row in range(3):
        n = int(batch.attention_mask[row].sum())
        alone_batch = Batch(
            np.arange(1),
            batch.input_ids[row : row + 1, :n],
            batch.token_type_ids[row : row + 1, :n],
            batch.attention_mask[row : row + 1, :n],
            batch.labels[row : row + 1],
        )
        alone = _run(model, alone_batch, Controls(Intervention(disabled[row : row + 1], "uniform")))
        np.testing.assert_allclose(together[row : row + 1], alone, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("mode", ["uniform", "zero"])
def test_cached_sweep_equals_one_full_pass_per_mask(family_model, mode: str) -> None:
    name, model, _ = family_model
    batches = [_batch((9, 6, 3), seed=5), _batch((8, 8), seed=6)]
    for i, b in enumerate(batches):
        object.__setattr__(b, "rows", b.rows + 3 * i)
    masks = sweep_masks(layer_count(model), head_count(model))
    where = torch.device("cpu")
    naive = naive_sweep(model, batches, 5, masks, mode, where)
    cached = cached_sweep(model, batches, 5, masks, mode, where, variants_per_pass=2)
    np.testing.assert_allclose(cached, naive, rtol=1e-5, atol=1e-5, err_msg=name)
    assert np.abs(naive - naive[:1]).max() > 1e-5, f"{name}: no mask changes the logits"


def test_the_guard_fires_when_the_model_ignores_the_engine(family_model) -> None:
    """A forward whose attention bypasses the engine (here: switched back to plain eager inside
    the block) must raise, naming the model type, instead of returning unchanged scores."""
    _, model, _ = family_model
    batch = _batch()
    family = family_of(model.config.model_type)
    disabled = _disabled(model, 3, (0, 0, 0))
    with engine_attached(model), torch.inference_mode():
        if family.route == "engine":
            model.set_attn_implementation("eager")
        else:  # a hook-route family: the probability hooks are taken off
            for layer in layer_modules(model):
                module = layer
                for part in str(family.probs_module).split("."):
                    module = getattr(module, part)
                module._forward_hooks.clear()
        with pytest.raises(EngineError, match=model.config.model_type):
            model(
                **batch.model_inputs("cpu", family.takes_token_type_ids(model.config)),
                headlab=Controls(Intervention(disabled, "uniform")),
            )


@pytest.mark.parametrize(
    "config",
    [
        lambda: T.DebertaConfig(**SMALL),  # DeBERTa v1
        lambda: T.RemBertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            input_embedding_size=16,
            output_embedding_size=16,
            intermediate_size=37,
            pad_token_id=1,
        ),
    ],
)
def test_unsupported_families_are_refused_by_name(config) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForSequenceClassification.from_config(config(), attn_implementation="eager")
    with (
        pytest.raises(
            UnsupportedModelError, match=rf"{model.config.model_type}.*supported model types: bert"
        ),
        engine_attached(model),
    ):
        pass


def test_albert_with_several_layer_groups_is_refused() -> None:
    model = AutoModelForSequenceClassification.from_config(
        T.AlbertConfig(num_hidden_groups=2, embedding_size=16, **SMALL), attn_implementation="eager"
    )
    with pytest.raises(UnsupportedModelError, match="num_hidden_groups=2"), engine_attached(model):
        pass


# ----------------------------------------------------------------------------------------------
# Refused before any job (local and embedded models) or at the job's start (hub models)


def _config_folder(tmp_path, config: T.PretrainedConfig):
    folder = tmp_path / config.model_type
    config.save_pretrained(folder)  # config.json only: no weights, no tokenizer
    return folder


def test_config_check_refuses_an_unsupported_local_model_naming_alias_and_type(tmp_path) -> None:
    from headlab.workflow.checks import ConfigError, check_config
    from tiny import write_tiny_glue
    from workflow_helpers import CONFIGS, load_yaml

    config = load_yaml(CONFIGS / "test.yaml")
    config["models"] = [
        {
            "alias": "old-deberta",
            "source": "local",
            "path": str(_config_folder(tmp_path, T.DebertaConfig(**SMALL))),
        }
    ]
    config["primary_model"] = "old-deberta"
    config["data"]["local_dir"] = str(write_tiny_glue(tmp_path / "glue", ("MRPC", "SST-2")))
    with pytest.raises(ConfigError, match=r"models\.old-deberta: .*'deberta'.*supported model types: bert"):
        check_config(config)


def test_config_check_reads_distilbert_sizes_under_their_own_names(tmp_path) -> None:
    from headlab.model.specs import ModelSpec
    from headlab.workflow.checks import model_dimensions

    folder = _config_folder(tmp_path, CASES["distilbert"].config())
    assert model_dimensions(ModelSpec("d", "local", str(folder))) == (3, 4)


def test_a_hub_model_of_an_unsupported_family_fails_at_the_start_of_its_job(tmp_path) -> None:
    from headlab.data.tasks import get_task
    from headlab.model.loading import load_encoder, load_for_task
    from headlab.model.specs import ModelLoadError, ModelSpec

    folder = _config_folder(tmp_path, T.DebertaConfig(**SMALL))  # a hub id resolves the same way
    spec = ModelSpec("hubby", "hub", str(folder))
    with pytest.raises(ModelLoadError, match=r"models\.hubby: .*'deberta'.*supported model types"):
        load_for_task(spec, get_task("MRPC"), "pretrained", seed=0)
    with pytest.raises(ModelLoadError, match=r"models\.hubby: .*'deberta'"):
        load_encoder(spec)


def test_a_checkpoint_of_another_family_than_its_alias_is_refused(tmp_path) -> None:
    from headlab.model.loading import check_same_family
    from headlab.model.specs import ModelLoadError, ModelSpec

    alias_folder = _config_folder(tmp_path, CASES["bert"].config())
    other = AutoModelForSequenceClassification.from_config(
        CASES["mpnet"].config(), attn_implementation="eager"
    )
    with pytest.raises(ModelLoadError, match=r"models\.b is a 'bert' model, but its checkpoint .* 'mpnet'"):
        check_same_family(ModelSpec("b", "local", str(alias_folder)), other)


def test_attention_statistics_of_a_pair_sum_to_one_with_the_other_segment_present(family_model) -> None:
    """The statistics observer on every family: for pair examples (hand-built categories:
    [CLS] a a a [SEP] b b [SEP], then padding), cls + sep + within + across = 1 per head and
    example, and across_segment > 0 (the other sentence gets attention)."""
    from headlab.measure.attention_stats import STATS, AttentionStatsObserver
    from headlab.measure.tokens import TokenCategories

    name, model, _ = family_model
    batch = _batch((8, 8, 6), seed=9)
    is_real = batch.attention_mask.bool()  # (batch, tokens)
    is_cls = torch.zeros_like(is_real)
    is_cls[:, 0] = True
    is_sep = torch.zeros_like(is_real)
    is_sep[:2, [4, 7]] = True  # rows 0, 1: [CLS] a a a [SEP] b b [SEP]
    is_sep[2, [3, 5]] = True  # row 2: [CLS] a a [SEP] b [SEP]
    segment = torch.zeros_like(batch.input_ids)
    segment[:2, 5:8] = 1
    segment[2, 4:6] = 1
    categories = TokenCategories.from_masks(is_real, is_cls, is_sep, torch.zeros_like(is_real), segment)
    observer = AttentionStatsObserver(layer_count(model), head_count(model))
    observer.start(categories)
    _run(model, batch, Controls(observers=[observer]))
    values = observer.result()  # (batch, layers, heads, stats)
    col = {s: i for i, s in enumerate(STATS)}
    total = sum(values[..., col[s]] for s in ("cls", "sep", "within_segment", "across_segment"))
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=1e-5, err_msg=name)
    assert np.all(values[..., col["across_segment"]] > 0), name


def test_a_model_whose_layer_count_cannot_be_read_is_refused_by_the_config_check(tmp_path) -> None:
    import json

    from headlab.model.specs import ModelLoadError, ModelSpec
    from headlab.workflow.checks import model_dimensions

    folder = _config_folder(tmp_path, CASES["bert"].config())
    config = json.loads((folder / "config.json").read_text())
    del config["num_hidden_layers"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"models\.b: model type 'bert': the config has no layer count"):
        model_dimensions(ModelSpec("b", "local", str(folder)))


def test_gate_gradients_equal_finite_differences_of_the_score(family_model) -> None:
    """Michel's gate gradient dL/dxi_h (the zero mode's estimate, `headlab.model.attribution`)
    equals a central finite difference of the summed score under scaling the head's output by
    1 +- eps, done by hand on its value projection (the output is linear in the values). ALBERT
    shares its layer across depth, so scaling its weights gates the head at every depth."""
    from headlab.model.attribution import attribution_pass, example_scores

    name, model, case = family_model
    batch = _batch()
    batch = Batch(
        batch.rows, batch.input_ids, batch.token_type_ids, batch.attention_mask, torch.tensor([0, 2, 1])
    )
    head = 1
    zero = attribution_pass(model, [batch], 3, torch.device("cpu"), ["zero"], False)[
        "zero"
    ]  # (3, layers, heads)
    gate_gradient = -zero[:, :, head].sum() if name == "albert" else -zero[:, 0, head].sum()  # dS/dxi
    linear, rows = case.value(model, head)
    saved_weight, saved_bias = linear.weight.detach().clone(), None
    if linear.bias is not None:
        saved_bias = linear.bias.detach().clone()
    eps = 1e-3
    totals = []
    try:
        for sign in (1.0, -1.0):
            with torch.no_grad():
                linear.weight[rows] = saved_weight[rows] * (1 + sign * eps)
                if saved_bias is not None:
                    linear.bias[rows] = saved_bias[rows] * (1 + sign * eps)
            logits = torch.from_numpy(_run(model.double(), batch, None))  # (3, labels)
            totals.append(float(example_scores(logits, batch.labels, False).sum()))
    finally:
        model.float()
        with torch.no_grad():
            linear.weight.copy_(saved_weight)
            if saved_bias is not None:
                linear.bias.copy_(saved_bias)
    finite_difference = (totals[0] - totals[1]) / (2 * eps)
    assert abs(finite_difference) > 1e-3, f"{name}: the head has no effect on the score"
    np.testing.assert_allclose(gate_gradient, finite_difference, rtol=2e-3, atol=1e-5, err_msg=name)
