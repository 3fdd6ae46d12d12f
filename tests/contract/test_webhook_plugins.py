"""A third-party webhook source, registered through the `opsmedic.sources` entry-point group:
it gets its API route, its `verify` sees every request first, and a bad registration fails at
start-up."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterable
from importlib.metadata import EntryPoint
from pathlib import Path

import httpx
import pytest

from api_service import write_config
from opsmedic import runtime
from opsmedic.errors import PluginError
from opsmedic.metrics import Metrics
from opsmedic.runtime import api_app, build, build_registry
from opsmedic.tokens import Scope, digest, mint

# What a third party ships: one module with its WebhookSpec, nothing of opsmedic's changed.
ACME = """
from opsmedic.errors import WebhookRefused
from opsmedic.model import Event
from opsmedic.plugins import WebhookSpec

SEEN = []


def parse(data):
    return [Event(source="acme", kind=data["kind"], resource=data["service"])]


def verify(body, headers, settings):
    SEEN.append((body, headers.get("x-acme-token"), settings))
    if headers.get("x-acme-token") != "t0ken":
        raise WebhookRefused("X-Acme-Token is missing or wrong")


WEBHOOK = WebhookSpec("acme", parse, verify=verify, summary="ACME Monitor's alerts")
NOT_A_SPEC = object()
"""


@pytest.fixture
def entry_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[EntryPoint]:
    """The `opsmedic.sources` group as an installed package would declare it."""
    (tmp_path / "acme_webhook.py").write_text(ACME)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "acme_webhook", raising=False)
    sources: list[EntryPoint] = []

    def declared(group: str) -> Iterable[EntryPoint]:
        return sources if group == "opsmedic.sources" else []

    monkeypatch.setattr(runtime, "entry_points", declared)
    return sources


@pytest.fixture
async def client(
    tmp_path: Path, entry_points: list[EntryPoint]
) -> AsyncIterator[httpx.AsyncClient]:
    entry_points.append(EntryPoint("acme", "acme_webhook:WEBHOOK", "opsmedic.sources"))
    rules = [{"name": "acme", "when": {"source": "acme"}, "do": ["noop"]}]
    rt = build(write_config(tmp_path / "svc", rules), registry=build_registry())
    assert rt.store is not None
    record, secret = mint("ingest", [Scope.INGEST], 0.0)
    rt.store.add_token(record, digest(secret))
    await rt.engine.start()
    transport = httpx.ASGITransport(app=api_app(rt, Metrics()))
    headers = {"Authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c
    await rt.engine.close()


async def test_a_third_party_webhook_gets_a_route_and_its_verify_sees_each_request(
    client: httpx.AsyncClient,
) -> None:
    import acme_webhook  # the module the entry point loaded

    body = b'{"kind": "latency", "service": "checkout"}'
    refused = await client.post("/api/v1/webhooks/acme", content=body)
    assert (refused.status_code, refused.json()) == (
        401, {"detail": "X-Acme-Token is missing or wrong"}
    )  # fmt: skip
    accepted = await client.post("/api/v1/webhooks/acme", content=body,
                                 headers={"X-Acme-Token": "t0ken"})  # fmt: skip
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["accepted"] == 1 and accepted.json()["events"][0]["run_ids"]
    # The raw body, before any decoding, and the headers as sent; no settings declared.
    assert [(body, None, None), (body, "t0ken", None)] == acme_webhook.SEEN
    described = (await client.get("/openapi.json")).json()
    assert "/api/v1/webhooks/acme" in described["paths"]


async def test_a_webhook_name_nobody_registered_is_not_found(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/webhooks/acmee", "/api/v1/webhooks/prometheus"):
        reply = await client.post(path, content=b"{}")
        assert reply.status_code == 404, (path, reply.text)


@pytest.mark.parametrize(
    ("entry_point", "message"),
    [(EntryPoint("acme", "acme_webhook:NOT_A_SPEC", "opsmedic.sources"),
      "entry point 'acme' is not an WebhookSpec"),
     (EntryPoint("acme2", "acme_webhook:WEBHOOK", "opsmedic.sources"),
      "entry point 'acme2' loads a spec named 'acme'")],
)  # fmt: skip
def test_a_bad_registration_fails_at_start_up(
    entry_points: list[EntryPoint], entry_point: EntryPoint, message: str
) -> None:
    entry_points.append(entry_point)
    with pytest.raises(PluginError, match=message):
        build_registry()
