"""The CLI for scripts: --json equal to the API's, tab-separated lines in a pipe, tables that
never cut text at a terminal, `opsmedic events` and its export that `replay` reads back, and
read commands that never create a store."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_cli import opsmedic, project

from api_service import running_api
from cli_process import on_a_terminal
from opsmedic.errors import StoreError
from opsmedic.sources.events import parse_event_json
from opsmedic.store.store import Store
from store_fixtures import fresh_postgres_database

__all__ = ["project"]  # the fixture, used by name

# Rule 1: its first of three steps fails, so the run stops there; an on_failure step follows.
# Rule 2: its first step fails but the run goes on (continue_on_failure): the later steps
# succeed, and the step that decided the failure is still the first.
RULES: list[dict[str, Any]] = [
    {"name": "stops-at-first", "when": {"source": "disk", "host": "a"},
     "do": [{"run_command": {"argv": ["false"]}}, "noop", "noop"], "on_failure": ["noop"]},
    {"name": "goes-on", "when": {"source": "disk", "host": "b"},
     "do": [{"run_command": {"argv": ["false"]}, "continue_on_failure": True}, "noop", "noop"],
     "on_failure": ["noop"]},
    {"name": "all-good", "when": {"source": "disk", "host": "c"},
     "do": ["noop", {"run_command": {"argv": ["true"]}}]},
]  # fmt: skip
EVENTS = [{"source": "disk", "kind": "usage", "host": h, "resource": "/var", "value": 91,
           "labels": {"team": "ops"}} for h in "abc"]  # fmt: skip
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def cli_json(config: Path, *args: str) -> Any:
    result = opsmedic(*args, "--json", "-c", str(config), cwd=config.parent)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def tsv(text: str) -> list[dict[str, str]]:
    header, *rows = (line.split("\t") for line in text.splitlines())
    assert all(len(row) == len(header) for row in rows), text
    return [dict(zip(header, row, strict=True)) for row in rows]


def at_terminal(*args: str, cwd: Path, columns: int = 60) -> str:
    """The command's output in a real terminal (a pty) `columns` wide, colours removed."""
    return _ANSI.sub("", on_a_terminal(*args, cwd=cwd, columns=columns)).replace("\r", "")


def column(table: str, name: str) -> str:
    """The column headed `name` of a rich table, its folded pieces joined: what a reader sees."""
    head = [line.split("┃") for line in table.splitlines() if line.startswith("┃")]
    names = ["".join(part[i].strip() for part in head) for i in range(len(head[0]))]
    cells = [line.split("│") for line in table.splitlines() if line.startswith("│")]
    return "".join(cell[names.index(name)].strip() for cell in cells)


async def test_cli_json_is_the_api_json(tmp_path: Path, store_url: str) -> None:
    async with running_api(tmp_path, RULES, store=store_url) as api, \
            api.client(api.tokens["admin"]) as client:  # fmt: skip
        assert (await client.post("/api/v1/events", json=EVENTS)).status_code == 202
        await api.rt.engine.drain()
        config = tmp_path / "opsmedic.yaml"

        async def get(path: str) -> Any:
            reply = await client.get(path)
            assert reply.status_code == 200, reply.text
            return reply.json()

        runs = cli_json(config, "runs")
        assert len(runs) == 3 and runs == await get("/api/v1/runs")
        by_rule = {r["rule"]: r for r in runs}
        for run in runs:
            assert cli_json(config, "runs", "show", run["id"]) == await get(
                f"/api/v1/runs/{run['id']}"
            )
        events = cli_json(config, "events")
        assert len(events) == 3 and events == await get("/api/v1/events")
        assert cli_json(config, "events", "--kind", "usage") == await get(
            "/api/v1/events?kind=usage"
        )
        incidents = cli_json(config, "incidents")
        assert incidents and incidents == await get("/api/v1/incidents")
        for i in incidents:
            detail = cli_json(config, "incidents", "show", i["id"])
            assert detail == await get(f"/api/v1/incidents/{i['id']}")
            assert detail["timeline"] and detail["alerts"]
        tokens = cli_json(config, "token", "list")
        assert tokens and tokens == await get("/api/v1/tokens")

    # The step that decided: the first failed one, never an on_failure step after it.
    stops, goes_on, good = by_rule["stops-at-first"], by_rule["goes-on"], by_rule["all-good"]
    assert [(s["action"], s["on_failure"]) for s in stops["steps"]] == [
        ("run_command", False), ("noop", True)]  # fmt: skip
    assert stops["state"] == "failed" and stops["deciding_step"] == 0
    assert [s["state"] for s in goes_on["steps"]] == ["failed", "succeeded", "succeeded",
                                                      "succeeded"]  # fmt: skip
    assert goes_on["state"] == "failed" and goes_on["deciding_step"] == 0
    assert good["state"] == "succeeded" and good["deciding_step"] == 1
    listed = {row["rule"]: row for row in tsv(opsmedic("runs", "-c", str(config),
                                                       cwd=tmp_path).stdout)}  # fmt: skip
    assert listed["stops-at-first"]["step"] == "1 run_command"
    assert listed["goes-on"]["step"] == "1 run_command"
    assert listed["all-good"]["step"] == "2 run_command"
    # Every field the docs promise, with its type (docs/api.md, "Public JSON").
    assert set(stops) == {"id", "rule", "event_id", "target", "fingerprint", "actions", "queue",
                          "dry_run", "state", "message", "steps", "created_at", "started_at",
                          "finished_at", "incident_id", "deciding_step", "rerun_of", "trigger",
                          "started_by", "forced"}  # fmt: skip
    assert (stops["trigger"], stops["started_by"], stops["forced"]) == ("event", None, False)
    assert listed["stops-at-first"]["by"] == "engine"
    assert set(events[0]) == {"id", "source", "kind", "resource", "host", "labels", "value",
                              "severity", "status", "fingerprint", "time", "payload",
                              "incident_id"}  # fmt: skip
    assert set(incidents[0]) == {"id", "key", "title", "source", "severity", "status",
                                 "opened_at", "updated_at", "mitigated_at", "resolved_at",
                                 "events", "flaps", "flapping", "acknowledged_at",
                                 "acknowledged_by", "assignee", "closed_at"}  # fmt: skip
    assert set(detail) == {*incidents[0], "alerts", "timeline", "tta", "ttm", "ttr", "loghunt"}
    assert set(detail["timeline"][0]) == {"time", "kind", "message", "ref", "evidence"}
    assert set(tokens[0]) == {"id", "name", "scopes", "created_at", "revoked_at"}


def test_listings_in_a_pipe_are_tab_separated_whole_and_escaped(project: Path) -> None:
    long_word = "x" * 300
    (project / "rules" / "loud.yaml").write_text(
        "- name: loud\n  when: {source: app}\n  do:\n"
        f"    - run_command: {{argv: [/nonexistent/{long_word}]}}\n"
    )
    line = {"source": "app", "kind": "tab\there", "resource": "line\nbreak", "host": "h"}
    (project / "events.jsonl").write_text(json.dumps(line) + "\n")
    assert opsmedic("replay", "events.jsonl", cwd=project).returncode == 0
    listed = opsmedic("runs", cwd=project)
    assert listed.returncode == 0 and "\x1b[" not in listed.stdout and "│" not in listed.stdout
    (run,) = tsv(listed.stdout)
    assert run["rule"] == "loud" and run["state"] == "failed"
    assert long_word in run["message"] and "…" not in run["message"]  # not cut in a pipe
    assert run["target"] == "h:line\\nbreak"  # one row stays one line
    (event,) = tsv(opsmedic("events", cwd=project).stdout)
    assert event["kind"] == "tab\\there" and event["source"] == "app"
    shown = opsmedic("runs", "show", run["id"], cwd=project).stdout
    fields, steps = shown.split("\n\n")
    assert {f["field"]: f["value"] for f in tsv(fields)}["id"] == run["id"]
    (step,) = tsv(steps)
    assert step["decided"] == "yes" and step["action"] == "run_command"
    assert tsv(opsmedic("token", "list", cwd=project).stdout) == []  # the header alone


def test_tables_at_a_narrow_terminal_fold_and_mark_cuts(project: Path) -> None:
    name = "remediate-the-very-long-named-thing-" + "abcdefghij" * 6
    long_word = "y" * 200
    (project / "rules" / "long.yaml").write_text(
        f"- name: {name}\n  when: {{source: app}}\n  do:\n"
        f"    - run_command: {{argv: [/nonexistent/{long_word}]}}\n"
    )
    (project / "events.jsonl").write_text(json.dumps({"source": "app"}) + "\n")
    assert opsmedic("replay", "events.jsonl", cwd=project).returncode == 0
    table = at_terminal("runs", cwd=project)
    assert max(len(line) for line in table.splitlines()) <= 60
    assert column(table, "rule") == name  # folded across lines, every character kept
    assert column(table, "message").endswith("…")  # cut, and visibly so
    (run,) = Store(f"sqlite:///{project / 'opsmedic.db'}").list_runs()
    assert len(run.message) > 120 and long_word in run.message
    shown = at_terminal("runs", "show", run.id, cwd=project)
    flat = re.sub(r"[\s│╭╮╰╯─┃━┏┓┗┛┡┩└┘┌┐├┤┬┴┼]", "", shown)
    assert re.sub(r"\s", "", run.message) in flat  # the whole message is in `show`
    assert name in flat


def test_events_export_reads_back_through_replay(project: Path) -> None:
    lines = [{**EVENTS[0], "time": 1_800_000_000 + n, "value": n, "labels": {"n": str(n)},
              "payload": {"note": "é\u2028"}} for n in range(5)]  # fmt: skip
    lines.append({"source": "other", "kind": "ping", "time": 1_800_000_010})
    (project / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert opsmedic("replay", "events.jsonl", cwd=project).returncode == 0
    exported = opsmedic("events", "--jsonl", "--source", "disk", "--since", "100000d",
                        cwd=project)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    (project / "export.jsonl").write_text(exported.stdout)
    stored = Store(f"sqlite:///{project / 'opsmedic.db'}").list_events(source="disk")
    read_back = [parse_event_json(line) for line in exported.stdout.splitlines()]
    assert [e.time for e in read_back] == sorted(e.time for e in stored)  # oldest first
    # The same events: every field but the incident, which the engine assigns on replay.
    assert [{**e.as_dict(), "incident_id": ""} for e in read_back] == [
        {**e.as_dict(), "incident_id": ""} for e in reversed(stored)]  # fmt: skip
    dry = opsmedic("replay", "--dry-run", "export.jsonl", cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert "replayed 5 events from export.jsonl (0 bad lines skipped)" in dry.stdout
    # Replayed for real into a second store, and exported again: the same lines.
    other = {"OPSMEDIC_STORE": f"sqlite:///{project / 'other.db'}"}
    assert opsmedic("replay", "export.jsonl", cwd=project, env=other).returncode == 0
    again = opsmedic("events", "--jsonl", "--since", "100000d", cwd=project, env=other).stdout
    unassigned = [{**json.loads(x), "incident_id": None} for x in exported.stdout.splitlines()]
    assert [{**json.loads(x), "incident_id": None} for x in again.splitlines()] == unassigned


def test_events_filters_and_bad_options(project: Path) -> None:
    lines = [{"source": "disk", "kind": k, "host": str(n)} for n, k in enumerate("aab")]
    (project / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert opsmedic("replay", "events.jsonl", cwd=project).returncode == 0
    config = project / "opsmedic.yaml"
    assert [e["host"] for e in cli_json(config, "events", "--kind", "a")] == ["1", "0"]
    assert cli_json(config, "events", "--source", "nope") == []
    assert [e["host"] for e in cli_json(config, "events", "--limit", "1")] == ["2"]
    capped = opsmedic("events", "--jsonl", "--limit", "2", cwd=project)
    assert len(capped.stdout.splitlines()) == 2 and "--limit" in capped.stderr
    exact = opsmedic("events", "--jsonl", "--limit", "3", cwd=project)  # all there is
    assert len(exact.stdout.splitlines()) == 3 and exact.stderr == ""
    both = opsmedic("events", "--json", "--jsonl", cwd=project)
    assert both.returncode == 2 and "use one of --json and --jsonl" in both.stderr
    bad = opsmedic("events", "--since", "lately", cwd=project)
    assert bad.returncode == 2 and "--since" in bad.stderr and "Traceback" not in bad.stderr
    zero = opsmedic("events", "--limit", "0", cwd=project)
    assert zero.returncode == 2 and "--limit" in zero.stderr


def test_rules_test_json_and_pipe(project: Path) -> None:
    events = [{"source": "disk", "resource": "/var/log/app", "value": 99, "host": "web1"},
              {"kind": "no source"}]  # fmt: skip
    (project / "events.json").write_text(json.dumps(events))
    result = opsmedic("rules", "test", "events.json", "--json", cwd=project)
    assert result.returncode == 2, result.stderr  # an invalid event is an error; the rest shown
    first, second = json.loads(result.stdout)
    assert second == {"error": "source: Field required"}
    assert "error events.json:1:79: event 2: source: Field required" in result.stderr
    assert first["target"] == "web1:/var/log/app" and first["event"]["value"] == 99
    verdicts = {v["rule"]: v for v in first["rules"]}
    assert verdicts["archive-app-logs"] == {"rule": "archive-app-logs", "match": True,
                                            "waits_for_s": None, "failed_condition": None,
                                            "actual": None}  # fmt: skip
    missed = [v for v in first["rules"] if not v["match"]]
    assert missed and all(v["failed_condition"] for v in missed)
    piped = tsv(opsmedic("rules", "test", "events.json", cwd=project).stdout)
    assert {r["rule"]: r["match"] for r in piped}["archive-app-logs"] == "yes"
    assert len(piped) == len(first["rules"])


def test_rules_test_on_deeply_nested_json_is_an_error_line(project: Path) -> None:
    """100k `[`: past the decoder's nesting limit (exit 1); 1000 levels in a payload: decoded,
    but an event nested deeper than an event may be (exit 2, as any invalid event). Each an
    `error` line, never a traceback."""
    (project / "deep.json").write_text("[" * 100_000)
    nested = '{"source": "x", "payload": ' + '{"a": ' * 1000 + "1" + "}" * 1001
    (project / "deep-payload.json").write_text(nested)
    for name, args, code, says in [
        ("deep.json", [], 1, "deep.json: cannot read JSON: depth limit exceeded"),
        ("deep-payload.json", ["--json"], 2,
         "deep-payload.json:1:1: event 1: nested deeper than 100 levels"),
    ]:  # fmt: skip
        result = opsmedic("rules", "test", name, *args, cwd=project)
        assert result.returncode == code and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("error ") and says in result.stderr, result.stderr


READS = [["runs"], ["runs", "show", "abcd"], ["incidents"], ["incidents", "show", "abcd"],
         ["events"], ["events", "--jsonl"], ["token", "list"], ["token", "revoke", "x"],
         ["prune", "--older-than", "1d"]]  # fmt: skip


def test_reads_without_config_or_store_fail_and_create_nothing(tmp_path: Path) -> None:
    for args in READS:
        result = opsmedic(*args, cwd=tmp_path)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "no opsmedic.yaml in" in result.stderr and "no database at" in result.stderr
        assert "opsmedic init" in result.stderr and "Traceback" not in result.stderr
        assert list(tmp_path.iterdir()) == [], args


TOKEN_CREATE = ["token", "create", "--name", "ci", "--scope", "read"]


def test_reads_with_a_config_but_no_store_yet_create_nothing(project: Path) -> None:
    (project / "opsmedic.db").unlink()  # `init` made one: gone, as on a copied config
    for args in READS:
        result = opsmedic(*args, cwd=project)
        assert result.returncode == 1 and "no database at" in result.stderr, args
        assert "Traceback" not in result.stderr
        assert not list(project.glob("*.db*")), args
    # A write into the store an opsmedic.yaml names creates it: a config written by hand
    # needs no `run` before its first token.
    made = opsmedic(*TOKEN_CREATE, cwd=project)
    assert made.returncode == 0 and made.stdout.startswith("om_"), made.stderr
    assert (project / "opsmedic.db").exists()


def test_token_create_needs_a_store_that_init_creates(tmp_path: Path) -> None:
    """Without a config `token create` leaves no stray database; `init` makes both."""
    refused = opsmedic(*TOKEN_CREATE, cwd=tmp_path)
    assert refused.returncode == 1 and refused.stdout == ""  # no secret for a token not kept
    assert "no opsmedic.yaml in" in refused.stderr and "opsmedic init" in refused.stderr
    assert list(tmp_path.iterdir()) == []
    init = opsmedic("init", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "opsmedic.db").exists() and "ready" in init.stdout
    assert opsmedic("runs", cwd=tmp_path).returncode == 0  # a read finds it too
    made = opsmedic(*TOKEN_CREATE, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert [t["name"] for t in cli_json(tmp_path / "opsmedic.yaml", "token", "list")] == ["ci"]


def test_reads_on_an_empty_postgres_database_create_no_tables(
    tmp_path: Path, postgres_url: str
) -> None:
    for url in fresh_postgres_database(postgres_url):
        config = tmp_path / "opsmedic.yaml"
        config.write_text(json.dumps({"store": url}))
        result = opsmedic("runs", "-c", str(config), cwd=tmp_path)
        assert result.returncode == 1 and "holds no opsmedic tables yet" in result.stderr
        assert "Traceback" not in result.stderr
        store = Store(url)
        try:
            with pytest.raises(StoreError, match="no opsmedic tables"):
                store.migrate(create=False)  # still none: the read created nothing
        finally:
            store.close()
