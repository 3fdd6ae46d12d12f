"""Whether a switch took effect: the `current` symlink and the version the service reports."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from opsmedic.config.services import ServiceConfig
from opsmedic.transport.http import http_client

POLL_S = 0.1  # between two reads of version_url while waiting for the new version


async def switch_problem(service: ServiceConfig, env: str, version: str) -> str | None:
    """None when every configured sign shows `version` in place, else what is wrong."""
    current = service.current_of(env)
    if current is not None:
        problem = _points_at(current, service.versions / version)
        if problem is not None:
            return problem
    url = service.version_url_of(env)
    if url is None:
        return None
    return await version_reported(url, version, service.switch_timeout)


def _points_at(current: Path, want: Path) -> str | None:
    """A stat or two on local paths: too small to send to a thread."""
    found = Path(os.path.realpath(current))
    if found != Path(os.path.realpath(want)):
        return f"{current} points at {found}, not at {want}"
    return None


async def version_reported(url: str, version: str, wait: float) -> str | None:
    """Poll `url` until its body names `version` (a reload takes a moment), up to `wait` s."""
    import httpx

    deadline = time.monotonic() + wait
    last = "no answer"
    async with http_client(verify_tls=True, timeout=min(wait, 5.0)) as client:
        while True:
            try:
                response = await client.get(url)
                body = response.text.strip()
                if response.status_code == 200 and names_version(body, version):
                    return None
                last = f"status {response.status_code}, body {body[:80]!r}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                return f"{url} does not report {version!r} after {wait:g}s ({last})"
            await asyncio.sleep(POLL_S)


def names_version(body: str, version: str) -> bool:
    """The body is the version, or a JSON object whose `version` is."""
    if body == version:
        return True
    try:
        found = json.loads(body)
    except ValueError:
        return False
    return isinstance(found, dict) and found.get("version") == version
