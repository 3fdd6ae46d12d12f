"""People act on incidents through the API (scope operate), on SQLite and PostgreSQL: each
action on the timeline with who, refusals with 4xx and nothing written, the engine leaving a
person's state alone, and two people acknowledging at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_service import Api, running_api
from opsmedic.clock import ManualClock
from opsmedic.lifecycle import NOTE_MAX, WHO_MAX, Action

ALERT = {"source": "alertmanager", "kind": "DiskFull", "resource": "db1",
         "labels": {"alertname": "DiskFull", "service": "db"}}  # fmt: skip


async def fire(api: Api, fingerprint: str = "a", status: str = "firing") -> str:
    async with api.client(api.tokens["ingest"]) as ingest:
        body = {**ALERT, "fingerprint": fingerprint, "status": status, "time": time.time()}
        reply = await ingest.post("/api/v1/events", json=body)
    assert reply.status_code == 202, reply.text
    (event,) = reply.json()["events"]
    return str(event["incident_id"])


async def detail(api: Api, incident_id: str) -> dict[str, Any]:
    async with api.client(api.tokens["read"]) as read:
        reply = await read.get(f"/api/v1/incidents/{incident_id}")
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


async def ruled(api: Api, fingerprint: str, at: float | None = None) -> list[str]:
    """The rules whose runs a firing event planned, once they are done."""
    async with api.client(api.tokens["ingest"]) as ingest:
        body = {**ALERT, "fingerprint": fingerprint, "time": time.time() if at is None else at}
        reply = await ingest.post("/api/v1/events", json=body)
    await settle(api)
    (event,) = reply.json()["events"]
    return sorted(api.store.get_run(r).rule for r in event["run_ids"])


async def settle(api: Api) -> None:
    """Wait until the engine has committed what it planned (runs, incident changes)."""
    await api.rt.engine.drain()


async def test_ack_note_assign_resolve_close_each_on_the_timeline(
    tmp_path: Path, store_url: str
) -> None:
    async with running_api(tmp_path, store=store_url) as api:
        incident_id = await fire(api)
        async with api.client(api.tokens["operate"]) as op:
            acked = await op.post(f"/api/v1/incidents/{incident_id[-6:]}/ack",
                                  json={"as": "alice", "reason": "on it"})  # fmt: skip
            assert acked.status_code == 200, acked.text
            body = acked.json()
            assert body["incident"]["status"] == "acknowledged"
            assert body["incident"]["acknowledged_by"].startswith("alice (token test-operate-")
            assert body["line"]["kind"] == "acknowledged"
            assert body["line"]["message"].startswith("acknowledged by alice (token ")
            assert body["line"]["message"].endswith("): on it")
            # More firing events, a repeat and a new alert: still acknowledged.
            assert await fire(api, "a") == incident_id
            assert await fire(api, "b") == incident_id
            await settle(api)
            assert (await detail(api, incident_id))["status"] == "acknowledged"
            noted = await op.post(f"/api/v1/incidents/{incident_id}/note",
                                  json={"note": "disk at 97 %\nlooking"})  # fmt: skip
            assert noted.status_code == 200, noted.text
            assigned = await op.post(f"/api/v1/incidents/{incident_id}/assign", json={"to": "bob"})
            assert assigned.json()["incident"]["assignee"] == "bob"
            resolved = await op.post(f"/api/v1/incidents/{incident_id}/resolve")  # no body
            assert resolved.status_code == 200, resolved.text
            assert resolved.json()["incident"]["status"] == "resolved"
            closed = await op.post(f"/api/v1/incidents/{incident_id}/close", json={})
            assert closed.json()["incident"]["status"] == "closed"
            assert closed.json()["incident"]["closed_at"] is not None
        found = await detail(api, incident_id)
        people = [(t["kind"], t["message"]) for t in found["timeline"]
                  if t["kind"] in ("acknowledged", "note", "assigned", "resolved", "closed")]  # fmt: skip
        token = api.rt.store.list_tokens()
        operate = next(t.name for t in token if t.name.startswith("test-operate-"))
        assert people == [
            ("acknowledged", f"acknowledged by alice (token {operate}): on it"),
            ("note", f"note by {operate}: disk at 97 %\nlooking"),
            ("assigned", f"assigned to bob by {operate}"),
            ("resolved", f"resolved by hand by {operate}"),
            ("closed", f"closed by hand by {operate}"),
        ]
        assert found["tta"] is not None and found["tta"] >= 0
        assert found["ttr"] is not None and found["ttr"] >= found["tta"]
        assert found["ttm"] is None


async def test_resolved_by_hand_reopens_on_a_firing_alert_closed_opens_a_new_one(
    tmp_path: Path, store_url: str
) -> None:
    async with running_api(tmp_path, store=store_url) as api:
        incident_id = await fire(api)
        async with api.client(api.tokens["operate"]) as op:
            reply = await op.post(f"/api/v1/incidents/{incident_id}/resolve")
            assert reply.status_code == 200, reply.text
            assert await fire(api) == incident_id  # its alert still fires: re-triggered
            await settle(api)
            found = await detail(api, incident_id)
            assert found["status"] == "open" and found["flaps"] == 1
            reply = await op.post(f"/api/v1/incidents/{incident_id}/close")
            assert reply.status_code == 200, reply.text
            again = await fire(api)
            assert again != incident_id  # closed is final: a new incident
            await settle(api)
            assert (await detail(api, incident_id))["status"] == "closed"
            assert (await detail(api, again))["status"] == "open"
            reopen = await op.post(f"/api/v1/incidents/{incident_id}/reopen")
            assert reopen.status_code == 409
            assert "the incident is closed: cannot reopen it" in reopen.json()["detail"]


async def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(
    tmp_path: Path, store_url: str
) -> None:
    async with running_api(tmp_path, store=store_url) as api:
        incident_id = await fire(api)
        await settle(api)
        before = await detail(api, incident_id)
        url = f"/api/v1/incidents/{incident_id}"
        async with api.client(api.tokens["ingest"]) as ingest:
            assert (await ingest.post(f"{url}/ack")).status_code == 403
        async with api.client(api.tokens["read"]) as read:
            assert (await read.post(f"{url}/close")).status_code == 403
        async with api.client(api.tokens["operate"]) as op:
            cases: list[tuple[str, Any, int, str]] = [
                ("note", {"note": ""}, 422, "note"),
                ("note", {"note": "   "}, 422, "note"),
                ("note", {}, 422, "note"),
                ("note", {"note": "x" * (NOTE_MAX + 1)}, 422, "note"),
                ("note", {"note": "a\x00b"}, 422, "note"),
                ("assign", {"to": "b" * (WHO_MAX + 1)}, 422, "to"),
                ("assign", {"to": "bob\nsmith"}, 422, "to"),
                ("ack", {"as": "a" * (WHO_MAX + 1)}, 422, "as"),
                ("ack", {"as": ""}, 422, "as"),
                ("ack", {"reason": "x" * (NOTE_MAX + 1)}, 422, "reason"),
                ("resolve", {"reason": "x\ny"}, 422, "reason"),  # one line; a note may break
                ("ack", {"who": "alice"}, 422, "who"),
                # Would make a line lie when shown (a bidi override reorders what follows).
                ("ack", {"as": "alice\u202e"}, 422, "as"),
                ("note", {"note": "fixed \u2066it"}, 422, "bidi control"),
                ("assign", {"to": "bob\u202a"}, 422, "to"),
                ("resolve", {"reason": "\u2069done"}, 422, "reason"),
                ("note", {"note": "a\x1b[2Jb"}, 422, "control character"),
                ("ack", [1], 422, "body"),
                ("reopen", {}, 409, "the incident is open: cannot reopen it"),
            ]
            for action, body, status, named in cases:
                reply = await op.post(f"{url}/{action}", json=body)
                assert reply.status_code == status, (action, body, reply.text)
                assert named in reply.text, (action, body, reply.text)
            unknown = await op.post("/api/v1/incidents/ffffffffffff/ack")
            assert unknown.status_code == 404 and "no incident" in unknown.json()["detail"]
            nul = await op.post("/api/v1/incidents/ab%00cd/ack")
            assert nul.status_code == 422
            raw = await op.post(f"{url}/ack", content=b'{"as": NaN}',
                                headers={"content-type": "application/json"})  # fmt: skip
            assert raw.status_code == 400  # not JSON (NaN): refused as ingest refuses it
        after = await detail(api, incident_id)
        assert after["timeline"] == before["timeline"] and after["status"] == "open"


@pytest.mark.parametrize("mitigated", [False, True])
async def test_people_acknowledging_at_once_make_one_line(
    tmp_path: Path, store_url: str, mitigated: bool
) -> None:
    """Open or mitigated (where `ack` keeps the state, so only the acknowledgement itself can
    refuse a second one): one 200, one line; the others a 409 naming who won."""
    rules = [{"name": "fix", "when": {"source": "alertmanager"}, "do": ["noop"]}]
    async with running_api(tmp_path, rules if mitigated else None, store=store_url) as api:
        incident_id = await fire(api)
        await settle(api)
        assert (await detail(api, incident_id))["status"] == ("mitigated" if mitigated else "open")

        async def ack(who: str) -> httpx.Response:
            async with api.client(api.tokens["operate"]) as op:
                return await op.post(f"/api/v1/incidents/{incident_id}/ack", json={"as": who})

        replies = await asyncio.gather(*(ack(f"person{i}") for i in range(8)))
        codes = sorted(r.status_code for r in replies)
        assert codes == [200] + [409] * 7, [r.text for r in replies]
        (winner,) = [r.json() for r in replies if r.status_code == 200]
        by = winner["incident"]["acknowledged_by"]
        assert all(f"already acknowledged by {by} at 20" in r.json()["detail"]
                   for r in replies if r.status_code == 409)  # fmt: skip
        found = await detail(api, incident_id)
        lines = [t for t in found["timeline"] if t["kind"] == "acknowledged"]
        assert len(lines) == 1 and lines[0]["message"] == winner["line"]["message"]
        assert found["acknowledged_by"] == by
        assert found["status"] == ("mitigated" if mitigated else "acknowledged")


async def test_on_acknowledge_stop_ends_a_rules_runs_for_that_incident(tmp_path: Path) -> None:
    rules = [
        {"name": "page", "when": {"source": "alertmanager"}, "do": [{"noop": {"message": "paged"}}],
         "on_acknowledge": "stop"},
        {"name": "collect", "when": {"source": "alertmanager"}, "do": [{"noop": {}}]},
    ]  # fmt: skip
    async with running_api(tmp_path, rules) as api:
        assert await ruled(api, "a") == ["collect", "page"]
        (incident,) = api.store.list_incidents()
        async with api.client(api.tokens["operate"]) as op:
            assert (await op.post(f"/api/v1/incidents/{incident.id}/ack")).status_code == 200
        assert await ruled(api, "b") == ["collect"]  # acknowledged: paging stops, collecting not
        assert api.rt.engine.planner.stats.stopped_acknowledged == 1
        # …and says so, like every decision that starts no run.
        (row,) = api.store.suppressed.list(rule="page")
        assert (row.outcome, row.count, row.detail) == ("acknowledged", 1, "on_acknowledge: stop")


async def test_the_engine_decides_on_an_action_taken_outside_its_api_at_once(
    tmp_path: Path, store_url: str
) -> None:
    """`opsmedic incidents ack` writes the store, not the engine: the engine's next write of
    that incident is refused as stale (IncidentMoved), so it reads the incident again and
    decides on the acknowledgement (here: a rule that stops on acknowledge), without waiting
    for its periodic look (the clock stands still)."""
    clock = ManualClock(time.time())
    rules = [{"name": "page", "when": {"source": "alertmanager"}, "do": ["noop"],
              "on_acknowledge": "stop"}]  # fmt: skip
    async with running_api(tmp_path, rules, clock=clock, store=store_url) as api:
        assert await ruled(api, "a", clock.now()) == ["page"]
        (incident,) = api.store.list_incidents()
        await asyncio.to_thread(api.store.incident_action, incident.id, Action.ACK, "alice",
                                clock.now())  # fmt: skip
        assert await ruled(api, "b", clock.now()) == []  # acknowledged: the page stops
        found = await detail(api, incident.id)
        assert (found["status"], found["acknowledged_by"]) == ("acknowledged", "alice")
        acks = [t for t in found["timeline"] if t["kind"] == "acknowledged"]
        assert len(acks) == 1
