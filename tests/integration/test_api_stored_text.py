"""Text a request stores is text every backend can hold and every reader can serve: control
characters in names are a 422 naming the field, a value the database refuses is a 422 (never
"store unavailable"), on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from api_service import running_api
from store_fixtures import refuse_value

CONTROLS = ["a\x00b", "line\nbreak", "tab\there", "\x1b[31mred", "del\x7f", "c1\x85", "cr\r"]


@pytest.mark.parametrize("text", CONTROLS, ids=repr)
async def test_a_name_with_a_control_character_is_a_422_naming_its_field(
    tmp_path: Path, store_url: str, text: str
) -> None:
    """A token's name, and an event's identifiers (source, host, severity, fingerprint)."""
    async with running_api(tmp_path, store=store_url) as api:
        admin, sender = api.client(api.tokens["admin"]), api.client(api.tokens["ingest"])
        reply = await admin.post("/api/v1/tokens", json={"name": text, "scopes": ["read"]})
        assert reply.status_code == 422, reply.text
        assert "name" in reply.json()["detail"] and "control character" in reply.text
        assert text not in {t["name"] for t in (await admin.get("/api/v1/tokens")).json()}
        fine = await admin.post("/api/v1/tokens", json={"name": "fine", "scopes": ["read"]})
        assert fine.status_code == 201, fine.text
        for field in ("source", "host", "severity", "fingerprint"):
            reply = await sender.post("/api/v1/events", json={"source": "app", field: text})
            assert reply.status_code == 422, reply.text
            assert reply.json()["detail"].startswith(f"body: {field}: Value error, control char")
        await admin.aclose()
        await sender.aclose()


async def test_data_the_database_refuses_on_any_route_is_a_422_not_unavailable(
    tmp_path: Path, store_url: str
) -> None:
    async with running_api(tmp_path, store=store_url) as api:
        refuse_value(store_url, "tokens", "name", "refused")
        async with api.client(api.tokens["admin"]) as admin:
            body = {"name": "refused", "scopes": ["read"]}
            reply = await admin.post("/api/v1/tokens", json=body)
            assert reply.status_code == 422, reply.text
            assert "refused this request's data" in reply.json()["detail"]
            fine = await admin.post("/api/v1/tokens", json={"name": "fine", "scopes": ["read"]})
            assert fine.status_code == 201, fine.text
