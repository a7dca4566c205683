"""The config's defaults, read from the one place they live: the JSON schema
(`schemas/config.schema.yaml`, applied by Snakemake's `validate`). Library dataclasses take
values and have no defaults of their own; tests and benchmarks that need the workflow's
defaults read them here."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "config.schema.yaml"


@cache
def _schema() -> dict[str, Any]:
    with open(SCHEMA, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def config_defaults(section: str) -> dict[str, Any]:
    """The default of every key of a config section (dotted: "statistics",
    "patterns.thresholds") that has one; KeyError naming the section when there is none."""
    node = _schema()
    for key in section.split("."):
        properties = node.get("properties", {})
        if key not in properties:
            raise KeyError(f"the config schema {SCHEMA} has no section {section!r}")
        node = properties[key]
    return {key: value["default"] for key, value in node.get("properties", {}).items() if "default" in value}
