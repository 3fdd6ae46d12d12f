"""A browser's side of the dashboard for httpx tests: a client, sign-in, the page's CSRF value."""

from __future__ import annotations

import re

import httpx

from api_service import Api


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
