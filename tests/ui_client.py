"""Test helper: the dashboard as a browser uses it (sign-in with a token, the CSRF value of
a page's forms), and each rendered page kept as a test artifact."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from api_service import Api

XSS = "<script>alert(1)</script>"


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


def keep(factory: pytest.TempPathFactory, name: str, page: httpx.Response) -> Path:
    """Save a rendered page under the test session's base temp dir, ui-pages/NAME.html."""
    artifacts = factory.getbasetemp() / "ui-pages"
    artifacts.mkdir(exist_ok=True)
    path = artifacts / f"{name}.html"
    path.write_text(page.text)
    return path


async def fire(api: Api, title: str = "DiskFull", fingerprint: str = "a", **labels: str) -> str:
    """An alert (`labels` added to its own) through the API, handled by the engine: its
    incident's id."""
    body = {"source": "alertmanager", "kind": title, "resource": "db1", "status": "firing",
            "fingerprint": fingerprint, "time": time.time(),
            "labels": {"alertname": title, "service": "db", **labels}}  # fmt: skip
    async with api.client(api.tokens["ingest"]) as ingest:
        reply = await ingest.post("/api/v1/events", json=body)
    assert reply.status_code == 202, reply.text
    await api.rt.engine.drain()
    return str(reply.json()["events"][0]["incident_id"])
