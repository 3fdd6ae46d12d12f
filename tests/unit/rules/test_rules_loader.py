"""Loading rule files: a good set compiles; every bad input is one located line; all-or-nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.errors import ConfigError
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry

GOOD = """\
- name: archive-app-logs
  when:
    source: disk
    resource: /var/log/app
    value: "> 85"
    for: 30s
  do:
    - run_command: {argv: [echo, "{{ event.resource }}"], timeout: "{{ event.labels.t }}"}
      continue_on_failure: true
      timeout: 5s
      max_attempts: 2
    - noop
  throttle: {once_within: 10m, per: [host, resource]}
  limit: {max_runs: 3, within: 1h}
  on_failure:
    - noop: {message: "log archive failed on {{ event.host }}"}
- name: disabled-one
  enabled: false
  when: {source: x}
  do: [noop]
"""


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_rules(write(tmp_path, text), build_registry())
    return [str(p) for p in info.value.problems]


def test_it_loads_a_good_rule_file(tmp_path: Path) -> None:
    """The DESIGN.md example loads with its options; disabled rules are left out."""
    ruleset = load_rules(write(tmp_path, GOOD), build_registry())
    assert [r.name for r in ruleset] == ["archive-app-logs"]
    rule = ruleset.rules[0]
    assert rule.for_s == 30
    assert rule.actions == ["run_command", "noop"]
    assert rule.steps[0].continue_on_failure and rule.steps[0].timeout == 5
    assert rule.steps[0].max_attempts == 2
    assert rule.throttle is not None and rule.throttle.once_within == 600
    assert rule.limit is not None and rule.limit.within == 3600
    assert rule.line == 1 and rule.file.endswith("r.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- name: a\n  when: {source: x\n", "r.yaml:3:1: invalid YAML"),
        (
            "- name: a\n  when: {source: x}\n  when: {source: y}\n  do: [noop]\n",
            "r.yaml:3:3: [0].when: duplicate key 'when'",
        ),
        (
            "- name: a\n  when: {source: x}\n  do:\n    - run_comand: {argv: [x]}\n",
            "r.yaml:4:7: [0].do[0].run_comand: unknown action 'run_comand' (did you mean run_command?)",
        ),
        (
            "- name: a\n  when: {source: x}\n  do:\n    - run_command: {argv: 5}\n",
            "r.yaml:4:27: [0].do[0].run_command.argv: Input should be a valid list",
        ),
        (
            "- name: a\n  when: {kind: {regex: '('}}\n  do: [noop]\n",
            "r.yaml:2:24: [0].when.kind.regex: regex '(' does not compile",
        ),
        (
            "- name: a\n  when: {source: x, for: soon}\n  do: [noop]\n",
            "r.yaml:2:26: [0].when.for: not a duration: 'soon'",
        ),
        (
            "- name: a\n  when: {source: x}\n  do: [noop]\n  thottle: {once_within: 1m}\n",
            "r.yaml:4:3: [0].thottle: unknown field 'thottle' (did you mean throttle?)",
        ),
        (
            "- name: a\n  when: {source: x}\n  do: [noop]\n- name: a\n  when: {source: y}\n  do: [noop]\n",
            "r.yaml:4:9: [1].name: duplicate rule name, first in",
        ),
        (
            "- name: a\n  when: {source: x}\n  do: [noop]\n  throttle: {once_within: 1m, per: [hots]}\n",
            "r.yaml:4:37: [0].throttle.per[0]: unknown field 'hots'",
        ),
        (
            "- name: a\n  when: {source: x}\n  do: [{noop: {}, max_attempts: 0}]\n",
            "r.yaml:3:33: [0].do[0].max_attempts: must be a whole number from 1 to 20",
        ),
        (
            "- name: a\n  when: {source: x}\n  do: [{noop: {}, run_command: {argv: [x]}}]\n",
            "r.yaml:3:8: [0].do[0]: a step names exactly one action",
        ),
        (  # a value nested past the bound: located, never a RecursionError
            "- name: a\n  when: {source: x, labels.x: "
            + "[" * 900
            + "]" * 900
            + "}\n  do: [noop]\n",
            "r.yaml:2:128: [0].when.labels.x" + "[0]" * 97 + ": nested deeper than 100",
        ),
        ("name: a\n", "r.yaml:1:1: a rule file holds a list of rules"),
        ("- name: a\n  do: [noop]\n", "r.yaml:1:3: [0].when: required field is missing"),
    ],
)
def test_it_locates_each_bad_input(tmp_path: Path, text: str, expected: str) -> None:
    """Each error is one line naming file:line:col and the field."""
    found = problems(tmp_path, text)
    assert any(p.endswith(expected) or expected in p for p in found), found


def test_a_duplicate_name_is_reported_even_when_either_rule_has_other_problems(
    tmp_path: Path,
) -> None:
    """One round of `check` shows the duplicate beside the other problems, not after them."""
    found = problems(tmp_path, "- name: a\n  when: {sorce: x}\n  do: [noop]\n"
                               "- name: a\n  when: {source: y}\n  do: [nope]\n"
                               "- name: a\n  when: {source: z}\n  do: [noop]\n  enabled: false\n")  # fmt: skip
    assert any(p.endswith("r.yaml:4:9: [1].name: duplicate rule name, first in "
                          f"{tmp_path / 'r.yaml'}:1") for p in found), found  # fmt: skip
    assert any("[0].when.sorce" in p for p in found) and any("[1].do[0].nope" in p for p in found)
    assert not any("[2].name" in p for p in found), found  # a disabled copy is no rival


def test_a_templated_value_is_judged_after_rendering(tmp_path: Path) -> None:
    """`timeout: "{{ … }}"` is not an error at load time; a literal wrong type is."""
    load_rules(write(tmp_path, GOOD), build_registry())
    found = problems(tmp_path, GOOD.replace('timeout: "{{ event.labels.t }}"', "timeout: [1]"))
    assert any("run_command.timeout" in p for p in found)


def test_it_reports_problems_from_every_file_and_loads_nothing(tmp_path: Path) -> None:
    """A set with one bad file is rejected whole, and both files' problems are listed."""
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, "- name: b\n  when: {source: x}\n  do: [nope]\n", "b.yaml")
    write(tmp_path, "- name: c\n  when: {kind: {regex: '['}}\n  do: [noop]\n", "c.yaml")
    with pytest.raises(ConfigError) as info:
        load_rules(tmp_path, build_registry())
    files = {Path(p.file).name for p in info.value.problems}
    assert files == {"b.yaml", "c.yaml"}


def test_a_missing_rules_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_rules(tmp_path / "nope", build_registry())


def test_an_unsafe_shell_template_is_refused_when_rules_load(tmp_path: Path) -> None:
    """An event value spliced into a shell script unquoted is a load-time error, not a run-time one."""
    found = problems(
        tmp_path,
        "- name: a\n  when: {source: x}\n  do:\n    - run_command: {shell: 'rm {{ event.resource }}'}\n",
    )
    assert any("run_command.shell" in p and "shquote" in p for p in found), found
    load_rules(
        write(
            tmp_path,
            "- name: a\n  when: {source: x}\n  do:\n    - run_command: {shell: 'rm {{ event.resource | shquote }}'}\n",
        ),
        build_registry(),
    )
