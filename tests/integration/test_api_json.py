"""Every JSON route decodes its body with the same strict decoder: NaN and Infinity are not JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api_service import running_api
from opsmedic.api.ingest import EVENTS_PATH, WEBHOOKS_PREFIX
from opsmedic.api.strict import StrictJSONRoute
from opsmedic.metrics import Metrics
from opsmedic.runtime import api_app

# A lenient parser (Python's json, Starlette's request.json()) takes each of these.
NOT_JSON = [
    b'{"name": "t", "scopes": ["read"], "x": NaN}',
    b'{"source": "a", "value": Infinity}',
    b'{"source": "a", "value": -Infinity}',
    b'{"alerts": [NaN]}',
]


async def test_every_json_route_refuses_nan_and_infinity_alike(tmp_path: Path) -> None:
    """The same answer on ingest, every webhook and the admin routes; nothing stored."""
    async with running_api(tmp_path) as api:
        webhooks = [(WEBHOOKS_PREFIX + name, "ingest") for name in api.rt.registry.webhooks]
        routes = [(EVENTS_PATH, "ingest"), *webhooks]
        routes.append(("/api/v1/tokens", "admin"))
        routes.append(("/api/v1/silences", "operate"))
        tokens_before = api.store.list_tokens()
        for path, scope in routes:
            async with api.client(api.tokens[scope]) as client:
                for body in NOT_JSON:
                    reply = await client.post(
                        path, content=body, headers={"Content-Type": "application/json"}
                    )
                    assert (reply.status_code, path) == (400, path), reply.text
                    assert reply.json()["detail"].startswith("not JSON: "), (path, reply.text)
        assert api.store.list_tokens() == tokens_before
        assert api.store.list_events() == []
        async with api.client(api.tokens["admin"]) as admin:  # and the route still works
            made = await admin.post("/api/v1/tokens", json={"name": "after", "scopes": ["read"]})
            assert made.status_code == 201, made.text


@pytest.mark.parametrize("body", [b"{not json", b'{"name": "t", "scopes": ["read"]'])
async def test_a_token_body_that_is_not_json_gets_what_ingest_gets(
    tmp_path: Path, body: bytes
) -> None:
    async with running_api(tmp_path) as api:
        async with api.client(api.tokens["admin"]) as admin:
            tokens = await admin.post(
                "/api/v1/tokens", content=body, headers={"Content-Type": "application/json"}
            )
        async with api.client(api.tokens["ingest"]) as ingest:
            events = await ingest.post(
                EVENTS_PATH, content=body, headers={"Content-Type": "application/json"}
            )
        assert tokens.status_code == events.status_code == 400
        assert tokens.json() == events.json()


def _api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI resolves those lazily)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (router := getattr(route, "original_router", None)) is not None:
            found.extend(_api_routes(router.routes))
    return found


async def test_every_route_with_a_body_model_is_a_strict_json_route(tmp_path: Path) -> None:
    """A route added later with a body model cannot slip back to the lenient decoder."""
    async with running_api(tmp_path) as api:
        routes = _api_routes(api_app(api.rt, Metrics()).app.routes)
    assert len(routes) > 10  # ingest, webhooks, reads, operate, admin, health
    with_body = [r for r in routes if r.body_field is not None]
    assert sorted(r.path for r in with_body) == [
        "/api/v1/deployments", "/api/v1/deployments/rollback", "/api/v1/flags/{key}",
        "/api/v1/flags/{key}/enabled", "/api/v1/flags/{key}/rollout", "/api/v1/flags/{key}/undo",
        "/api/v1/incidents/{ref}/ack", "/api/v1/incidents/{ref}/assign",
        "/api/v1/incidents/{ref}/close", "/api/v1/incidents/{ref}/note",
        "/api/v1/incidents/{ref}/reopen", "/api/v1/incidents/{ref}/resolve",
        "/api/v1/rules/{name}/runs", "/api/v1/runs/{ref}/approve", "/api/v1/runs/{ref}/reject", "/api/v1/silences",
        "/api/v1/tokens",
    ]  # fmt: skip
    assert all(isinstance(r, StrictJSONRoute) for r in with_body)
