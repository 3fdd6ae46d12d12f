"""`opsmedic incidents ack|note|resolve|close|reopen|assign` as an operator runs them: each on
the timeline with who, --json, and exit 2 with a clear message for every refusal."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from test_cli import opsmedic, project

from cli_process import via
from opsmedic.lifecycle import NOTE_MAX, WHO_MAX
from opsmedic.store.store import Store

__all__ = ["project"]  # the fixture, used by name


def one_incident(project: Path) -> str:
    events = project / "events.jsonl"
    event = {"source": "alertmanager", "kind": "DiskFull", "fingerprint": "a",
             "labels": {"alertname": "DiskFull", "service": "db"}, "time": 1_800_000_000}  # fmt: skip
    events.write_text(json.dumps(event) + "\n")
    replayed = opsmedic("replay", str(events), cwd=project)
    assert replayed.returncode == 0, replayed.stderr
    (incident,) = Store(f"sqlite:///{project / 'opsmedic.db'}").list_incidents()
    return incident.id


def test_each_action_on_the_timeline_with_who(project: Path) -> None:
    incident_id = one_incident(project)
    short = incident_id[-6:]
    acked = opsmedic("incidents", "ack", short, "--as", "alice", "--reason", "on it", cwd=project)
    assert acked.returncode == 0, acked.stderr
    alice, carol = via("alice"), via("carol")  # the name given, and who gave it
    assert f"incident {incident_id} is acknowledged: acknowledged by {alice}: on it" in acked.stdout
    noted = opsmedic("incidents", "note", short, "disk at 97 %", "--as", "alice", "--json",
                     cwd=project)  # fmt: skip
    assert noted.returncode == 0, noted.stderr
    reply = json.loads(noted.stdout)
    assert reply["line"] == {"time": reply["line"]["time"], "kind": "note",
                             "message": f"note by {alice}: disk at 97 %", "ref": "",
                             "evidence": None}  # fmt: skip
    assert reply["incident"]["acknowledged_by"] == alice
    for args in (("assign", short, "bob"), ("resolve", short), ("reopen", short),
                 ("close", short, "--reason", "duplicate of INC-12")):  # fmt: skip
        done = opsmedic("incidents", *args, "--as", "carol", cwd=project)
        assert done.returncode == 0, (args, done.stderr)
    shown = opsmedic("incidents", "show", short, "--json", cwd=project)
    found = json.loads(shown.stdout)
    assert found["status"] == "closed" and found["assignee"] == "bob"
    assert [t["message"] for t in found["timeline"][-6:]] == [
        f"acknowledged by {alice}: on it", f"note by {alice}: disk at 97 %",
        f"assigned to bob by {carol}", f"resolved by hand by {carol}",
        f"reopened by hand by {carol}", f"closed by hand by {carol}: duplicate of INC-12",
    ]  # fmt: skip
    assert found["tta"] is not None and found["ttr"] is not None
    table = opsmedic("incidents", "show", short, cwd=project)
    assert "TTA / TTM / TTR" in table.stdout and "closed" in table.stdout
    listed = opsmedic("incidents", "--since", "100000d", "--status", "closed", cwd=project)
    assert incident_id in listed.stdout


def test_refusals_exit_2_and_write_nothing(project: Path) -> None:
    incident_id = one_incident(project)
    store = Store(f"sqlite:///{project / 'opsmedic.db'}")
    before = store.get_incident(incident_id)[2]
    cases = [
        (("ack", "ffffffffffff"), "no incident"),
        (("reopen", incident_id), "the incident is open: cannot reopen it"),
        (("note", incident_id, ""), "must not be empty"),
        (("note", incident_id, "   "), "must not be empty"),
        (("note", incident_id, "x" * (NOTE_MAX + 1)), f"at most {NOTE_MAX} characters"),
        (("assign", incident_id, "b" * (WHO_MAX + 1)), f"at most {WHO_MAX} characters"),
        (("ack", incident_id, "--as", ""), "--as"),
        (("ack", incident_id, "--as", "a\x01b"), "control character"),
        (("ack", incident_id, "--as", "alice\u202e"), "bidi control '\\u202e' at position 5"),
        (("note", incident_id, "fixed \u2066it"), "bidi control"),
        (("note", incident_id, "fixed\x1b[2Jit"), "control character"),
        (("assign", incident_id, "bob\u202d"), "TO"),
        (("resolve", incident_id, "--reason", "\u2069x"), "--reason"),
        (("ack", incident_id, "--reason", " "), "--reason"),
        (("note", incident_id), "Missing argument"),
    ]
    for args, said in cases:
        result = opsmedic("incidents", *args, cwd=project)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert said in result.stderr, (args, result.stderr)
    assert store.get_incident(incident_id)[2] == before
    mine = opsmedic("incidents", "ack", incident_id, "--json", cwd=project)
    assert mine.returncode == 0, mine.stderr
    assert json.loads(mine.stdout)["incident"]["acknowledged_by"] == getpass.getuser()  # no --as
    again = opsmedic("incidents", "ack", incident_id, cwd=project)
    assert again.returncode == 2, again.stderr
    assert "the incident is acknowledged: already acknowledged by " in again.stderr
