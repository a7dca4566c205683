"""The sequence representation a task's classifier reads (config key ``finetune.pooling``).

- ``cls`` (default): the model's own readout; for BERT its pooler (dense + tanh over [CLS]).
- ``mean``: the mean of the last layer's hidden states over the real tokens, in place of the
  pooler's output (its dense layer and tanh are not used). This is the readout
  sentence-transformers trained all-MiniLM-L6-v2 with; that checkpoint's [CLS] pooler is left
  over from before its contrastive training.

The choice is written into the model's config (``headlab_pooling``), so a checkpoint is read
back with the readout it was trained with (`restore_pooling`, which
`headlab.model.loading.load_checkpoint` calls). ``mean`` is implemented for model type ``bert``
(the pooler is a module whose output a hook replaces); other families are refused by name, never
silently read through [CLS].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch-free at import: the config checks read POOLINGS while Snakemake parses
    import torch
    from transformers import PreTrainedModel

POOLINGS = ("cls", "mean")
CONFIG_KEY = "headlab_pooling"
MEAN_POOLING_TYPES = ("bert",)
_HOOKED = "_headlab_mean_pooling"  # marks a model whose pooler is already replaced


class PoolingError(ValueError):
    """A pooling headlab does not know, or cannot apply to a model's family."""


def check_pooling(pooling: str, model_type: str | None, who: str = "the model") -> None:
    """An error naming ``finetune.pooling``, `who` and what would be valid."""
    if pooling not in POOLINGS:
        raise PoolingError(f"finetune.pooling: {pooling!r} is not one of {', '.join(POOLINGS)}")
    if pooling == "mean" and model_type not in MEAN_POOLING_TYPES:
        raise PoolingError(
            f"finetune.pooling: 'mean' is implemented for model types {', '.join(MEAN_POOLING_TYPES)}, "
            f"but {who} is a {model_type!r} model; use 'cls' for it"
        )


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The mean over real tokens: hidden (B, L, H), mask (B, L) of 1/0 or None (all real) -> (B, H)."""
    if mask is None:
        return hidden.mean(dim=1)
    if mask.shape != hidden.shape[:2]:
        raise PoolingError(f"mean pooling needs a (batch, length) attention mask, got {tuple(mask.shape)}")
    weights = mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, H)


def _attention_mask(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """The attention mask a base model was called with (keyword, or BERT's second argument)."""
    if "attention_mask" in kwargs:
        return kwargs["attention_mask"]
    return args[1] if len(args) > 1 else None


def set_pooling(model: PreTrainedModel, pooling: str) -> PreTrainedModel:
    """Make `model`'s classifier read `pooling` and record it in its config; returns the model."""
    check_pooling(pooling, model.config.model_type, model.name_or_path or "the model")
    if getattr(model, _HOOKED, False):
        if pooling != "mean":
            raise PoolingError(f"finetune.pooling: this model already reads 'mean', not {pooling!r}")
        return model
    setattr(model.config, CONFIG_KEY, pooling)
    if pooling == "cls":
        return model
    base = model.base_model
    pooler = getattr(base, "pooler", None)
    if pooler is None:
        raise PoolingError("finetune.pooling: 'mean' replaces the pooler's output, but this model has none")
    batch: dict[str, torch.Tensor | None] = {}  # the attention mask of the forward pass in progress

    def remember_mask(_module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        batch["mask"] = _attention_mask(args, kwargs)

    def mean_instead(_module: torch.nn.Module, args: tuple[Any, ...], _output: torch.Tensor) -> torch.Tensor:
        return masked_mean(args[0], batch.get("mask"))  # (B, L, H) -> (B, H)

    base.register_forward_pre_hook(remember_mask, with_kwargs=True)
    pooler.register_forward_hook(mean_instead)
    setattr(model, _HOOKED, True)
    return model


def saved_pooling(config: Any) -> str:
    """The pooling a model config records (``cls`` when it records none: checkpoints before it)."""
    return getattr(config, CONFIG_KEY, None) or "cls"


def restore_pooling(model: PreTrainedModel) -> PreTrainedModel:
    """A loaded checkpoint with the readout its config records."""
    return set_pooling(model, saved_pooling(model.config))
