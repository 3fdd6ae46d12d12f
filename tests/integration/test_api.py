"""The HTTP API end to end: ingest committed before 202, reads, incidents, health and metrics."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from api_service import Api, running_api
from opsmedic.model import IncidentStatus
from services import SMTPServer

FIRING = {
    "receiver": "opsmedic", "status": "firing",
    "alerts": [{
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"},
        "annotations": {"summary": "5xx ratio 12%"}, "startsAt": "2026-11-22T02:01:16Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus.local/graph?g0.expr=x",
        "fingerprint": "6e890fd1d2e6636f",
    }],
    "groupLabels": {"alertname": "HighErrorRate", "service": "checkout"},
    "commonLabels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"},
    "commonAnnotations": {"summary": "5xx ratio 12%"}, "externalURL": "http://vm:9093",
    "version": "4", "groupKey": '{}:{alertname="HighErrorRate", service="checkout"}',
    "truncatedAlerts": 0,
}  # fmt: skip
RULES = [{
    "name": "restart-checkout",
    "when": {"source": "alertmanager", "labels.alertname": "HighErrorRate"},
    "do": [{"run_command": {"argv": ["true"]}},
           {"notify": {"to": "log", "title": "restarted {{ event.labels.service }}"}}],
    "throttle": {"once_within": "1h", "per": ["fingerprint"]},
}]  # fmt: skip


def resolved() -> dict[str, Any]:
    body = copy.deepcopy(FIRING)
    body["status"] = body["alerts"][0]["status"] = "resolved"
    body["alerts"][0]["endsAt"] = "2026-11-22T02:09:16Z"
    return body


async def wait_runs(api: Api, n: int) -> None:
    await api.rt.engine.drain()
    assert len(api.store.list_runs()) == n


async def test_an_alertmanager_incident_opens_is_mitigated_and_resolves(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    mail = (
        f"mailto://{smtp_server.host}:{smtp_server.port}?from=o@example.com&to=oncall@example.com"
    )
    async with running_api(tmp_path, RULES, notify={"log": {"urls": [mail]}}) as api, \
            api.client(api.tokens["ingest"]) as client:  # fmt: skip
        reply = await client.post("/api/v1/webhooks/alertmanager", json=FIRING)
        assert reply.status_code == 202, reply.text
        body = reply.json()
        (event,) = body["events"]
        # Committed before the reply: the event and its planned run are in the store now.
        assert api.store.get_event(event["id"]).fingerprint == "6e890fd1d2e6636f"
        assert [api.store.get_run(r).rule for r in event["run_ids"]] == ["restart-checkout"]
        await api.rt.engine.drain()
        # Alertmanager re-sends the group: the same incident, no second run (throttle).
        again = (await client.post("/api/v1/webhooks/alertmanager", json=FIRING)).json()
        assert again["events"][0]["run_ids"] == []
        assert again["events"][0]["incident_id"] == event["incident_id"]
        await api.rt.engine.drain()
        incident, alerts, _ = api.store.get_incident(event["incident_id"])
        assert incident.status is IncidentStatus.MITIGATED
        assert [(a.fingerprint, a.events) for a in alerts] == [("6e890fd1d2e6636f", 2)]
        assert (
            await client.post("/api/v1/webhooks/alertmanager", json=resolved())
        ).status_code == 202
        await api.rt.engine.drain()
        incident, alerts, timeline = api.store.get_incident(event["incident_id"])
        assert incident.status is IncidentStatus.RESOLVED and incident.resolved_at
        kinds = [t.kind for t in timeline]
        for kind in ("event_received", "rule_matched", "run_started", "notification_sent",
                     "run_finished", "status_changed"):  # fmt: skip
            assert kind in kinds, kinds
        statuses = [t.message.split(":")[0] for t in timeline if t.kind == "status_changed"]
        assert statuses == ["opened by alertmanager", "mitigated", "resolved"]
        assert len(api.store.list_incidents()) == 1
        # Firing again soon after the resolution is a flap: the same incident, reopened.
        soon = (await client.post("/api/v1/webhooks/alertmanager", json=FIRING)).json()
        assert soon["events"][0]["incident_id"] == event["incident_id"]
        await api.rt.engine.drain()
        assert api.store.get_incident(event["incident_id"])[0].flaps == 1
        assert (
            await client.post("/api/v1/webhooks/alertmanager", json=resolved())
        ).status_code == 202
        # Firing again past the reopen window (30 minutes in event time) is a new incident.
        body = copy.deepcopy(FIRING)
        body["alerts"][0]["startsAt"] = "2026-11-22T03:12:00Z"  # an hour after endsAt
        later = (await client.post("/api/v1/webhooks/alertmanager", json=body)).json()
        assert later["events"][0]["incident_id"] != event["incident_id"]


async def test_generic_events_one_or_many_and_the_read_routes(tmp_path: Path) -> None:
    rules = [{"name": "disk", "when": {"source": "disk"}, "do": ["noop"]}]
    async with running_api(tmp_path, rules) as api:
        async with api.client(api.tokens["ingest"]) as client:
            one = await client.post("/api/v1/events", json={"source": "disk", "resource": "/var"})
            many = await client.post("/api/v1/events", json=[
                {"source": "disk", "resource": "/srv", "extra": {"kept": True}},
                {"source": "other", "kind": "x"},
            ])  # fmt: skip
            wrapped = await client.post("/api/v1/events", json={"events": [{"source": "other"}]})
        assert (one.status_code, many.status_code, wrapped.status_code) == (202, 202, 202)
        assert one.json()["accepted"] == 1 and many.json()["accepted"] == 2
        assert len(one.json()["events"][0]["run_ids"]) == 1
        await api.rt.engine.drain()
        async with api.client(api.tokens["read"]) as client:
            events = (await client.get("/api/v1/events", params={"source": "disk"})).json()
            assert {e["resource"] for e in events} == {"/var", "/srv"}
            kept = next(e for e in events if e["resource"] == "/srv")
            assert kept["payload"]["extra"] == {"kept": True}  # unknown fields are kept
            runs = (await client.get("/api/v1/runs", params={"state": "succeeded"})).json()
            assert len(runs) == 2 and {r["rule"] for r in runs} == {"disk"}
            run = (await client.get(f"/api/v1/runs/{runs[0]['id'][-8:]}")).json()
            assert run["steps"][0]["action"] == "noop"
            assert (await client.get(f"/api/v1/events/{kept['id']}")).json()["id"] == kept["id"]
            assert (await client.get("/api/v1/runs/ffffffff")).status_code == 404
            incidents = (await client.get("/api/v1/incidents")).json()
            assert {i["title"] for i in incidents} == {"disk on /var", "disk on /srv", "x", "other"}
            detail = (await client.get(f"/api/v1/incidents/{incidents[0]['id']}")).json()
            assert detail["timeline"] and detail["alerts"]
            rules_now = (await client.get("/api/v1/rules")).json()
            assert [r["name"] for r in rules_now["rules"]] == ["disk"]
            assert rules_now["errors"] == []


async def test_bad_bodies_get_a_4xx_with_the_place_and_nothing_is_stored(tmp_path: Path) -> None:
    async with running_api(tmp_path, api={"max_body": 4096}) as api, \
            api.client(api.tokens["ingest"]) as client:  # fmt: skip
        cases = {
            b"{not json": (400, "not JSON"),
            b"": (400, "empty body"),
            b"\xff\xfe": (400, "not UTF-8"),
            b"42": (422, "body: expected an event object"),
            json.dumps([{"source": "a"}, {"kind": "no source"}]).encode(): (422, "[1]"),
            json.dumps({"events": [{"source": "a", "status": "maybe"}]}).encode(): (
                422, "events[0]"),
            json.dumps({"source": "a", "labels": ["x"]}).encode(): (422, "labels"),
            b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]": (413, "limit"),
        }  # fmt: skip
        for body, (status, words) in cases.items():
            reply = await client.post("/api/v1/events", content=body,
                                      headers={"Content-Type": "application/json"})  # fmt: skip
            assert reply.status_code == status, (body[:40], reply.text)
            assert words in reply.json()["detail"], reply.text
        # A body sent in chunks without a Content-Length is cut off at the limit as well.

        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * 1000

        reply = await client.post("/api/v1/events", content=chunks())
        assert reply.status_code == 413
        hook = await client.post("/api/v1/webhooks/alertmanager", json={"alerts": "nope"})
        assert hook.status_code == 422 and "alerts" in hook.json()["detail"]
        assert api.store.counts() == {"events": 0, "runs": 0}
        # …and the service still works.
        ok = await client.post("/api/v1/events", json={"source": "a"})
        assert ok.status_code == 202


async def test_ids_are_assigned_so_senders_cannot_clash(tmp_path: Path) -> None:
    """A client's `id` is kept as payload.client_id: two senders reusing one id, even at the
    same moment, cannot fail the commit they share with everybody else."""
    async with running_api(tmp_path) as api, api.client(api.tokens["ingest"]) as client:
        same = {"source": "a", "id": "evt-1"}
        replies = await asyncio.gather(*(client.post("/api/v1/events", json=[same, same])
                                         for _ in range(5)))  # fmt: skip
        assert [r.status_code for r in replies] == [202] * 5
        ids = {e["id"] for r in replies for e in r.json()["events"]}
        assert len(ids) == 10 and "evt-1" not in ids
        stored = api.store.list_events()
        assert len(stored) == 10 and {e.payload["client_id"] for e in stored} == {"evt-1"}


async def test_an_ingest_token_cannot_forge_opsmedics_own_events(tmp_path: Path) -> None:
    """Rules trust opsmedic's events (a flag turned off, a deployment rolled back): a sender
    claiming that source is refused, its whole request with it, and nothing runs."""
    rules = [{"name": "chain", "when": {"source": "opsmedic", "kind": "flag"}, "do": ["noop"]}]
    async with running_api(tmp_path, rules) as api, api.client(api.tokens["ingest"]) as client:
        forged = {"source": "opsmedic", "kind": "flag", "resource": "new_checkout",
                  "labels": {"enabled": "false"}, "status": "firing"}  # fmt: skip
        for body in (forged, [{"source": "app"}, forged]):
            reply = await client.post("/api/v1/events", json=body)
            assert reply.status_code == 422, reply.text
            assert "reserved" in reply.json()["detail"]
        assert "[1]: source" in reply.json()["detail"]
        assert api.store.counts() == {"events": 0, "runs": 0}
        assert (await client.post("/api/v1/events", json={"source": "app"})).status_code == 202


async def test_event_times_are_bounded(tmp_path: Path) -> None:
    """A time far ahead would mute a rule's throttle for that target until then."""
    rules = [{"name": "db", "when": {"source": "app"}, "do": ["noop"],
              "throttle": {"once_within": "1h", "per": ["resource"]}}]  # fmt: skip
    async with running_api(tmp_path, rules) as api, api.client(api.tokens["ingest"]) as client:
        ahead = await client.post("/api/v1/events",
                                  json={"source": "app", "resource": "db", "time": time.time() + 86400})  # fmt: skip
        assert ahead.status_code == 422 and "time" in ahead.json()["detail"]
        huge = await client.post("/api/v1/events", json={"source": "app", "time": 1e300})
        assert huge.status_code == 422 and "time" in huge.json()["detail"]
        now = await client.post("/api/v1/events", json={"source": "app", "resource": "db"})
        assert len(now.json()["events"][0]["run_ids"]) == 1
        # A webhook's clock ahead is not refused (the tool would retry forever): it is clamped.
        body = copy.deepcopy(FIRING)
        body["alerts"][0]["startsAt"] = "2099-01-01T00:00:00Z"
        hook = await client.post("/api/v1/webhooks/alertmanager", json=body)
        event = api.store.get_event(hook.json()["events"][0]["id"])
        assert event.time <= time.time() and event.payload["sent_time"] > 4e9


async def test_a_huge_number_is_a_400_not_a_500(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, api.client(api.tokens["ingest"]) as client:
        body = b'{"source": "a", "value": ' + b"9" * 5000 + b"}"
        for path in ("/api/v1/events", "/api/v1/webhooks/alertmanager"):
            reply = await client.post(
                path, content=body, headers={"Content-Type": "application/json"}
            )
            assert reply.status_code == 400, reply.text


async def test_every_route_has_a_body_limit_checked_before_reading(tmp_path: Path) -> None:
    """FastAPI reads a body before the token is checked: the front door refuses big ones."""
    async with running_api(tmp_path, api={"max_body": 4096}) as api, api.client() as anon:
        big = await anon.post("/api/v1/tokens", content=b"x" * 10_000)
        assert big.status_code == 413

        async def chunks() -> Any:
            yield b"{}"

        chunked = await anon.post("/api/v1/tokens", content=chunks())
        assert chunked.status_code == 411
        assert (await anon.post("/api/v1/tokens", json={})).status_code == 401


async def test_nul_in_a_filter_is_a_4xx(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, api.client(api.tokens["read"]) as client:
        for url in (
            "/api/v1/runs?rule=a%00b",
            "/api/v1/events/abcd%00",
            "/api/v1/events?source=%00",
        ):
            assert (await client.get(url)).status_code == 422, url


async def test_an_ambiguous_short_id_is_a_409_and_a_time_that_is_no_number_a_422(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path) as api, \
            api.client(api.tokens["ingest"]) as ingest, \
            api.client(api.tokens["read"]) as client:  # fmt: skip
        sent = [{"source": "t", "kind": "K", "resource": f"r{i}"} for i in range(2)]
        reply = await ingest.post("/api/v1/events", json=sent)
        assert reply.status_code == 202, reply.text
        await api.rt.engine.drain()
        a, b = (e["id"] for e in reply.json()["events"])
        common = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        assert common >= 4  # ids made in the same moment share their start
        found = await client.get(f"/api/v1/events/{a[:common]}")
        assert found.status_code == 409 and "matches several" in found.text, found.text
        assert (await client.get(f"/api/v1/events/{a[: common + 1]}")).status_code == 200
        first, second = (i.id for i in api.store.list_incidents())
        same = next(i for i, (x, y) in enumerate(zip(first, second, strict=True)) if x != y)
        assert same >= 4
        async with api.client(api.tokens["operate"]) as op:  # a write route: the same answer
            acked = await op.post(f"/api/v1/incidents/{first[:same]}/ack", json={})
        assert acked.status_code == 409 and "matches several" in acked.text, acked.text
        for url in ("/api/v1/incidents?since=nan", "/api/v1/runs?since=1e400",
                    "/api/v1/events?since=-inf"):  # fmt: skip
            assert (await client.get(url)).status_code == 422, url


async def test_health_readiness_and_metrics(tmp_path: Path) -> None:
    rules = [{"name": "n", "when": {"source": "disk"}, "do": ["noop"]}]
    async with running_api(tmp_path, rules) as api:
        async with api.client() as anon:
            assert (await anon.get("/healthz")).json() == {"status": "ok"}
            ready = (await anon.get("/readyz")).json()
            assert ready["status"] == "ready" and ready["rules"] == 1
            assert (await anon.get("/metrics")).status_code == 401
            assert (await anon.get("/openapi.json")).json()["info"]["title"] == "opsmedic"
        async with api.client(api.tokens["ingest"]) as client:
            await client.post(
                "/api/v1/events",
                json=[{"source": "disk", "resource": "/a"}, {"source": "disk", "resource": "/b"}],
            )
        await api.rt.engine.drain()
        async with api.client(api.tokens["read"]) as client:
            text = (await client.get("/metrics")).text
        assert 'opsmedic_events_received_total{source="disk"} 2.0' in text
        assert 'opsmedic_runs_total{action="noop",outcome="succeeded",rule="n"} 2.0' in text
        assert 'opsmedic_run_duration_seconds_count{rule="n"} 2.0' in text
        assert "opsmedic_rule_reload_errors_total 0.0" in text


async def test_reload_rejects_a_bad_set_whole_and_reports_it(tmp_path: Path) -> None:
    rules = [{"name": "n", "when": {"source": "disk"}, "do": ["noop"]}]
    async with running_api(tmp_path, rules) as api, api.client(api.tokens["operate"]) as client:
        (tmp_path / "rules" / "bad.yaml").write_text("- {name: b, when: {source: x}, do: [nope]}\n")
        reply = await client.post("/api/v1/rules/reload")
        assert reply.status_code == 422 and "bad.yaml" in json.dumps(reply.json())
        async with api.client(api.tokens["read"]) as reader:
            now = (await reader.get("/api/v1/rules")).json()
        assert [r["name"] for r in now["rules"]] == ["n"] and "bad.yaml" in now["errors"][0]
        (tmp_path / "rules" / "bad.yaml").unlink()
        assert (await client.post("/api/v1/rules/reload")).json() == {"rules": 1}
    # The rules watcher may see bad.yaml too and reject it on its own: one or two rejections.
    assert api.service.metrics.reload_errors._value.get() in (1, 2)


async def test_store_down_is_503_not_500(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, api.client(api.tokens["read"]) as client:
        api.store.close()
        (tmp_path / "opsmedic.db").unlink()
        (tmp_path / "opsmedic.db").mkdir()  # a directory where the database was
        reply = await client.get("/api/v1/events")
        assert reply.status_code == 503 and "unavailable" in reply.json()["detail"]
        assert "opsmedic.db" not in reply.text  # where the store is, is for the log only
        async with api.client() as anon:
            assert (await anon.get("/readyz")).status_code == 503
        (tmp_path / "opsmedic.db").rmdir()


async def test_a_restart_keeps_incidents_and_throttles(tmp_path: Path) -> None:
    """After a restart the same alert joins its open incident and, inside the rule's
    throttle, runs nothing again."""
    notify = {"log": {}}  # the rule's notify target must exist for the rules to load
    async with (
        running_api(tmp_path, RULES, notify=notify) as api,
        api.client(api.tokens["ingest"]) as client,
    ):
        first = (await client.post("/api/v1/webhooks/alertmanager", json=FIRING)).json()
        assert len(first["events"][0]["run_ids"]) == 1
    async with (
        running_api(tmp_path, RULES, notify=notify) as api,
        api.client(api.tokens["ingest"]) as client,
    ):
        again = (await client.post("/api/v1/webhooks/alertmanager", json=FIRING)).json()
        assert again["events"][0]["incident_id"] == first["events"][0]["incident_id"]
        assert again["events"][0]["run_ids"] == []


async def test_a_failed_commit_leaves_no_incident_change_behind(tmp_path: Path) -> None:
    """Batch 2 resolves alert A but its commit fails: the stored incident stays open, and
    the sender's retry of the resolution is what resolves it."""
    from opsmedic.errors import StoreError
    from opsmedic.model import Event, Status

    async with running_api(tmp_path) as api:
        labels = {"alertname": "DiskFull", "service": "db"}
        fired = Event(source="am", kind="DiskFull", labels=labels, id="fixed-id-1")
        await api.rt.engine.submit([fired])
        resolve = Event(source="am", kind="DiskFull", labels=labels, status=Status.RESOLVED)
        clash = Event(source="other", id="fixed-id-1")  # a duplicate key fails the commit
        with pytest.raises(StoreError):
            await api.rt.engine.submit([resolve, clash])
        (incident,) = api.store.list_incidents()
        assert incident.status is IncidentStatus.OPEN
        retry = Event(source="am", kind="DiskFull", labels=labels, status=Status.RESOLVED)
        await api.rt.engine.submit([retry])
        assert retry.incident_id == incident.id
        assert api.store.list_incidents()[0].status is IncidentStatus.RESOLVED


async def test_a_half_sent_body_neither_logs_a_crash_nor_holds_up_the_stop(tmp_path: Path) -> None:
    """A client that sends half a body and then waits: stopping the service is not held up
    forever (uvicorn's graceful shutdown is bounded); one that hangs up is not an error."""
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        async with asyncio.timeout(60), running_api(tmp_path) as api:  # a hang fails, not blocks
            host, port = api.service.api_address or ("", 0)
            token = api.tokens["ingest"]
            head = (f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")  # fmt: skip
            _, hang_up = await asyncio.open_connection(host, port)
            hang_up.write(head.encode())
            await hang_up.drain()
            hang_up.close()
            _, holder = await asyncio.open_connection(host, port)
            holder.write(head.encode())
            await holder.drain()
            await asyncio.sleep(0.2)  # let the server start reading both bodies
        holder.close()  # reached only because the stop above finished
    assert not [e for e in logs if e["event"] == "api.ingest_failed"]


async def test_a_failed_commit_does_not_leave_a_throttle_behind(tmp_path: Path) -> None:
    """The rule fired in memory for a batch that was never stored: the sender's retry must
    run it, not meet a throttle for a run that does not exist."""
    from opsmedic.errors import StoreError
    from opsmedic.model import Event

    rules = [{"name": "once", "when": {"source": "app"}, "do": ["noop"],
              "throttle": {"once_within": "1h", "per": ["resource"]}}]  # fmt: skip
    async with running_api(tmp_path, rules) as api:
        await api.rt.engine.submit([Event(source="other", id="taken-id")])
        with pytest.raises(StoreError):
            await api.rt.engine.submit([Event(source="app", resource="db"),
                                        Event(source="x", id="taken-id")])  # fmt: skip
        (accepted,) = await api.rt.engine.submit([Event(source="app", resource="db")])
        assert len(accepted.run_ids) == 1
        (again,) = await api.rt.engine.submit([Event(source="app", resource="db")])
        assert again.run_ids == []  # and the throttle holds for the run that was stored


async def test_an_address_in_use_stops_the_start_cleanly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with running_api(tmp_path, api={"port": port}):
                pass
