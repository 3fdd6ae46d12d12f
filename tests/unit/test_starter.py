"""The starter opsmedic.yaml of `opsmedic init` and the documented defaults match the schema."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from opsmedic.config.schema import Config
from opsmedic.runtime import build_registry

# The plugins' own sections (notify, annotate…), top-level keys beside Config's.
SECTIONS = {spec.key: spec.model for spec in build_registry(load_entry_points=False).settings()}
DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"
# The one key the starter sets on purpose: a probe for the starter rule to act on.
STARTER_ADDS = {"probes"}


def keys() -> set[str]:
    # base_dir is set by the loader, not a config key
    return set(Config.model_fields) - {"base_dir"} | set(SECTIONS)


def differences(data: dict[str, Any]) -> set[str]:
    """Top-level keys whose value, once validated, is not the schema's default."""
    own = {key: value for key, value in data.items() if key not in SECTIONS}
    given, default = Config.model_validate(own).model_dump(), Config().model_dump()
    for key, model in SECTIONS.items():
        given[key] = model.model_validate(data.get(key, {})).model_dump()
        default[key] = model.model_validate({}).model_dump()
    return {key for key in keys() if given[key] != default[key]}


def starter_text() -> str:
    return resources.files("opsmedic.starter").joinpath("opsmedic.yaml").read_text()


def test_the_starter_has_every_top_level_key_with_its_default() -> None:
    data = yaml.safe_load(starter_text())
    assert set(data) == keys()
    assert differences(data) == STARTER_ADDS
    assert [p["name"] for p in data["probes"]] == ["self-check"]


def test_every_top_level_key_of_the_starter_is_commented() -> None:
    lines = starter_text().splitlines()
    uncommented = [
        line for n, line in enumerate(lines)
        if re.match(r"[a-z_]+:", line) and not lines[n - 1].startswith("#")
    ]  # fmt: skip
    assert uncommented == []


def test_the_documented_defaults_are_the_schema_defaults() -> None:
    """docs/configuration.md's "Every key, with its default" block, validated."""
    text = DOCS.read_text()
    section = text[text.index("## Every key, with its default") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```\n", 8)]
    data = yaml.safe_load(block)
    assert set(data) == keys()
    assert differences(data) == set()
