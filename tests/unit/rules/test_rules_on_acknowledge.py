"""A rule's `on_acknowledge`: continue (the default) or stop, checked at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.config.refs import config_names
from opsmedic.errors import ConfigError
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry

NAMES = config_names({})


def test_on_acknowledge_defaults_to_continue_and_takes_stop(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("- name: a\n  when: {source: x}\n  do: [noop]\n"
                    "- name: b\n  when: {source: x}\n  do: [noop]\n  on_acknowledge: stop\n")  # fmt: skip
    ruleset = load_rules(path, build_registry(), NAMES)
    assert [r.on_acknowledge for r in ruleset] == ["continue", "stop"]


def test_an_unknown_choice_is_an_error_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("- name: a\n  when: {source: x}\n  do: [noop]\n  on_acknowledge: stopp\n")
    with pytest.raises(ConfigError) as info:
        load_rules(path, build_registry(), NAMES)
    (problem,) = info.value.problems
    assert (problem.line, problem.col) == (4, 19)
    assert str(problem).endswith(
        "[0].on_acknowledge: Input should be 'continue' or 'stop' (did you mean stop?)"
    )
