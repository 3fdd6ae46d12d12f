"""A poison request fails alone: sent among valid requests from several senders, it gets a 4xx
and every valid request is committed (202) and acted on, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
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
