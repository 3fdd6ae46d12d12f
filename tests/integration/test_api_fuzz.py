"""Thousands of malformed bodies on every ingest endpoint: a 4xx with a message, never a 5xx,
and nothing stored."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_service import write_config
from opsmedic.metrics import Metrics
from opsmedic.runtime import api_app, build, build_registry
from opsmedic.sources.webhooks import BUILTIN_WEBHOOKS
from opsmedic.tokens import Scope, digest, mint

ENDPOINTS = ["/api/v1/events", *(f"/api/v1/webhooks/{s.name}" for s in BUILTIN_WEBHOOKS)]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
# Shapes close to the real ones, so that parsing gets past the first check.
near_misses = st.fixed_dictionaries({}, optional={
    "alerts": st.lists(st.dictionaries(st.sampled_from(
        ["status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"]), json_values,
        max_size=6), max_size=3) | json_values,
    "status": st.sampled_from(["firing", "resolved", "", "FIRING"]) | json_values,
    "source": json_values, "labels": json_values, "event": json_values, "alert": json_values,
    "action": json_values, "State": json_values, "PID": json_values, "evalMatches": json_values,
    "event_action": json_values, "payload": json_values, "title": json_values,
})  # fmt: skip
raw_bodies = st.binary(max_size=200) | st.text(max_size=200).map(str.encode)


def test_malformed_bodies_get_4xx_and_store_nothing(tmp_path: Path) -> None:
    rt = build(write_config(tmp_path, [{"name": "all", "when": {"source": {"exists": True}},
                                        "do": ["noop"]}]), registry=build_registry())  # fmt: skip
    assert rt.store is not None
    record, secret = mint("fuzz", [Scope.INGEST], 0.0)
    rt.store.add_token(record, digest(secret))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(rt.engine.start())
    app = api_app(rt, Metrics())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                               headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
    seen: dict[int, int] = {}

    @settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(endpoint=st.sampled_from(ENDPOINTS), body=near_misses.map(json.dumps).map(str.encode)
           | json_values.map(json.dumps).map(str.encode) | raw_bodies)  # fmt: skip
    def check(endpoint: str, body: bytes) -> None:
        before = rt.store.counts()["events"] if rt.store else 0
        reply = loop.run_until_complete(client.post(endpoint, content=body,
                                        headers={"Content-Type": "application/json"}))  # fmt: skip
        seen[reply.status_code] = seen.get(reply.status_code, 0) + 1
        assert reply.status_code < 500, (endpoint, body[:200], reply.text)
        if reply.status_code >= 400:
            assert reply.json()["detail"], reply.text
            assert rt.store is not None and rt.store.counts()["events"] == before
        else:
            assert reply.status_code == 202

    try:
        check()
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(rt.engine.close())
        loop.close()
    # The bodies reached the parsers: most are refused, and some shapes were accepted.
    assert seen.get(422, 0) > 500 and seen.get(400, 0) > 100, seen


def test_unknown_fields_are_kept_not_rejected(tmp_path: Path) -> None:
    rt = build(write_config(tmp_path, []), registry=build_registry())
    assert rt.store is not None
    record, secret = mint("t", [Scope.INGEST], 0.0)
    rt.store.add_token(record, digest(secret))

    async def post(body: dict[str, Any]) -> httpx.Response:
        await rt.engine.start()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(rt, Metrics())),
                                         base_url="http://t",
                                         headers={"Authorization": f"Bearer {secret}"}) as c:  # fmt: skip
                return await c.post("/api/v1/webhooks/alertmanager", json=body)
        finally:
            await rt.engine.close()

    body = {
        "status": "firing",
        "newTopLevel": 1,
        "alerts": [{"status": "firing", "labels": {"alertname": "A"}, "futureField": {"x": [1]}}],
    }
    reply = asyncio.run(post(body))
    assert reply.status_code == 202, reply.text
    (event,) = rt.store.list_events()
    assert event.payload["futureField"] == {"x": [1]}
