"""A browser of the dashboard for tests: httpx with its cookies, signing in through the form,
the CSRF value of a page, and an alert fired through the API into the running engine."""

from __future__ import annotations

import re
import time

import httpx

from api_service import Api


async def fire(api: Api, title: str = "DiskFull", fingerprint: str = "a", **labels: str) -> str:
    """An alert through the API, handled by the engine; its incident's id."""
    body = {"source": "alertmanager", "kind": title, "resource": "db1", "status": "firing",
            "fingerprint": fingerprint, "time": time.time(),
            "labels": {"alertname": title, "service": "db", **labels}}  # fmt: skip
    async with api.client(api.tokens["ingest"]) as ingest:
        reply = await ingest.post("/api/v1/events", json=body)
    assert reply.status_code == 202, reply.text
    await api.rt.engine.drain()
    return str(reply.json()["events"][0]["incident_id"])


def browser(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.url, timeout=30)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    form = await client.get("/ui/signin")
    assert form.status_code == 200
    return await client.post("/ui/signin", data={"token": token, "csrf": csrf_of(form.text)})
