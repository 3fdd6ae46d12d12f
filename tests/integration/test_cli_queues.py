"""`opsmedic runs --queue` and an investigation's evidence in `incidents show`, as an operator
runs them (a replay executes the runs: the output is a real command's)."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import opsmedic, project

from opsmedic.store.store import Store

__all__ = ["project"]  # the fixture, used by name

DIAGNOSE = """\
- name: collect-diagnostics
  when: {source: disk, resource: /var/log/app}
  do:
    - run_command: {argv: [printf, "line one\\tx\\nline two"]}
  queue: investigation
"""


def test_runs_filter_by_queue_and_incidents_show_the_evidence(project: Path) -> None:
    (project / "rules" / "diagnose.yaml").write_text(DIAGNOSE)
    event = {"source": "disk", "resource": "/var/log/app", "host": "web1", "value": 91}
    (project / "events.jsonl").write_text(json.dumps(event) + "\n")
    replayed = opsmedic("replay", "events.jsonl", cwd=project)
    assert replayed.returncode == 0, replayed.stderr

    listed = opsmedic("runs", "--queue", "investigation", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert (run["rule"], run["queue"], run["state"]) == (
        "collect-diagnostics", "investigation", "succeeded",
    )  # fmt: skip
    others = json.loads(opsmedic("runs", "--queue", "remediation", "--json", cwd=project).stdout)
    assert [r["rule"] for r in others] == ["archive-app-logs"]
    table = opsmedic("runs", "--queue", "investigation", cwd=project)
    assert table.stdout.count("collect-diagnostics") == 1
    assert "archive-app-logs" not in table.stdout

    (incident,) = Store(f"sqlite:///{project / 'opsmedic.db'}").list_incidents()
    shown = opsmedic("incidents", "show", incident.id, cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "mitigated: run of archive-app-logs succeeded" in shown.stdout
    assert "evidence from run of collect-diagnostics (succeeded): 1 step(s)" in shown.stdout
    # In a pipe the evidence is tab-separated with its line breaks and tabs escaped.
    rows = shown.stdout.split("\n\nrun\trule\tstep\taction\tstate\tmessage\toutput\n")[1]
    output = run["steps"][0]["output"]
    assert output == "[stdout]\nline one\tx\nline two"
    assert rows.splitlines() == [
        f"{run['id']}\tcollect-diagnostics\t1\trun_command\tsucceeded\t"
        f"{run['steps'][0]['message']}\t[stdout]\\nline one\\tx\\nline two"
    ]
    as_json = json.loads(opsmedic("incidents", "show", incident.id, "--json", cwd=project).stdout)
    (line,) = [t for t in as_json["timeline"] if t["kind"] == "evidence"]
    assert line["ref"] == run["id"]
    assert line["evidence"]["steps"][0]["output"] == output
    assert line["evidence"]["steps"][0]["cut"] == 0
    assert all(t["evidence"] is None for t in as_json["timeline"] if t["kind"] != "evidence")


def test_an_unknown_queue_is_a_usage_error_naming_the_option(project: Path) -> None:
    bad = opsmedic("runs", "--queue", "investigations", cwd=project)
    assert bad.returncode == 2
    assert "--queue" in bad.stderr and "'investigations' is not one of" in bad.stderr
    assert "remediation" in bad.stderr and "investigation" in bad.stderr
