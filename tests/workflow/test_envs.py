"""Per-rule environments: every rule names one that exists, and its pins match pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~ ]", dep, maxsplit=1)[0].lower(): dep for dep in project["dependencies"]}


def env_pins(path: Path) -> list[str]:
    spec = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    return list(pip)


@pytest.mark.parametrize("env", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_match_pyproject(env):
    pins = pyproject_pins()
    for requirement in env_pins(env):
        name = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0].lower()
        assert name in pins, f"{env.name}: {name} is not a dependency in pyproject.toml"
        assert requirement.replace(" ", "") == pins[name].replace(" ", ""), (
            f"{env.name} pins {requirement!r} but pyproject.toml pins {pins[name]!r}"
        )


def test_every_rule_names_an_existing_environment():
    rules = sorted((ROOT / "rules").glob("*.smk"))
    named = []
    for rule_file in rules:
        for match in re.finditer(r'conda:\s*\n\s*"([^"]+)"', rule_file.read_text()):
            target = (rule_file.parent / match.group(1)).resolve()
            assert target.is_file(), f"{rule_file.name} names {match.group(1)}, which does not exist"
            named.append(target)
    rule_count = sum(len(re.findall(r"^rule \w+:", f.read_text(), re.M)) for f in rules)
    assert len(named) == rule_count, "every rule must declare conda: (use rule ... with: inherits it)"
