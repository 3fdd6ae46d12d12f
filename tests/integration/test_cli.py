"""The `opsmedic` command as an operator runs it: exit codes, messages, history on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsmedic.store.store import Store

OPSMEDIC = [sys.executable, "-m", "opsmedic"]


def opsmedic(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    full_env.update(env or {}, COLUMNS="200")
    return subprocess.run([*OPSMEDIC, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory made by `opsmedic init`, with a store in it and one extra rule."""
    result = opsmedic("init", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (tmp_path / "rules" / "disk.yaml").write_text("""\
- name: archive-app-logs
  when: {source: disk, resource: /var/log/app, value: "> 85"}
  do:
    - run_command: {argv: [echo, "archiving {{ event.resource }} on {{ event.host }}"]}
  throttle: {once_within: 10m, per: [host, resource]}
""")
    return tmp_path


def test_init_writes_a_valid_starter_and_refuses_to_overwrite(project: Path) -> None:
    assert opsmedic("check", cwd=project).returncode == 0
    again = opsmedic("init", str(project), cwd=project)
    assert again.returncode == 1
    assert "exists; use --force" in again.stderr


@pytest.mark.parametrize("where", ["/proc/x", "/proc/version/x"])
def test_init_where_nothing_can_be_written_is_a_clear_error(tmp_path: Path, where: str) -> None:
    result = opsmedic("init", where, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error cannot write {where}/opsmedic.yaml: "), result.stderr


def test_check_exits_2_with_located_errors(project: Path) -> None:
    (project / "rules" / "bad.yaml").write_text(
        "- name: x\n  when: {kind: {regex: '('}}\n  do:\n    - run_comand: {argv: [x]}\n"
    )
    result = opsmedic("check", cwd=project)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any("bad.yaml:2:24: [0].when.kind.regex: regex '(' does not compile" in x for x in lines)
    assert any("bad.yaml:4:7: [0].do[0].run_comand: unknown action" in x for x in lines)
    assert opsmedic("check", str(project / "rules" / "disk.yaml"), cwd=project).returncode == 0


def test_check_refuses_duplicate_probe_names(project: Path) -> None:
    (project / "opsmedic.yaml").write_text(
        "probes:\n  - {name: a, type: command, params: {argv: ['true']}}\n"
        "  - {name: a, type: command, params: {argv: ['true']}}\n"
    )
    result = opsmedic("check", cwd=project)
    assert result.returncode == 2
    assert "opsmedic.yaml:3:12: probes[1].name: duplicate probe name 'a'" in result.stderr


def test_check_names_unknown_config_keys_with_close_matches(project: Path) -> None:
    (project / "opsmedic.yaml").write_text("dry_rn: true\n")
    result = opsmedic("check", cwd=project)
    assert result.returncode == 2
    assert (
        "opsmedic.yaml:1:1: dry_rn: unknown field 'dry_rn' (did you mean dry_run?)" in result.stderr
    )


def test_rules_test_explains_matches_and_misses(project: Path) -> None:
    event = {"source": "disk", "resource": "/var/log/app", "value": 70, "host": "web1"}
    (project / "event.json").write_text(json.dumps(event))
    (project / "rules" / "rx.yaml").write_text(
        "- {name: rx, when: {host: '=~ ^[a-z]+-[0-9]+$'}, do: [noop]}\n"
        "- {name: ok, when: {status: resolved}, do: [noop]}\n"
    )
    result = opsmedic("rules", "test", "event.json", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "archive-app-logs" in result.stdout and "value > 85" in result.stdout
    assert "70" in result.stdout
    assert "^[a-z]+-[0-9]+$" in result.stdout  # brackets are text, not console markup
    assert "'firing'" in result.stdout and "Status." not in result.stdout


def test_rules_test_on_events_that_are_not_objects_is_a_located_error(project: Path) -> None:
    (project / "event.json").write_text("[\n  1,\n  2\n]\n")
    result = opsmedic("rules", "test", "event.json", cwd=project)
    assert result.returncode == 2 and result.stdout == "", result.stdout  # no empty table
    assert result.stderr.splitlines() == [
        "error event.json:2:3: event 1: an event is a JSON object, got int",
        "error event.json:3:3: event 2: an event is a JSON object, got int",
    ]


def test_rules_test_on_an_event_nested_too_deep_is_a_located_error(project: Path) -> None:
    # 600 levels: within orjson's limit, past the recursion a located read would need.
    (project / "event.json").write_text('{"host": "h",\n "payload": ' + "[" * 600 + "]" * 600 + "}")
    result = opsmedic("rules", "test", "event.json", cwd=project)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        "error event.json:1:1: event 1: nested deeper than 100 levels"
    ]


def test_replay_skips_bad_lines_processes_the_rest_and_records_history(project: Path) -> None:
    events = project / "events.jsonl"
    good = {"source": "disk", "resource": "/var/log/app", "value": 91, "host": "web1",
            "labels": {"note": "; rm -rf / $(reboot) `id` --force"}}  # fmt: skip
    events.write_text("\n".join([
        json.dumps(good), "{not json", json.dumps({"kind": "no source"}),
        json.dumps({**good, "host": "web2"}), json.dumps({**good, "value": 10}),
    ]) + "\n")  # fmt: skip
    result = opsmedic("replay", "events.jsonl", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "events.jsonl:2:1: skipped:" in result.stderr
    assert "events.jsonl:3:1: skipped: source: Field required" in result.stderr
    assert "replayed 3 events" in result.stdout and "2 succeeded" in result.stdout
    runs = opsmedic("runs", "--rule", "archive-app-logs", cwd=project)
    header, *rows = [line.split("\t") for line in runs.stdout.splitlines()]  # a pipe: TSV
    listed = [row for row in rows if row[header.index("rule")] == "archive-app-logs"]
    assert runs.returncode == 0 and len(listed) == 2
    run_id = listed[0][header.index("id")]
    shown = opsmedic("runs", "show", run_id[-8:], cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "archiving /var/log/app on web" in shown.stdout
    missing = opsmedic("runs", "show", "zzzzzzzz", cwd=project)
    assert missing.returncode == 2 and "zzzzzzzz" in missing.stderr


def test_replay_dry_run_prints_what_would_run_and_touches_nothing(project: Path) -> None:
    line = {"source": "disk", "resource": "/var/log/app", "value": 99, "host": "h"}
    (project / "events.jsonl").write_text(json.dumps(line) + "\n")
    before = (project / "opsmedic.db").read_bytes()  # the store `init` made
    result = opsmedic("replay", "--dry-run", "events.jsonl", cwd=project)
    assert result.returncode == 0, result.stderr
    # In a pipe: tab-separated rows under a header, a blank line, then the summary line.
    table, summary = result.stdout.split("\n\n")
    header, *rows = [line.split("\t") for line in table.splitlines()]
    assert header == ["rule", "target", "step", "parameters", "note"]
    would = {row[0]: row for row in rows}["archive-app-logs"]
    assert would[1:3] == ["h:/var/log/app", "run_command"]
    assert "archiving /var/log/app on h" in would[3]
    assert not any(box in result.stdout for box in "┏┃│└")
    assert summary.startswith("replayed 1 events from events.jsonl")
    assert (project / "opsmedic.db").read_bytes() == before


def test_environment_overrides_the_store(project: Path) -> None:
    line = {"source": "disk", "resource": "/var/log/app", "value": 99}
    (project / "events.jsonl").write_text(json.dumps(line) + "\n")
    other = project / "other.db"
    result = opsmedic("replay", "events.jsonl", cwd=project,
                      env={"OPSMEDIC_STORE": f"sqlite:///{other}"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert other.exists() and len(Store(f"sqlite:///{other}").list_events()) == 1
    assert Store(f"sqlite:///{project / 'opsmedic.db'}").list_events() == []


def test_prune_keeps_recent_history(project: Path) -> None:
    line = {"source": "disk", "resource": "/var/log/app", "value": 99}
    (project / "events.jsonl").write_text(json.dumps(line) + "\n")
    opsmedic("replay", "events.jsonl", cwd=project)
    result = opsmedic("prune", "--older-than", "30d", cwd=project)
    assert result.returncode == 0, result.stderr
    assert (
        "pruned 0 events, 0 runs, 0 resolved incidents, 0 ended silences and 0 SLO sample "
        "minutes older than 30d" in result.stdout
    )
    bad = opsmedic("prune", "--older-than", "soon", cwd=project)
    assert bad.returncode == 2 and "not a duration" in bad.stderr
    assert opsmedic("prune", "--older-than", "0s", cwd=project).returncode == 2


def test_a_missing_events_file_is_a_usage_error(project: Path) -> None:
    result = opsmedic("replay", "nope.jsonl", cwd=project)
    assert result.returncode == 2 and "nope.jsonl is not a file" in result.stderr
