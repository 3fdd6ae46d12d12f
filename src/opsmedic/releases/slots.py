"""A blue/green slot over HTTP: its URLs, the version it reports, the wait until it is warm."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from opsmedic.config.services import ServiceConfig, VerifyCheck
from opsmedic.transport.http import http_client

POLL_S = 0.1  # between two asks of a starting slot's version
ASK_TIMEOUT_S = 2.0  # a slot slower than this to say its version is not warm enough to switch to
# Called between two polls of a starting slot: False once the deployment was taken over.
Tick = Callable[[], Awaitable[bool]]


class TakenOver(Exception):
    """The deployment was taken over (an emergency rollback) while a slot warmed up."""


def slot_url(url: str, backend: str) -> str:
    """`url` sent to the slot itself: the router proxies to its backends in plain HTTP, so the
    scheme and host:port give way to http://BACKEND; path and query stay."""
    parts = urlsplit(url)
    return f"http://{backend}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")


def version_url(service: ServiceConfig, env: str, backend: str) -> str:
    """Where the slot at `backend` answers its version (the config ensures there is one)."""
    assert service.blue_green is not None
    if service.blue_green.version_path:
        return f"http://{backend}{service.blue_green.version_path}"
    url = service.version_url_of(env)
    assert url is not None
    return slot_url(url, backend)


def preview_checks(service: ServiceConfig, name: str, env: str, backend: str) -> list[VerifyCheck]:
    """The service's own http checks sent to the slot at `backend`. Each must take its
    min_samples: a slot that answers nothing gives bad samples, never too few (hold)."""
    return [
        check.model_copy(update={
            "name": f"{name}/{check.name}", "on_no_data": "hold",
            "http": check.http.model_copy(update={"url": slot_url(check.http.url, backend)}),
        })
        for check in service.checks(env) if check.http is not None
    ]  # fmt: skip


def version_in(body: str) -> str:
    """The version a body reports: the body itself, or a JSON object's `version`."""
    body = body.strip()
    try:
        found = json.loads(body)
    except ValueError:
        return body
    if isinstance(found, dict) and isinstance(found.get("version"), str):
        return str(found["version"])
    return body


async def reported(url: str, within: float = ASK_TIMEOUT_S) -> tuple[str | None, str]:
    """(the version `url` reports, or None; what was seen)."""
    import httpx

    async with http_client(verify_tls=True, timeout=within) as client:
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:200]
    body = response.text
    if response.status_code != 200:
        return None, f"status {response.status_code}, body {body.strip()[:80]!r}"
    return version_in(body), f"body {body.strip()[:80]!r}"


async def warm(url: str, version: str, wait: float, tick: Tick | None = None) -> str | None:
    """Ask `url` until it reports `version`, up to `wait` s: None, or what it said last.
    TakenOver when `tick` says the deployment is no longer ours."""
    deadline = time.monotonic() + wait
    while True:
        found, seen = await reported(url, min(ASK_TIMEOUT_S, wait))
        if found == version:
            return None
        if time.monotonic() >= deadline:
            return f"{url} does not report {version!r} within warm_timeout {wait:g}s (last: {seen})"
        if tick is not None and not await tick():
            raise TakenOver(url)
        await asyncio.sleep(POLL_S)
