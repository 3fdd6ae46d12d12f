"""A poison request fails alone: sent among valid requests from several senders, it gets a 4xx
and every valid request is committed (202) and acted on, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx

from api_service import running_api
from opsmedic.model import RunState
from opsmedic.tokens import Scope
from store_fixtures import refuse_resource

RULES = [{"name": "act", "when": {"source": "app"}, "do": [{"noop": {}}]}]
SENDERS, REQUESTS, ROUNDS = 3, 8, 3


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


# Each poison with the answer's status and a word of its reason.
POISONS = [
    # Past every depth limit: refused while decoding, before an event exists.
    ('{"source": "app", "payload": {"x": ' + deep(1100) + "}}", 422, "max_depth"),
    # Within api.limits (raised to 1024 here) but too deep for the JSON encoder: refused
    # when submitted, before it joins a batch.
    ('{"source": "app", "payload": {"x": ' + deep(1000) + "}}", 422, "cannot be stored"),
    # Encodes fine; the database refuses it at commit time, in a batch shared with others.
    ('[{"source": "app", "resource": "ok"}, {"source": "app", "resource": "poison"}]', 422,
     "refused"),
]  # fmt: skip


async def test_poisoned_requests_fail_alone_among_several_senders(
    tmp_path: Path, store_url: str
) -> None:
    async with running_api(
        tmp_path, RULES, store=store_url, api={"limits": {"max_depth": 1024}}
    ) as api:
        refuse_resource(store_url, "poison")
        clients = [api.client(api.token(Scope.INGEST, name=f"sender{i}")) for i in range(SENDERS)]
        attacker = api.client(api.token(Scope.INGEST, name="attacker"))

        async def valid(sender: int, n: int) -> tuple[httpx.Response, set[str]]:
            resources = {f"sender{sender}-{n}-{k}" for k in range(2)}
            body = [{"source": "app", "resource": r} for r in sorted(resources)]
            return await clients[sender].post("/api/v1/events", json=body), resources

        async def poison(body: str) -> httpx.Response:
            headers = {"content-type": "application/json"}
            return await attacker.post("/api/v1/events", content=body, headers=headers)

        sent: dict[str, str] = {}  # event id -> resource, for every 202
        for rnd in range(ROUNDS):
            jobs: list[Any] = [
                valid(i, rnd * REQUESTS + n) for i in range(SENDERS) for n in range(REQUESTS)
            ]
            # The poisons go in the middle, to share batches with valid requests on both sides.
            mid = len(jobs) // 2
            jobs[mid:mid] = [poison(body) for body, _, _ in POISONS]
            replies = await asyncio.gather(*jobs)
            for reply, (_, status, reason) in zip(
                replies[mid : mid + len(POISONS)], POISONS, strict=True
            ):
                assert reply.status_code == status, reply.text
                assert reason in reply.json()["detail"]
            for reply, resources in [r for r in replies if isinstance(r, tuple)]:
                assert reply.status_code == 202, reply.text
                events = reply.json()["events"]
                assert len(events) == 2 and all(len(e["run_ids"]) == 1 for e in events)
                for e in events:
                    sent[e["id"]] = api.store.get_event(e["id"]).resource
                assert {sent[e["id"]] for e in events} == resources
        await api.rt.engine.drain()
        assert len(sent) == ROUNDS * SENDERS * REQUESTS * 2
        runs = api.store.list_runs(limit=10_000)
        # Every valid event acted on; nothing of a poisoned request was kept.
        assert sorted(r.event_id for r in runs) == sorted(sent)
        assert {r.state for r in runs} == {RunState.SUCCEEDED}
        stored = api.store.list_events(limit=10_000)
        assert {e.id for e in stored} == set(sent)
        # And the service goes on serving everyone, the attacker included.
        after = await attacker.post("/api/v1/events", json={"source": "app", "resource": "x"})
        assert (after.status_code, after.json()["accepted"]) == (202, 1)
        for c in [*clients, attacker]:
            await c.aclose()


def _random_text(n: int, seed: int) -> str:
    # Random CJK characters (three bytes each) do not compress: PostgreSQL cannot squeeze them
    # under its index limit.
    rng = random.Random(seed)
    return "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(n))


def _alertmanager(fingerprint: str, alertname: str) -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": alertname, "instance": "h1"},
        "annotations": {},
        "startsAt": "2024-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }
    return {"version": "4", "status": "firing", "receiver": "opsmedic", "alerts": [alert]}


async def test_values_too_long_to_index_fail_no_one_else(tmp_path: Path, store_url: str) -> None:
    """Alert names and fingerprints too long for an index entry (PostgreSQL: 54000, "index row
    requires 30016 bytes"), sent concurrently with valid events from several senders: the long
    alert name is grouped under a hashed key and accepted; the long fingerprint is a 422 that
    names it; every valid request is 202 and acted on."""
    rules = [{"name": "act", "when": {"source": "app"}, "do": [{"noop": {}}]},
             {"name": "am", "when": {"source": "alertmanager"}, "do": [{"noop": {}}]}]  # fmt: skip
    async with running_api(tmp_path, rules, store=store_url) as api:
        clients = [api.client(api.token(Scope.INGEST, name=f"sender{i}")) for i in range(2)]
        attacker = api.client(api.token(Scope.INGEST, name="attacker"))

        async def valid(n: int) -> tuple[httpx.Response, str]:
            body = {"source": "app", "resource": f"svc{n}"}
            return await clients[n % 2].post("/api/v1/events", json=body), f"svc{n}"

        long_names = [
            attacker.post("/api/v1/events",
                          json={"source": "t", "labels": {"alertname": _random_text(30_000, i)}})
            for i in range(10)
        ] + [attacker.post("/api/v1/webhooks/alertmanager",
                           json=_alertmanager(f"ab12{i}", _random_text(30_000, 100 + i)))
             for i in range(3)]  # fmt: skip
        long_fps = [
            attacker.post("/api/v1/webhooks/alertmanager",
                          json=_alertmanager(_random_text(60_000, 200 + i), "Fine"))
            for i in range(5)
        ]  # fmt: skip
        jobs: list[Any] = [valid(n) for n in range(60)]
        jobs[10:10] = long_names
        jobs[40:40] = long_fps
        replies = await asyncio.gather(*jobs)
        for reply in replies[10 : 10 + len(long_names)]:
            assert reply.status_code == 202, reply.text
        fps = replies[40 : 40 + len(long_fps)]
        for reply in fps:
            assert reply.status_code == 422, reply.text
            assert "fingerprint: 60000 characters; at most 255" in reply.json()["detail"]
        sent = {}
        for reply, resource in [r for r in replies if isinstance(r, tuple)]:
            assert reply.status_code == 202, reply.text
            (event,) = reply.json()["events"]
            assert len(event["run_ids"]) == 1
            sent[event["run_ids"][0]] = resource
        await api.rt.engine.drain()
        assert len(sent) == 60
        for run_id, resource in sent.items():
            run = api.store.get_run(run_id)
            assert (run.state, run.target) == (RunState.SUCCEEDED, resource)
        # The ten long alert names opened incidents under keys an index can hold.
        keys = {i.key for i in api.store.list_incidents(limit=1000)}
        assert len([k for k in keys if len(k) <= 200 and "#" in k]) == 13
        for c in [*clients, attacker]:
            await c.aclose()
