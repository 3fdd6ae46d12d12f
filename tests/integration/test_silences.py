"""Silences through the API and the CLI: made, listed, expired; what each refuses, and how."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from test_cli import opsmedic, project

from api_service import running_api

__all__ = ["project"]  # the fixture, used by name

RULES = [{"name": "restart-web", "when": {"kind": "web"},
          "do": [{"run_command": {"argv": ["true"]}}]}]  # fmt: skip


def alert(host: str = "web-1") -> dict[str, Any]:
    return {"source": "prometheus", "kind": "web", "resource": "/health", "host": host,
            "labels": {"env": "prod"}, "severity": "warning"}  # fmt: skip


async def test_a_silence_made_through_the_api_holds_at_once_and_expires(tmp_path: Path) -> None:
    async with running_api(tmp_path, RULES) as api, \
            api.client(api.tokens["operate"]) as operate, \
            api.client(api.tokens["read"]) as read, \
            api.client(api.tokens["ingest"]) as ingest:  # fmt: skip
        body = {"matchers": ["host=web-1", "labels.env=~prod|dr"], "duration": "2h",
                "comment": "disk swap"}  # fmt: skip
        made = await operate.post("/api/v1/silences", json=body)
        assert made.status_code == 201, made.text
        silence = made.json()
        assert silence["state"] == "active" and silence["created_by"].startswith("api test-operate")
        assert silence["ends_at"] - silence["starts_at"] == 7200
        (event,) = (await ingest.post("/api/v1/events", json=alert())).json()["events"]
        assert event["run_ids"] == []
        (held,) = event["held"]
        assert held["rule"] == "restart-web"
        assert held["reason"].startswith(f"silenced by silence {silence['id']}: disk swap")
        await api.rt.engine.drain()
        incident = (await read.get(f"/api/v1/incidents/{event['incident_id']}")).json()
        assert [x["message"] for x in incident["timeline"] if x["kind"] == "rule_held"] == [
            f"rule restart-web matched; {held['reason']}"]  # fmt: skip

        listed = (await read.get("/api/v1/silences")).json()
        assert [s["id"] for s in listed] == [silence["id"]]
        gone = await operate.delete(f"/api/v1/silences/{silence['id']}")
        assert gone.status_code == 200 and gone.json()["state"] == "expired"
        assert (await read.get("/api/v1/silences")).json() == []
        (expired,) = (await read.get("/api/v1/silences", params={"all": "true"})).json()
        assert expired["id"] == silence["id"] and expired["state"] == "expired"
        (after,) = (await ingest.post("/api/v1/events", json=alert())).json()["events"]
        assert "held" not in after and len(after["run_ids"]) == 1


async def test_a_body_sent_as_curl_sends_it_is_read_as_json(tmp_path: Path) -> None:
    """`curl -d '{…}'` says form-urlencoded (or a client says nothing): every body the API
    takes is JSON, so it is read as JSON on every route, as the ingest routes read theirs."""
    body = json.dumps({"matchers": ["host=web-1"], "duration": "1h", "comment": "curl"})
    async with running_api(tmp_path, RULES) as api, api.client(api.tokens["operate"]) as op:
        for headers in ({"Content-Type": "application/x-www-form-urlencoded"}, {}):
            made = await op.post("/api/v1/silences", content=body, headers=headers)
            assert made.status_code == 201, made.text
        bad = await op.post("/api/v1/silences", content="matchers=host%3Dweb-1",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert bad.status_code == 400 and "not JSON" in bad.text  # a real form: refused


async def test_a_running_service_sees_a_silence_the_cli_wrote(tmp_path: Path) -> None:
    """The CLI writes only the store; the engine re-reads silences when they changed, at
    most once a second, before a batch: the alert is held from then on (polled, not timed)."""
    async with running_api(tmp_path, RULES) as api, \
            api.client(api.tokens["ingest"]) as ingest:  # fmt: skip
        config = api.rt.config_path
        assert config is not None
        made = await asyncio.to_thread(
            opsmedic, "silence", "add", "host=web-1", "--duration", "1h", "--comment", "cli",
            "--json", "-c", str(config), cwd=tmp_path,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        silence_id = json.loads(made.stdout)["id"]
        held: list[dict[str, Any]] = []
        for _ in range(100):  # a deadline, not a measurement: ≈ 1 s is expected
            (event,) = (await ingest.post("/api/v1/events", json=alert())).json()["events"]
            if "held" in event:
                held = event["held"]
                break
            await asyncio.sleep(0.1)
        assert held and silence_id in held[0]["reason"]


async def test_the_api_refuses_bad_silences_and_unknown_ids(tmp_path: Path) -> None:
    async with running_api(tmp_path, RULES) as api, \
            api.client(api.tokens["operate"]) as operate, \
            api.client(api.tokens["ingest"]) as ingest:  # fmt: skip
        ok = {"matchers": ["host=web-1"], "duration": "1h", "comment": "why"}
        cases: list[tuple[dict[str, Any], str]] = [
            ({**ok, "matchers": ["host>web"]}, "not a matcher: 'host>web'"),
            ({**ok, "matchers": ["colour=red"]}, "unknown field 'colour'"),
            ({**ok, "matchers": ["host=~("]}, "invalid regular expression"),
            ({**ok, "matchers": ["host!=x"]}, "does not match an empty value"),
            ({**ok, "matchers": []}, "matchers: List should have at least 1 item"),
            ({**ok, "duration": "0s"}, "the duration must be positive"),
            ({**ok, "duration": "-1h"}, "duration: Value error, not a duration"),
            ({**ok, "duration": None, "starts_at": _iso(time.time() + 7200),
              "ends_at": _iso(time.time() + 3600)}, "the end is not after the start"),
            ({**ok, "duration": None, "ends_at": "2030-01-01T00:00:00"}, "ends_at: Input should have timezone"),
            ({**ok, "ends_at": "2030-01-01T00:00:00Z"}, "give either a duration or an end"),
            ({**ok, "comment": ""}, "comment: String should have at least 1 character"),
            ({**ok, "by": "x"}, "by: Extra inputs are not permitted"),
            ({**ok, "comment": "disk swap\u202e"}, "comment: Value error, bidi control '\\u202e'"),
            ({**ok, "comment": "a\x1b[2Jb"}, "comment: Value error, control character"),
            ({**ok, "duration": 1e308}, "the duration would make the silence last more than a year"),
            ({**ok, "duration": None, "ends_at": "9999-12-31T23:59:59-14:00"},
             "the end would make the silence last more than a year"),
            ({**ok, "starts_at": "9999-01-01T00:00:00Z"}, "the start is more than a year from now"),
        ]  # fmt: skip
        for body, says in cases:
            reply = await operate.post("/api/v1/silences", json=body)
            assert reply.status_code == 422, (body, reply.text)
            assert says in reply.json()["detail"], (body, reply.text)
        assert api.store.silences.list() == []  # nothing half-written
        for ref in ("nosuch", "01"):
            missing = await operate.delete(f"/api/v1/silences/{ref}")
            assert missing.status_code == 404 and "no silence" in missing.json()["detail"]
        # An ingest token is an adversary: it may not silence what it sends.
        refused = await ingest.post("/api/v1/silences", json=ok)
        assert refused.status_code == 403
        assert (await ingest.get("/api/v1/silences")).status_code == 403
        assert api.store.silences.list() == []


def test_silence_add_list_expire_from_the_cli(project: Path) -> None:
    made = opsmedic("silence", "add", "host=web-1", "labels.env=~prod|dr", "--duration", "2h",
                    "--comment", "disk swap", "--json", cwd=project)  # fmt: skip
    assert made.returncode == 0, made.stderr
    silence = json.loads(made.stdout)
    assert silence["matchers"] == ["host=web-1", "labels.env=~prod|dr"]
    assert silence["created_by"].startswith("cli ")
    listed = opsmedic("silence", "list", cwd=project)  # a pipe: tab-separated, nothing cut
    header, row = listed.stdout.splitlines()
    assert header.split("\t")[:3] == ["id", "state", "matchers"]
    assert row.split("\t")[:3] == [silence["id"], "active", "host=web-1 labels.env=~prod|dr"]
    expired = opsmedic("silence", "expire", silence["id"][:8], cwd=project)
    assert expired.returncode == 0 and f"silence {silence['id']} ended" in expired.stdout
    assert json.loads(opsmedic("silence", "list", "--json", cwd=project).stdout) == []
    (old,) = json.loads(opsmedic("silence", "list", "--all", "--json", cwd=project).stdout)
    assert old["state"] == "expired"


def test_the_cli_refuses_bad_silences_with_exit_code_2(project: Path) -> None:
    ok = ["--duration", "1h", "--comment", "why"]
    cases = [
        (["host>web", *ok], "not a matcher: 'host>web'"),
        (["colour=red", *ok], "unknown field 'colour'"),
        (["host=~(", *ok], "invalid regular expression"),
        (["host=a", "--duration", "0", "--comment", "why"], "the duration must be positive"),
        (["host=a", "--duration", "-1h", "--comment", "why"], "--duration"),
        (["host=a", "--until", "2020-01-01", "--comment", "why"], "the end is in the past"),
        (["host=a", "--until", "soon", "--comment", "why"], "not a time: 'soon'"),
        (["host=a", "--duration", "1h"], "--comment"),
        (["host=a", "--duration", "1h", "--comment", "swap \u2067x"], "comment: bidi control"),
        (["host=a", "--duration", "1h", "--comment", "a\rb"], "comment: control character"),
        (["host=a", "--duration", "99999999d", "--comment", "why"], "more than a year"),
        (["host=a", "--until", "9999-12-31T23:59:59-14:00", "--comment", "why"], "the end would"),
        (["host=a", "--start", "9999-01-01", "--duration", "1h", "--comment", "why"], "year from"),
    ]
    for args, says in cases:
        result = opsmedic("silence", "add", *args, cwd=project)
        assert result.returncode == 2, (args, result.stderr)
        assert says in result.stderr, (args, result.stderr)
    missing = opsmedic("silence", "expire", "nosuch", cwd=project)
    assert missing.returncode == 2 and "no silence" in missing.stderr
    assert json.loads(opsmedic("silence", "list", "--all", "--json", cwd=project).stdout) == []


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()
