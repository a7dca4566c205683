"""Encoder families: where the layers are, the config's size names, the inputs, how attention is reached.

One `Family` per supported group of Hugging Face ``model_type`` values (torch-free, so that the
config check can read a config.json while Snakemake parses the workflow). What each entry says:

- ``layers``: the dotted path from the base model to its list of layers (``encoder.layer`` for
  BERT, ``transformer.layer`` for DistilBERT, ``layers`` for ModernBERT); ALBERT has none: one
  shared layer (``shared_layer``) is called once per depth, so a layer's index is its call's
  position within the forward pass (which is how the engine counts for every family);
- ``layer_keys``/``head_keys``: what the config calls the layer and head counts;
- ``token_type_ids``: whether the model takes them (DistilBERT, ModernBERT, MPNet do not);
- ``route``: ``engine`` where the family computes attention through transformers'
  ``AttentionInterface`` (the registered function `headlab.model.engine`), ``hooks`` where it
  forms the probabilities itself (DeBERTa-v2/v3, MPNet): then a forward hook on the module whose
  output is the probabilities (``probs_module``, the attention dropout, inside each layer)
  applies the same `Controls`.

Every other model type is refused by name (`family_of`), never run with a silent no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UnsupportedModelError(ValueError):
    """A model whose family headlab cannot intervene on exactly."""


def config_value(config: Any, key: str, default: Any = None) -> Any:
    """`key` of a config object or of a config.json mapping."""
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]
    layers: str | None  # dotted path from the base model to the layer ModuleList
    layer_keys: tuple[str, ...] = ("num_hidden_layers",)
    head_keys: tuple[str, ...] = ("num_attention_heads",)
    token_type_ids: bool = True
    route: str = "engine"  # engine | hooks
    probs_module: str | None = None  # hooks: path inside a layer to the module that outputs the probs
    shared_layer: str | None = None  # ALBERT: path from the base model to the one shared layer

    def _read(self, config: Any, keys: tuple[str, ...], what: str) -> int:
        for key in keys:
            value = config_value(config, key)
            if value is not None:
                return int(value)
        raise UnsupportedModelError(
            f"model type {self.name!r}: the config has no {what} count (looked for {', '.join(keys)})"
        )

    def layer_count(self, config: Any) -> int:
        """The number of layers, from a config object or a config.json mapping."""
        return self._read(config, self.layer_keys, "layer")

    def head_count(self, config: Any) -> int:
        """The number of heads per layer, from a config object or a config.json mapping."""
        return self._read(config, self.head_keys, "head")

    def takes_token_type_ids(self, config: Any) -> bool:
        """Whether the model's forward reads token_type_ids (DeBERTa-v3 has type_vocab_size 0)."""
        sizes = (
            config.get("type_vocab_size", 1)
            if isinstance(config, Mapping)
            else getattr(config, "type_vocab_size", 1)
        )
        return self.token_type_ids and int(sizes or 0) > 0


FAMILIES = (
    Family("bert", ("bert",), "encoder.layer"),
    Family("roberta", ("roberta", "xlm-roberta", "camembert"), "encoder.layer"),
    Family("electra", ("electra",), "encoder.layer"),
    Family(
        "distilbert",
        ("distilbert",),
        "transformer.layer",
        layer_keys=("n_layers", "num_hidden_layers"),
        head_keys=("n_heads", "num_attention_heads"),
        token_type_ids=False,
    ),
    Family("albert", ("albert",), None, shared_layer="encoder.albert_layer_groups.0.albert_layers.0"),
    Family(
        "deberta-v2", ("deberta-v2",), "encoder.layer", route="hooks", probs_module="attention.self.dropout"
    ),
    Family("modernbert", ("modernbert",), "layers", token_type_ids=False),
    Family(
        "mpnet",
        ("mpnet",),
        "encoder.layer",
        token_type_ids=False,
        route="hooks",
        probs_module="attention.attn.dropout",
    ),
)
SUPPORTED_MODEL_TYPES = tuple(t for family in FAMILIES for t in family.model_types)


def family_of(model_type: str | None, alias: str | None = None) -> Family:
    """The family of a Hugging Face ``model_type``; an error naming it and the supported ones."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    who = f"model {alias!r} has " if alias else ""
    raise UnsupportedModelError(
        f"{who}model type {model_type!r}, which headlab cannot intervene on exactly; "
        f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


def check_config_supported(config: Any, alias: str | None = None) -> Family:
    """The family of a model config (object or config.json mapping), after checking that its layer
    and head counts can be read and that its layout is one headlab handles."""
    model_type = (
        config.get("model_type") if isinstance(config, Mapping) else getattr(config, "model_type", None)
    )
    family = family_of(model_type, alias)
    family.layer_count(config)
    family.head_count(config)
    if family.shared_layer is not None:
        get = (
            config.get if isinstance(config, Mapping) else lambda key, default: getattr(config, key, default)
        )
        groups, inner = int(get("num_hidden_groups", 1)), int(get("inner_group_num", 1))
        if (groups, inner) != (1, 1):
            raise UnsupportedModelError(
                f"model {alias or ''} (albert) has num_hidden_groups={groups}, inner_group_num={inner}; "
                "headlab supports ALBERT with one shared layer (num_hidden_groups = inner_group_num = 1)"
            )
    return family
