"""A step's `approve:` option: parsed with the step, every bad input located at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.errors import ConfigError
from opsmedic.rules.approval import ApprovalSpec
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry

RULE = "- name: a\n  when: {source: x}\n  do:\n    - noop\n    - noop: {}\n      approve: %s\n"


def load(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path, build_registry())
    return [str(p) for p in info.value.problems]


def test_a_step_carries_its_approval(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE % "{timeout: 10m, on_timeout: escalate}")
    (rule,) = load_rules(tmp_path, build_registry()).rules
    assert rule.steps[0].approve is None
    assert rule.steps[1].approve == ApprovalSpec(600.0, "escalate")
    assert rule.actions == ["noop", "noop"]  # `approve` is an option, not an action


def test_on_timeout_defaults_to_skip(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(RULE % "{timeout: 90s}")
    (rule,) = load_rules(tmp_path, build_registry()).rules
    assert rule.steps[1].approve == ApprovalSpec(90.0, "skip")


@pytest.mark.parametrize(
    ("approve", "expected"),
    [
        ("{timeout: 0s}", "r.yaml:6:26: [0].do[1].approve.timeout: must be more than 0"),
        ("{timeout: -5}", "r.yaml:6:26: [0].do[1].approve.timeout: a duration cannot be negative"),
        ("{timeout: soon}", "r.yaml:6:26: [0].do[1].approve.timeout: not a duration: 'soon'"),
        ("{on_timeout: run}", "r.yaml:6:16: [0].do[1].approve: needs a timeout"),
        ("{timeout: 1m, on_timeout: retry}",
         "r.yaml:6:42: [0].do[1].approve.on_timeout: unknown on_timeout 'retry' (use skip, run, "
         "escalate)"),
        ("{timeout: 1m, by: alice}", "r.yaml:6:30: [0].do[1].approve.by: unknown key 'by'"),
        ("yes", "r.yaml:6:16: [0].do[1].approve: a mapping like {timeout: 10m"),
    ],
)  # fmt: skip
def test_each_bad_approval_is_located(tmp_path: Path, approve: str, expected: str) -> None:
    found = load(tmp_path, RULE % approve)
    assert any(expected in p for p in found), found


def test_an_on_failure_step_cannot_wait(tmp_path: Path) -> None:
    """Clean-up after a failure has nobody to wait for: refused, not silently ignored."""
    text = ("- name: a\n  when: {source: x}\n  do: [noop]\n  on_failure:\n"
            "    - noop: {}\n      approve: {timeout: 1m}\n")  # fmt: skip
    (found,) = load(tmp_path, text)
    assert found.endswith(
        "[0].on_failure[0].approve: only a rule's do: steps can wait for approval"
    )
