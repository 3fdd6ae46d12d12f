"""People acting on an incident while the engine writes it, on SQLite and PostgreSQL: the
engine's write commits only on the incident as people left it (store/incident_rows.py), never
on the copy it read before; so a closed incident gains no alert, a resolved one no
mitigation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from test_incident_actions_api import ALERT, detail

from api_service import Api, running_api
from opsmedic.clock import ManualClock
from opsmedic.lifecycle import Action
from opsmedic.model import RunState


async def fire(api: Api, at: float, fingerprint: str = "a") -> dict[str, Any]:
    async with api.client(api.tokens["ingest"]) as ingest:
        reply = await ingest.post("/api/v1/events", json={**ALERT, "fingerprint": fingerprint,
                                                          "time": at})  # fmt: skip
    assert reply.status_code == 202, reply.text
    (event,) = reply.json()["events"]
    await api.rt.engine.drain()
    found: dict[str, Any] = event
    return found


async def by_hand(api: Api, incident_id: str, action: Action, at: float) -> None:
    """As `opsmedic incidents ACTION` takes it: on the store, the engine not told."""
    await asyncio.to_thread(api.store.incident_action, incident_id, action, "alice", at)


async def test_an_alert_after_a_resolve_or_close_outside_the_engine_follows_the_state_machine(
    tmp_path: Path, store_url: str
) -> None:
    """Resolved by hand: its alert firing reopens it. Closed by hand: its alerts never join
    it again, a new incident opens."""
    # The clock stands still: the engine's periodic look at people's actions never comes.
    clock = ManualClock(time.time())
    async with running_api(tmp_path, clock=clock, store=store_url) as api:
        incident_id = (await fire(api, clock.now()))["incident_id"]
        await by_hand(api, incident_id, Action.RESOLVE, clock.now())
        assert (await fire(api, clock.now()))["incident_id"] == incident_id
        found = await detail(api, incident_id)
        assert found["status"] == "open" and found["flaps"] == 1  # the state machine's reopening
        kinds = [t["kind"] for t in found["timeline"]]
        reopened = [t["message"] for t in found["timeline"] if t["message"].startswith("reopen")]
        assert kinds.index("resolved") < kinds.index("status_changed", 1), kinds
        assert reopened and "fired again" in reopened[0], found["timeline"]

        await by_hand(api, incident_id, Action.CLOSE, clock.now())
        before = await detail(api, incident_id)
        for fingerprint in ("a", "b"):  # its own alert, and a new one of its group
            event = await fire(api, clock.now(), fingerprint)
            assert event["incident_id"] != incident_id
        after = await detail(api, incident_id)
        assert (after["status"], after["events"], after["timeline"]) == (
            "closed", before["events"], before["timeline"])  # fmt: skip
        assert [a["fingerprint"] for a in after["alerts"]] == ["a"]
        new = await detail(api, event["incident_id"])
        assert new["status"] == "open" and new["events"] == 2


async def test_a_run_succeeding_after_a_resolve_by_hand_does_not_mitigate(
    tmp_path: Path, store_url: str
) -> None:
    rules = [{"name": "fix", "when": {"source": "alertmanager"},
              "do": [{"noop": {}, "approve": {"timeout": "1h", "on_timeout": "skip"}}]}]  # fmt: skip
    async with running_api(tmp_path, rules, store=store_url) as api:
        event = await fire(api, time.time())
        incident_id, (run_id,) = event["incident_id"], event["run_ids"]
        assert api.store.get_run(run_id).state is RunState.WAITING_APPROVAL
        async with api.client(api.tokens["operate"]) as op:
            reply = await op.post(f"/api/v1/incidents/{incident_id}/resolve")
            assert reply.status_code == 200, reply.text
            reply = await op.post(f"/api/v1/runs/{run_id}/approve")
            assert reply.status_code == 200, reply.text
        async with asyncio.timeout(30):
            while api.store.get_run(run_id).state is not RunState.SUCCEEDED:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        await api.rt.engine.drain()
        found = await detail(api, incident_id)
        assert found["status"] == "resolved" and found["ttm"] is None
        lines = [(t["kind"], t["message"]) for t in found["timeline"]]
        assert not [m for _, m in lines if m.startswith("mitigated")], lines
        assert ("run_finished", "run of fix succeeded: ok") in lines or any(
            k == "run_finished" and "succeeded" in m for k, m in lines), lines  # fmt: skip


async def _outcomes(api: Api, body: dict[str, Any]) -> list[str]:
    async with api.client(api.tokens["ingest"]) as ingest:
        reply = await ingest.post("/api/v1/events", json=body)
    assert reply.status_code == 202, reply.text
    await api.rt.engine.drain()
    return [d["outcome"] for d in reply.json()["events"][0]["decisions"]]


async def test_a_commit_refused_because_people_acted_keeps_limits_and_hold_lines(
    tmp_path: Path, store_url: str
) -> None:
    """The engine plans again on the store's state after people acted (IncidentMoved): a
    limit counted `per` a label keeps its window (not only `per: target`), and a hold the
    refused commit had noted still gets its timeline line."""
    clock = ManualClock(time.time())
    rules = [{"name": "fix", "when": {"kind": "Lim"}, "do": [{"noop": {}}],
              "limit": {"max_runs": 2, "within": "1h", "per": ["labels.worker"]}},
             {"name": "tend", "when": {"kind": "Target"}, "do": [{"noop": {}}]}]  # fmt: skip
    inhibit = [{"name": "node-down", "source_matchers": ["kind=NodeDown"],
                "target_matchers": ["kind=Target"], "equal": ["host"]}]  # fmt: skip
    lim = {"source": "t", "kind": "Lim", "host": "L", "labels": {"worker": "w1"}}
    async with running_api(tmp_path, rules, clock=clock, store=store_url, inhibit=inhibit) as api:
        seen = [await _outcomes(api, {**lim, "fingerprint": f"l{i}", "time": clock.now()})
                for i in range(3)]  # fmt: skip
        assert seen == [["planned"], ["planned"], ["over_limit"]]
        incident_id = api.store.list_incidents()[0].id
        await by_hand(api, incident_id, Action.NOTE, clock.now())
        seen = [await _outcomes(api, {**lim, "fingerprint": f"l{i}", "time": clock.now()})
                for i in range(3, 5)]  # fmt: skip
        assert seen == [["over_limit"], ["over_limit"]]  # the window survived the replanning

        node = {"source": "t", "kind": "NodeDown", "host": "n1", "time": clock.now()}
        await _outcomes(api, node)
        target = {"source": "t", "kind": "Target", "host": "n1", "time": clock.now()}
        await _outcomes(api, {**target, "fingerprint": "t0"})
        held_on = {i.id for i in api.store.list_incidents() if i.id != incident_id}
        for other in held_on:
            await by_hand(api, other, Action.NOTE, clock.now())
        assert await _outcomes(api, {**target, "fingerprint": "t1"}) == ["inhibited"]
        lines = [(t["kind"], t["message"]) for i in held_on
                 for t in (await detail(api, i))["timeline"]]  # fmt: skip
        held = [m for kind, m in lines if kind == "rule_held"]
        assert len(held) == 2 and all("node-down" in m for m in held), lines
