"""One-step rule files for tests: write one, load it, and get the one problem it has."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.errors import ConfigError, Problem
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry


def load_problem(tmp_path: Path, step: str) -> Problem:
    """The single problem of a rule `when: {source: disk}` whose one step is `step` (line 4)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"- name: r\n  when: {{source: disk}}\n  do:\n    - {step}\n")
    with pytest.raises(ConfigError) as info:
        load_rules(rules, build_registry(load_entry_points=False))
    (problem,) = info.value.problems
    return problem
