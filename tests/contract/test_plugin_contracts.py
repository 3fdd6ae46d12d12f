"""Every built-in plugin keeps the contract third-party ones must keep too."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from opsmedic.plugins import ActionSpec, ProbeSpec
from opsmedic.runtime import build_registry

REGISTRY = build_registry(load_entry_points=False)
DOCS = Path(__file__).parent.parent.parent / "docs"
SPECS: list[ActionSpec[Any] | ProbeSpec[Any]] = [
    *REGISTRY.actions.values(),
    *REGISTRY.probes.values(),
]


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_params_refuse_unknown_keys(spec: ActionSpec[Any] | ProbeSpec[Any]) -> None:
    """A typo in a rule or probe is an error with close matches, never silently ignored."""
    assert spec.params.model_config.get("extra") == "forbid"


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_the_entry_point_is_one_coroutine_taking_params_and_a_context(
    spec: ActionSpec[Any] | ProbeSpec[Any],
) -> None:
    entry = spec.run if isinstance(spec, ActionSpec) else spec.check
    assert inspect.iscoroutinefunction(entry)
    assert len(inspect.signature(entry).parameters) == 2


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_each_plugin_is_documented(spec: ActionSpec[Any] | ProbeSpec[Any]) -> None:
    doc = DOCS / ("actions.md" if isinstance(spec, ActionSpec) else "probes.md")
    assert f"`{spec.name}`" in doc.read_text()
