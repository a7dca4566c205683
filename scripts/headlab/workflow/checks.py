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

from headlab.conditions import ATTENTION_CONDITIONS
from headlab.data.glue import GlueDataError, local_split_path, resolve_source
from headlab.data.tasks import UnknownTaskError, get_task
from headlab.model.families import UnsupportedModelError, check_config_supported, family_of
from headlab.model.masks import MaskError, parse_named_mask
from headlab.model.pooling import PoolingError, check_pooling
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
    """(layers, heads) from a config.json on disk, under the family's config names, after checking
    that headlab supports the model's family (`headlab.model.families`); None for hub models (not
    downloaded here: their family is checked when their job starts)."""
    if spec.source == "hub":
        return None
    with open(Path(spec.resolve()) / "config.json") as handle:
        model_config = json.load(handle)
    try:
        family = check_config_supported(model_config, spec.alias)
    except UnsupportedModelError as error:
        raise ModelLoadError(f"models.{spec.alias}: {error}") from error
    return family.layer_count(model_config), family.head_count(model_config)


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


def _precision_problems(config: Mapping[str, Any]) -> list[str]:
    """precision bf16 needs CUDA (device cuda, or auto on a machine with a GPU: checked by the job)."""
    if config.get("precision") == "bf16" and config.get("device") == "cpu":
        return ["precision: bf16 needs a CUDA device, but device is cpu; use float32"]
    return []


def _seed_problems(config: Mapping[str, Any]) -> list[str]:
    finetune = config.get("finetune", {})
    chosen, seeds = finetune.get("analysis_seed"), finetune.get("seeds", [])
    if chosen is not None and chosen not in seeds:
        return [f"finetune.analysis_seed: {chosen} is not one of finetune.seeds {list(seeds)}"]
    return []


def _pattern_condition_problems(config: Mapping[str, Any]) -> list[str]:
    """patterns.condition must be a condition of the attention analyses (they build no other)."""
    chosen = config.get("patterns", {}).get("condition")
    if chosen is not None and chosen not in ATTENTION_CONDITIONS:
        return [f"patterns.condition: {chosen!r} is not one of {', '.join(ATTENTION_CONDITIONS)}"]
    return []


PER_TASK_KEYS = (("data", "max_train_examples"), ("data", "max_eval_examples"), ("finetune", "by_task"))


def _per_task_problems(config: Mapping[str, Any]) -> list[str]:
    """Per-task entries (data.max_*_examples as a mapping, finetune.by_task) must name GLUE tasks
    (a task that is not configured is ignored, so a config's entries survive narrowing `tasks`)."""
    problems = []
    for section, key in PER_TASK_KEYS:
        entries = config.get(section, {}).get(key)
        if not isinstance(entries, Mapping):
            continue
        for task in entries:
            try:
                get_task(task)
            except UnknownTaskError as error:
                problems.append(f"{section}.{key}.{task}: {error}")
    return problems


def _local_model_types(config: Mapping[str, Any]) -> list[tuple[ModelSpec, str]]:
    """(spec, model type) of each model whose config.json is on disk (hub models are checked when
    their job starts; unreadable or unsupported ones are reported by the model checks)."""
    found = []
    for entry in config["models"]:
        spec = ModelSpec.from_config(entry["alias"], entry)
        if spec.source == "hub":
            continue
        try:
            with open(Path(spec.resolve()) / "config.json") as handle:
                model_config = json.load(handle)
            check_config_supported(model_config, spec.alias)
        except (OSError, ModelLoadError, UnsupportedModelError, ValueError):
            continue
        found.append((spec, model_config["model_type"]))
    return found


def _mean_mode_problems(config: Mapping[str, Any]) -> list[str]:
    """Mode mean needs the head's context vector, which hook-route families do not expose."""
    if "mean" not in config.get("ablation", {}).get("modes", []):
        return []
    return [
        f"ablation.modes: 'mean' needs each head's output, which headlab cannot reach in "
        f"models.{spec.alias} (model type {model_type!r} forms its attention itself); "
        "use uniform or zero for it"
        for spec, model_type in _local_model_types(config)
        if family_of(model_type).route == "hooks"
    ]


def _pooling_problems(config: Mapping[str, Any]) -> list[str]:
    """finetune.pooling (shared or a task's) must be one every configured model can read."""
    finetune = config.get("finetune", {})
    chosen = {finetune.get("pooling", "cls")} | {
        entry.get("pooling", "cls") for entry in (finetune.get("by_task") or {}).values()
    }
    problems = []
    for spec, model_type in _local_model_types(config):
        for pooling in sorted(chosen):
            try:
                check_pooling(pooling, model_type, f"models.{spec.alias}")
            except PoolingError as error:
                problems.append(str(error))
    return problems


def _data_problems(config: Mapping[str, Any]) -> list[str]:
    data = config.get("data", {})
    # auto with no folder at local_dir reads the hub; with one, that folder is checked as local.
    if resolve_source(data.get("source", "hub"), data.get("local_dir")) != "local":
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
        overrides = (data.get("files") or {}).get(name) or {}
        for split in SPLITS:
            # a file named in data.files is that key's problem; a standard one is data.local_dir's
            key = f"data.files.{name}.{split}" if split in overrides else "data.local_dir"
            try:
                path = local_split_path(local_dir, task, split, overrides)
            except GlueDataError as error:
                problems.append(f"{key}: {error}")
                continue
            if path.stat().st_size == 0:
                problems.append(f"{key}: {path} is empty")
    for name in data.get("files") or {}:
        try:
            get_task(name)
        except UnknownTaskError as error:
            problems.append(f"data.files.{name}: {error} (its files would never be read)")
    return problems


def _mask_problems(config: Mapping[str, Any]) -> list[str]:
    """Mask names are job wildcards and file names: one name, one mask."""
    names = [mask["name"] for mask in config.get("ablation", {}).get("masks", [])]
    return [
        f"ablation.masks[{i}]: name {name!r} is already used by ablation.masks[{names.index(name)}]; "
        "each mask needs its own name"
        for i, name in enumerate(names)
        if names.index(name) != i
    ]


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


# Keys of earlier versions, and what replaced them (said before the schema's generic message).
RENAMED_KEYS = {
    ("finetune", "seed"): "finetune.seeds (a list, e.g. [42]): each seed is its own set of jobs",
    ("patterns", "variant"): "patterns.condition (pretrained or finetuned, the words of headlab.conditions)",
}


def check_renamed_keys(config: Mapping[str, Any]) -> None:
    """Raise ConfigError naming each key of an earlier version that the config still uses."""
    problems = [
        f"{section}.{key} is no longer a key: use {replacement}"
        for (section, key), replacement in RENAMED_KEYS.items()
        if isinstance(config.get(section), Mapping) and key in config[section]
    ]
    if problems:
        raise ConfigError(problems)


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError listing every problem found (after JSON-schema validation)."""
    problems = (
        (_task_problems(config) + _model_problems(config) + _data_problems(config) + _figure_problems(config))
        + _mask_problems(config)
        + _per_task_problems(config)
        + _mean_mode_problems(config)
        + _pooling_problems(config)
        + _seed_problems(config)
        + _precision_problems(config)
        + _pattern_condition_problems(config)
    )
    if problems:
        raise ConfigError(problems)
