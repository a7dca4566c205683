"""Loading models and tokenizers: for a task, as a bare encoder, from a checkpoint, or by condition.

Where the weights come from is `headlab.model.specs.ModelSpec`; which weights each condition
means is `headlab.conditions`. ``scratch`` keeps the architecture (same config) and
re-initialises every weight with the model's own initialiser (normal with
``initializer_range``), seeded: the paper's "initialized with normal distribution".
`load_condition` is the one loader of a condition's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from headlab.conditions import check_condition, is_trained, starts_from_encoder
from headlab.data.tasks import TaskSpec
from headlab.model.families import UnsupportedModelError, check_config_supported
from headlab.model.inference import set_inference_precision
from headlab.model.pooling import PoolingError, restore_pooling, set_pooling
from headlab.model.specs import ModelLoadError, ModelSpec, check_checkpoint_dir


def _task_kwargs(task: TaskSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_labels": task.num_labels}
    kwargs["problem_type"] = "regression" if task.is_regression else "single_label_classification"
    return kwargs


def load_tokenizer(location: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(location, revision=revision)
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelLoadError(f"cannot read a tokenizer from {location}: {error}") from error


def supported_config(location: str | Path, revision: str | None, what: str) -> PretrainedConfig:
    """The config at `location`, after checking that headlab supports its family: an error naming
    `what` (the alias or checkpoint), the model type and the supported ones, before any weight is
    read (for hub models this is the job's first step)."""
    try:
        config = AutoConfig.from_pretrained(location, revision=revision)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{what}: cannot read the config of {location}: {error}") from error
    try:
        check_config_supported(config)
    except UnsupportedModelError as error:
        raise ModelLoadError(f"{what}: {error}") from error
    return config


def load_for_task(
    spec: ModelSpec, task: TaskSpec, condition: str, seed: int, pooling: str = "cls"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model with a fresh, seeded classification head reading `pooling`
    (`headlab.model.pooling`), and its tokenizer.

    ``condition`` (`headlab.conditions`) ``pretrained`` or ``finetuned``: the encoder's weights,
    where fine-tuning starts; ``scratch``: same config, all weights re-initialised by the model's
    own initialiser.
    """
    try:
        check_condition(condition)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None
    location = spec.resolve()
    supported_config(location, spec.revision, f"models.{spec.alias}")
    torch.manual_seed(seed)
    try:
        if starts_from_encoder(condition):
            model = AutoModelForSequenceClassification.from_pretrained(
                location, revision=spec.revision, attn_implementation="eager", **_task_kwargs(task)
            )
        else:
            config = AutoConfig.from_pretrained(location, revision=spec.revision, **_task_kwargs(task))
            config._attn_implementation = "eager"
            model = AutoModelForSequenceClassification.from_config(config)
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelLoadError(f"models.{spec.alias}: cannot load {location}: {error}") from error
    try:
        set_pooling(model, pooling)
    except PoolingError as error:
        raise ModelLoadError(f"models.{spec.alias}: {error}") from None
    return model, load_tokenizer(location, spec.revision)


def load_checkpoint(folder: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fine-tuned model saved by the workflow (Hugging Face format), reading the pooling it was
    trained with."""
    folder = Path(folder)
    check_checkpoint_dir(folder, "checkpoint")
    supported_config(folder, None, f"checkpoint {folder}")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelLoadError(f"cannot read the checkpoint in {folder}: {error}") from error
    try:
        restore_pooling(model)
    except PoolingError as error:
        raise ModelLoadError(f"checkpoint {folder}: {error}") from None
    return model, load_tokenizer(str(folder))


def load_encoder(spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The pretrained encoder (AutoModel, no task head) and its tokenizer."""
    location = spec.resolve()
    supported_config(location, spec.revision, f"models.{spec.alias}")
    try:
        model = AutoModel.from_pretrained(location, revision=spec.revision, attn_implementation="eager")
    except (OSError, ValueError, SafetensorError) as error:
        raise ModelLoadError(f"models.{spec.alias}: cannot load {location}: {error}") from error
    return model, load_tokenizer(location, spec.revision)


def load_condition(
    spec: ModelSpec, condition: str, checkpoint: str | Path | None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """The model of an analysis condition (`headlab.conditions`), its tokenizer and where its
    weights came from: the encoder for ``pretrained``, else the condition's fine-tuned checkpoint."""
    if not is_trained(condition):
        model, tokenizer = load_encoder(spec)
        return model, tokenizer, spec.location
    if checkpoint is None:
        raise ValueError(f"condition {condition!r} needs its fine-tuned checkpoint folder")
    model, tokenizer = load_checkpoint(checkpoint)
    check_same_family(spec, model)
    return model, tokenizer, str(checkpoint)


@dataclass(frozen=True)
class JobModel:
    """What a job that runs a model starts from: the model of one condition, its tokenizer, where
    its weights came from, the alias's spec and the device to run on."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: str  # the encoder's location, or the checkpoint folder
    spec: ModelSpec
    device: torch.device


def load_for_job(
    alias: str,
    entry: dict[str, Any],
    condition: str,
    checkpoint: str | Path | None,
    device: str,
    precision: str,
) -> JobModel:
    """The one loading preamble of the jobs: the config entry's spec, the condition's model
    (`load_condition`) and the device with the inference precision (`pick_device`)."""
    spec = ModelSpec.from_config(alias, entry)
    model, tokenizer, source = load_condition(spec, condition, checkpoint)
    return JobModel(model, tokenizer, source, spec, pick_device(device, precision))


def check_same_family(spec: ModelSpec, checkpoint_model: PreTrainedModel) -> None:
    """A checkpoint must be of the model type its alias names (a wrong folder is an error)."""
    alias_type = supported_config(spec.resolve(), spec.revision, f"models.{spec.alias}").model_type
    if checkpoint_model.config.model_type != alias_type:
        raise ModelLoadError(
            f"models.{spec.alias} is a {alias_type!r} model, but its checkpoint "
            f"{checkpoint_model.name_or_path} is a {checkpoint_model.config.model_type!r} model"
        )


def pick_device(requested: str, precision: str = "float32") -> torch.device:
    """'auto' takes CUDA when present; 'cuda' without a GPU is an error, not a silent fallback.
    The job's inference passes then run in `precision` (`set_inference_precision`: float32, or
    bf16 on CUDA only)."""
    if requested == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' asks for CUDA but no CUDA device is available")
    else:
        device = torch.device(requested)
    set_inference_precision(precision, device)
    return device
