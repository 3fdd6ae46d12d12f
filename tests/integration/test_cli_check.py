"""`opsmedic check` as an operator runs it: every problem of every file in one run, exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli_process import opsmedic
from opsmedic.config.refs import SECTIONS
from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.store.store import Store

OPSMEDIC = [sys.executable, "-m", "opsmedic"]

CONFIG = """\
store: sqlite:///opsmedic.db
log:
  level: inf
actions:
  timout: 5s
notify:
  oncall: {urls: ["mailto://oncall@example.com"]}
probes:
  - {name: web, type: htp, params: {url: "http://127.0.0.1:1/"}}
"""
RULES = """\
- name: page-on-down
  when: {source: http, status: fireing}
  do:
    - notify: {to: oncal, title: "{{ event.hots }} is down"}
- name: restart
  when: {source: http}
  do:
    - run_comand: {argv: [systemctl, restart, web]}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "opsmedic.yaml").write_text(CONFIG)
    (tmp_path / "rules" / "web.yaml").write_text(RULES)
    return tmp_path


def test_three_config_errors_and_three_rule_errors_in_one_run(project: Path) -> None:
    result = opsmedic("check", cwd=project)
    assert result.returncode == 2, result.stdout
    lines = [line.removeprefix("error ") for line in result.stderr.strip().splitlines()]
    rules = str(project / "rules" / "web.yaml")
    assert lines == [
        "opsmedic.yaml:3:10: log.level: Input should be 'debug', 'info', 'warning' or 'error'"
        " (did you mean info?)",
        "opsmedic.yaml:5:3: actions.timout: unknown field 'timout' (did you mean timeout?)",
        "opsmedic.yaml:9:23: probes[0].type: unknown probe type 'htp' (did you mean http?)",
        f"{rules}:2:32: [0].when.status: unknown status 'fireing' (did you mean firing?)",
        f"{rules}:4:20: [0].do[0].notify.to: unknown notify target 'oncal' (did you mean oncall?)",
        f"{rules}:4:34: [0].do[0].notify.title: unknown event field 'event.hots'"
        " (did you mean event.host, event.time, event.id?)",
        f"{rules}:8:7: [1].do[0].run_comand: unknown action 'run_comand'"
        " (did you mean run_command?)",
    ]


def test_a_config_that_does_not_parse_still_lets_the_rules_be_checked(project: Path) -> None:
    (project / "opsmedic.yaml").write_text("log:\n  level: info\n   format: json\n")
    result = opsmedic("check", cwd=project)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "opsmedic.yaml:3:10: invalid YAML" in lines[0]
    assert "(check the indentation of line 3" in lines[0]
    # The config's names are unknown, so the rule's `to: oncal` waits for the next run;
    # everything else about the rules is reported now.
    assert not any("notify target" in x for x in lines)
    assert any("unknown status 'fireing'" in x for x in lines)
    assert any("unknown event field 'event.hots'" in x for x in lines)
    (project / "opsmedic.yaml").write_text("")  # an empty config: no notify targets at all
    lines = opsmedic("check", cwd=project).stderr.strip().splitlines()
    assert any(
        "unknown notify target 'oncal': the config has no notify entries" in x for x in lines
    )


def test_a_rules_directory_alone_is_checked_against_the_config_beside_it(project: Path) -> None:
    (project / "opsmedic.yaml").write_text(
        "notify:\n  oncall: {urls: ['mailto://oncall@example.com']}\n"
    )
    (project / "rules" / "web.yaml").write_text(
        "- name: page\n  when: {source: http}\n  do:\n    - notify: {to: [oncall, ops], title: t}\n"
    )
    result = opsmedic("check", "rules", cwd=project)
    assert result.returncode == 2
    assert "web.yaml:4:29: [0].do[0].notify.to[1]: unknown notify target 'ops'" in result.stderr
    (project / "rules" / "web.yaml").write_text(
        "- name: page\n  when: {source: http}\n  do:\n    - notify: {to: oncall, title: t}\n"
    )
    result = opsmedic("check", "rules", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "rules rules: 1 rules in 1 files: ok" in result.stdout


def test_a_config_file_that_is_not_there_is_one_problem(project: Path) -> None:
    result = opsmedic("check", "nope.yaml", cwd=project)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error nope.yaml:1:1: cannot read: [Errno 2] No such file or directory: 'nope.yaml'"
    ]


def test_names_and_urls_that_can_match_nothing_are_reported(project: Path) -> None:
    """A per-action limit on no action, a store no backend opens, an sftp host no entry has."""
    (project / "opsmedic.yaml").write_text(
        "store: foo://bar\n"
        "actions:\n  concurrency:\n    per_action: {run_comand: 8, notify: 2}\n"
        "ssh_hosts:\n  backup: {host: storage.internal, user: bkp}\n"
    )
    (project / "rules" / "web.yaml").write_text(
        "- name: archive\n  when: {source: disk}\n  do:\n"
        "    - archive_logs: {dir: /var/log/a, include: ['*.gz'], to: 'sftp://bkp/x'}\n"
        "    - archive_logs: {dir: /var/log/a, include: ['*.gz'], to: 'sftp://backup/x'}\n"
        "    - archive_logs: {dir: /var/log/a, include: ['*.gz'], to: 'sftp://storage.internal/x'}\n"
    )
    result = opsmedic("check", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line.removeprefix("error ") for line in result.stderr.strip().splitlines()]
    rules = str(project / "rules" / "web.yaml")
    assert lines == [
        "opsmedic.yaml:1:8: store: Value error, unsupported store scheme 'foo' (supported:"
        " sqlite, sqlite+pysqlite, postgresql, postgres, postgresql+psycopg)",
        "opsmedic.yaml:4:18: actions.concurrency.per_action.run_comand: unknown action"
        " 'run_comand' (did you mean run_command?)",
        f"{rules}:4:62: [0].do[0].archive_logs.to: unknown ssh host 'bkp' (did you mean backup?)"
        ": neither a name nor the host of an ssh_hosts entry",
    ]


def test_check_counts_the_flags_and_says_what_each_serves(project: Path) -> None:
    (project / "opsmedic.yaml").write_text(
        "notify:\n  oncall: {urls: ['mailto://oncall@example.com']}\n"
        "flags:\n  new_checkout: {default: off, rollout: {percentage: 30}}\n"
        "  color: {type: string, variants: {red: r, blue: b}, default: red, enabled: false,\n"
        "          rules: [{when: [{attribute: plan, op: equals, value: gold}], serve: blue}]}\n"
    )
    (project / "rules" / "web.yaml").write_text("[]\n")
    result = opsmedic("check", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:4] == [
        "flags: 2 declared",
        "flag new_checkout (boolean): enabled, default off, 0 rules, rollout 30 % of "
        "targetingKey get on",
        "flag color (string): disabled (serves red), default red, 1 rule",
    ]


FLAG_RULES = """\
- name: kill
  when: {source: http}
  do:
    - set_flag: {flag: new_chekout, enabled: false}
    - set_flag: {flag: dark_mode, enabled: false}
    - set_flag: {flag: "{{ event.labels.feature }}", enabled: false}
  on_failure:
    - set_flag: {flag: new_checkout, rollout: 0}
"""


def test_a_set_flag_of_a_flag_nobody_declares_is_a_warning(
    project: Path, store: Store, store_url: str
) -> None:
    (project / "opsmedic.yaml").write_text(f"store: {store_url}\nflags:\n  new_checkout: {{}}\n")
    (project / "rules" / "web.yaml").write_text(FLAG_RULES)
    store.flags.set(Flag.model_validate({"key": "dark_mode"}), Author("cli", "alice"), 1.0)
    rules = project / "rules" / "web.yaml"
    warning = (
        f"{rules}:4:24: warning: [0].do[0].set_flag.flag: unknown flag 'new_chekout' (did you "
        "mean new_checkout?): neither the config's flags nor the store has it, so the step "
        "fails when it runs unless it is made first"
    )
    result = opsmedic("check", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("rules: 1 rules in 1 files: ok")
    assert result.stderr.splitlines() == [
        warning,
        f"1 warning (flags: the config's and the 1 in {store.url}; --strict would fail the check)",
    ]
    strict = opsmedic("check", "--strict", cwd=project)
    assert (strict.returncode, strict.stderr.splitlines()[0]) == (2, warning)
    as_json = opsmedic("check", "--json", cwd=project)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {"errors": [], "warnings": [{
        "file": str(rules), "line": 4, "col": 24, "field": "[0].do[0].set_flag.flag",
        "message": warning.split("set_flag.flag: ")[1],
    }]}  # fmt: skip
    # A rules directory alone is judged against the config beside it, and its store.
    assert opsmedic("check", "rules", "--strict", cwd=project).returncode == 2
    # The engine loads the rule as it is: a flag may be made after the rule is written.
    names = {"flags": ["new_checkout"], **{k: [] for k in SECTIONS if k != "flags"}}
    assert len(load_rules(project / "rules", build_registry(), names)) == 1


def test_warnings_beside_errors_and_a_store_that_is_not_there(project: Path) -> None:
    (project / "opsmedic.yaml").write_text("store: sqlite:///nowhere.db\n")
    (project / "rules" / "web.yaml").write_text(
        FLAG_RULES + "    - notify: {to: oncall, title: t}\n"
    )
    result = opsmedic("check", "--json", cwd=project)
    assert result.returncode == 2 and not (project / "nowhere.db").exists()
    found = json.loads(result.stdout)
    assert [e["message"] for e in found["errors"]] == [
        "unknown notify target 'oncall': the config has no notify entries"
    ]
    assert [w["line"] for w in found["warnings"]] == [4, 5, 8]  # every flag: none declared
    assert "(known: none)" in found["warnings"][0]["message"]
    plain = opsmedic("check", cwd=project)
    assert plain.returncode == 2
    assert (
        "3 warnings (flags: the config's only (no database at "
        f"{project / 'nowhere.db'} yet); --strict would fail the check)"
    ) in plain.stderr.splitlines()
    assert "error " in plain.stderr.splitlines()[-1]
