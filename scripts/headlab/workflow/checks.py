"""Checks of a (schema-valid) config that need more than a JSON schema.

They run when Snakemake parses the workflow, so a bad config stops the run before any job
starts, with a message naming the config key and what would be valid. Masks are checked
against the model's size when its config.json is on disk (local and embedded models); a hub
model's masks are checked when its job starts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from headlab.data.glue import GlueDataError, local_split_path
from headlab.data.tasks import UnknownTaskError, get_task
from headlab.model.masks import MaskError, parse_named_mask
from headlab.model.specs import ModelLoadError, ModelSpec

SPLITS = ("train", "dev")


class ConfigError(ValueError):
    """One or more problems in the config, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid config:\n  - " + "\n  - ".join(problems))
        self.problems = problems


def model_specs(config: Mapping[str, Any]) -> dict[str, ModelSpec]:
    """alias -> ModelSpec, in config order."""
    return {entry["alias"]: ModelSpec.from_config(entry["alias"], entry) for entry in config["models"]}


def model_dimensions(spec: ModelSpec) -> tuple[int, int] | None:
    """(layers, heads) from a config.json on disk; None for hub models (not downloaded here)."""
    if spec.source == "hub":
        return None
    with open(Path(spec.resolve()) / "config.json") as handle:
        model_config = json.load(handle)
    return int(model_config["num_hidden_layers"]), int(model_config["num_attention_heads"])


def _task_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    for i, name in enumerate(config["tasks"]):
        try:
            get_task(name)
        except UnknownTaskError as error:
            problems.append(f"tasks[{i}]: {error}")
    return problems


def _model_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    aliases = [entry["alias"] for entry in config["models"]]
    duplicates = sorted({a for a in aliases if aliases.count(a) > 1})
    if duplicates:
        problems.append(f"models: alias used twice: {', '.join(duplicates)}")
    primary = config.get("primary_model")
    if primary is not None and primary not in aliases:
        problems.append(f"primary_model: {primary!r} is not a model alias; valid: {', '.join(aliases)}")
    for entry in config["models"]:
        try:
            spec = ModelSpec.from_config(entry["alias"], entry)
            dims = model_dimensions(spec)
        except (ModelLoadError, OSError, KeyError, ValueError) as error:
            problems.append(str(error))
            continue
        if dims is None:
            continue
        for i, mask in enumerate(config.get("ablation", {}).get("masks", [])):
            try:
                parse_named_mask(mask["name"], mask["heads"], *dims, key=f"ablation.masks[{i}]")
            except MaskError as error:
                problems.append(f"{error} (model {spec.alias})")
    return problems


def _data_problems(config: Mapping[str, Any]) -> list[str]:
    data = config.get("data", {})
    if data.get("source", "hub") != "local":
        return []
    local_dir = data.get("local_dir")
    if not local_dir:
        return ["data.local_dir must name the GLUE folder when data.source is 'local'"]
    if not Path(local_dir).is_dir():
        return [f"data.local_dir: {local_dir} is not a directory (from {Path.cwd()})"]
    problems = []
    for name in config["tasks"]:
        try:
            task = get_task(name)
        except UnknownTaskError:
            continue  # reported by _task_problems
        for split in SPLITS:
            try:
                path = local_split_path(local_dir, task, split, data.get("files", {}).get(name))
            except GlueDataError as error:
                problems.append(f"data.local_dir: {error}")
                continue
            if path.stat().st_size == 0:
                problems.append(f"data.local_dir: {path} is empty")
    return problems


def _figure_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    for name, metric in config.get("figures", {}).get("metric", {}).items():
        try:
            task = get_task(name)
        except UnknownTaskError as error:
            problems.append(f"figures.metric.{name}: {error}")
            continue
        if metric not in task.metrics:
            problems.append(
                f"figures.metric.{name}: {metric!r} is not a {name} metric; valid: {', '.join(task.metrics)}"
            )
    return problems


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError listing every problem found (after JSON-schema validation)."""
    problems = (
        _task_problems(config) + _model_problems(config) + _data_problems(config) + _figure_problems(config)
    )
    if problems:
        raise ConfigError(problems)
