"""An alert → loghunt → notify with the summary → annotate, end to end (SQLite and PostgreSQL):
a real SMTP server, a webhook receiver, the hunt on the incident through the API and the CLI."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_actions_notify import text_of
from test_cli import opsmedic
from test_cli_incidents import project

from api_service import running_api
from saas_fakes import FakeWebhook, serving
from services import SMTPServer

__all__ = ["project"]  # the fixture, used by name

# Apprise's e-mail plugin imports the standard imghdr module, deprecated on Python 3.11+.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

# The alert's second firing: an hour ago, so every log line below is in the past.
T = float(int(time.time()) - 3600)


def _at(offset: float) -> str:
    return datetime.fromtimestamp(T + offset, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _iso(offset: float) -> str:
    return datetime.fromtimestamp(T + offset, UTC).isoformat()


def _log() -> str:
    lines = [f"{_at(-50 * 60)} ERROR ancient failure, before the window\n",
             f"{_at(-30 * 60)} ERROR cache stampede on key 77\n",
             f"{_at(-60)} INFO serving\n"]  # fmt: skip
    lines += [f"{_at(-50 + i)} ERROR db down host=primary after {i * 7}ms\n" for i in range(4)]
    lines += [f"{_at(-40)} ERROR payment 4411 failed\n",
              "Traceback (most recent call last):\n",
              '  File "/srv/pay.py", line 3, in charge\n',
              "ValueError: card 4411\n",
              f"{_at(-30)} INFO done\n"]  # fmt: skip
    return "".join(lines)


def _rules(mail: str, notes: str) -> list[dict[str, Any]]:
    summary = "{{ steps[0].details.summary }}"
    return [{
        "name": "hunt-checkout",
        "when": {"source": "alertmanager", "labels.severity": "critical"},
        "queue": "investigation",
        "do": [
            {"loghunt": {"files": ["logs/*.log"], "top": 3}},
            {"notify": {"urls": [mail], "title": "{{ event.labels.tag }}: {{ steps[0].message }}",
                        "body": summary}},
            {"annotate": {"url": notes, "note": f"opsmedic {{{{ rule }}}} found:\n{summary}"}},
        ],
    }]  # fmt: skip


@pytest.mark.smtp
async def test_an_alert_hunts_its_logs_and_says_the_top_error_everywhere(
    tmp_path: Path, store_url: str, smtp_server: SMTPServer
) -> None:
    """The incident opened 20 minutes before the alert that ran the rule: the window starts
    15 minutes before that, so the stampede 30 minutes back is in and the 50-minute-old
    failure is out. The notification and the annotation carry the top error and its count,
    and the incident read (API, CLI, --json) shows the hunt's events from the store."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.log").write_text(_log())
    tag = f"hunt-{uuid.uuid4().hex[:8]}"
    mail = f"mailto://{smtp_server.host}:{smtp_server.port}?from=opsmedic@example.com&to=oncall@example.com"
    base = {"source": "alertmanager", "kind": "HighErrorRate",
            "labels": {"alertname": "HighErrorRate", "service": "checkout", "tag": tag}}  # fmt: skip
    first = {**base, "fingerprint": "warn", "time": T - 20 * 60}
    first["labels"] = {**base["labels"], "severity": "warning"}  # type: ignore[dict-item]
    second = {**base, "fingerprint": "crit", "time": T}
    second["labels"] = {**base["labels"], "severity": "critical"}  # type: ignore[dict-item]
    with serving(FakeWebhook()) as webhook:
        async with running_api(tmp_path, _rules(mail, webhook.url + "/notes"),
                               store=store_url) as api:  # fmt: skip
            async with api.client(api.tokens["ingest"]) as client:
                for event in (first, second):
                    sent = await client.post("/api/v1/events", json=event)
                    assert sent.status_code == 202, sent.text
            await api.rt.engine.drain()
            async with api.client(api.tokens["read"]) as client:
                (incident,) = (await client.get("/api/v1/incidents")).json()
                reply = await client.get(f"/api/v1/incidents/{incident['id']}")
            assert reply.status_code == 200, reply.text
            (run,) = api.store.list_runs(rule="hunt-checkout")
        note = webhook.requests[-1].json()["note"]
    assert run.state.value == "succeeded", run.message
    hunt = reply.json()["loghunt"]
    assert hunt["run_id"] == run.id and hunt["rule"] == "hunt-checkout"
    assert hunt["since"] == _iso(-35 * 60)
    assert [(e["count"], e["key"].split(" ERROR ")[1]) for e in hunt["events"]] == [
        (1, "cache stampede on key <*>"),
        (4, "db down host=primary after <*>"),
        (1, "payment <*> failed\nTraceback (most recent call last):\n  File \"/srv/pay.py\", "
            "line <*>, in charge\nValueError: card <*>"),
    ]  # fmt: skip
    assert hunt["events"][1]["first"]["time"] == _iso(-50)
    assert hunt["events"][1]["last"]["line"] == 7
    top = "4x ERROR db down host=primary after <*>"
    assert hunt["summary"].splitlines()[:2] == [
        "3 distinct errors, 6 occurrences in 1 file:", top,
    ]  # fmt: skip
    (message,) = [m for m in smtp_server.messages() if str(m["Subject"]).startswith(tag)]
    mailed = text_of(message)
    assert top in mailed and "1x ERROR payment <*> failed … ValueError: card <*>" in mailed
    assert "ancient" not in mailed
    assert top in note and note.startswith("opsmedic hunt-checkout found:\n")

    config = tmp_path / "opsmedic.yaml"
    shown = opsmedic("incidents", "show", incident["id"], "--config", str(config), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    section = shown.stdout[shown.stdout.index(f"log hunt\trun {run.id} of hunt-checkout") :]
    assert "count\tfirst seen\tlast seen\tevent" in section
    log = tmp_path / "logs" / "app.log"
    assert (
        f"4\t{log}:4 {_iso(-50)}\t{log}:7 {_iso(-47)}\tERROR db down host=primary after <*>\n"
        in (section)
    )
    as_json = opsmedic("incidents", "show", incident["id"], "--json", "--config", str(config),
                       cwd=tmp_path)  # fmt: skip
    assert json.loads(as_json.stdout)["loghunt"] == hunt


def test_an_incident_without_a_hunt_shows_none(project: Path) -> None:
    events = project / "events.jsonl"
    events.write_text(json.dumps({"source": "alertmanager", "kind": "X", "time": T}) + "\n")
    assert opsmedic("replay", str(events), cwd=project).returncode == 0
    listed = json.loads(opsmedic("incidents", "--since", "100000d", "--json", cwd=project).stdout)
    shown = opsmedic("incidents", "show", listed[0]["id"], "--json", cwd=project)
    assert json.loads(shown.stdout)["loghunt"] is None
    plain = opsmedic("incidents", "show", listed[0]["id"], cwd=project)
    assert "log hunt" not in plain.stdout
