"""A flapping alert is one incident: 1,000 firing/resolved alternations within a minute of
event time, posted through the API, are one incident with its flap count and `flapping` in
the incident JSON and on its timeline; firing again after the reopen window opens a new one."""

from __future__ import annotations

import time
from pathlib import Path

from api_service import running_api

FLIPS, STEP, PER_REQUEST = 1000, 0.05, 100  # 1,000 events 50 ms apart: 50 s of event time


def flip(i: int, start: float) -> dict[str, object]:
    return {"source": "app", "kind": "HighErrorRate", "resource": "checkout",
            "status": "firing" if i % 2 == 0 else "resolved", "time": start + i * STEP}  # fmt: skip


async def test_a_thousand_flips_are_one_flapping_incident(tmp_path: Path, store_url: str) -> None:
    async with running_api(tmp_path, store=store_url) as api:
        ingest, read = api.client(api.tokens["ingest"]), api.client(api.tokens["read"])
        start = time.time() - 3600  # an hour ago: the next firing now is past the window
        incident_ids = set()
        for first in range(0, FLIPS, PER_REQUEST):
            body = [flip(i, start) for i in range(first, first + PER_REQUEST)]
            reply = await ingest.post("/api/v1/events", json=body)
            assert reply.status_code == 202, reply.text
            incident_ids |= {e["incident_id"] for e in reply.json()["events"]}
        assert len(incident_ids) == 1
        (listed,) = (await read.get("/api/v1/incidents")).json()
        assert (listed["flaps"], listed["flapping"], listed["events"]) == (499, True, 1000)
        detail = (await read.get(f"/api/v1/incidents/{listed['id']}")).json()
        messages = [t["message"] for t in detail["timeline"]]
        assert len(messages) < 30, messages  # one story, not a line per flip
        assert sum(m.startswith("flapping: 3 reopenings within 3600 s") for m in messages) == 1
        later = await ingest.post("/api/v1/events", json=flip(0, time.time()))
        (event,) = later.json()["events"]
        assert event["incident_id"] not in incident_ids  # 59 minutes later: a new incident
        incidents = (await read.get("/api/v1/incidents")).json()
        assert [(i["flaps"], i["flapping"]) for i in incidents] == [(0, False), (499, True)]
        await ingest.aclose()
        await read.aclose()
