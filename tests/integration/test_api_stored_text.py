"""Text a request stores is text every backend can hold and every reader can serve: control
characters in names are a 422 naming the field, a value the database refuses is a 422 (never
"store unavailable"), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest

from api_service import running_api
from cli_process import opsmedic
from store_fixtures import refuse_value

CONTROLS = [
    "a\x00b",
    "line\nbreak",
    "tab\there",
    "\x1b[31mred",
    "del\x7f",
    "c1\x85",
    "cr\r",
    "rlo\u202eevil",
    "isolate\u2066",
]  # bidi: reorder what follows on screen


HIDING = "(control character|bidi control) "


@pytest.mark.parametrize("text", CONTROLS, ids=repr)
async def test_a_name_with_a_control_character_is_a_422_naming_its_field(
    tmp_path: Path, store_url: str, text: str
) -> None:
    """A token's name, and an event's identifiers (source, host, severity, fingerprint)."""
    async with running_api(tmp_path, store=store_url) as api:
        admin, sender = api.client(api.tokens["admin"]), api.client(api.tokens["ingest"])
        reply = await admin.post("/api/v1/tokens", json={"name": text, "scopes": ["read"]})
        assert reply.status_code == 422, reply.text
        assert "name" in reply.json()["detail"] and re.search(HIDING, reply.text)
        assert text not in {t["name"] for t in (await admin.get("/api/v1/tokens")).json()}
        fine = await admin.post("/api/v1/tokens", json={"name": "fine", "scopes": ["read"]})
        assert fine.status_code == 201, fine.text
        for field in ("source", "host", "severity", "fingerprint"):
            reply = await sender.post("/api/v1/events", json={"source": "app", field: text})
            assert reply.status_code == 422, reply.text
            assert re.match(f"body: {field}: Value error, {HIDING}", reply.json()["detail"])
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


def old_logs(logs: Path, *names: bytes) -> Path:
    """`logs` with a file of each name (bytes: not necessarily UTF-8), old enough to archive."""
    logs.mkdir()
    for name in names:
        path = os.path.join(os.fsencode(logs), name)
        with open(path, "wb") as f:
            f.write(b"a line\n")
        os.utime(path, (1e9, 1e9))
    return logs


async def test_a_run_that_skipped_a_file_named_in_latin1_is_served_to_every_reader(
    tmp_path: Path, store_url: str
) -> None:
    """archive_logs (zip) skips `bad\\xff.log` and says so in its details: the name is stored
    as valid UTF-8 (`bad\\\\xff.log`), so the API and `opsmedic runs --json` serve the run."""
    logs = old_logs(tmp_path / "logs", b"app.log.1", b"bad\xff.log")
    step = {"archive_logs": {"dir": str(logs), "include": ["*.log*"], "format": "zip",
                             "to": str(tmp_path / "dest")}}  # fmt: skip
    rules = [{"name": "archive", "when": {"source": "disk"}, "do": [step]}]
    async with running_api(tmp_path, rules, store=store_url) as api:
        reader = api.client(api.tokens["read"])
        async with api.client(api.tokens["ingest"]) as sender:
            sent = await sender.post("/api/v1/events", json={"source": "disk"})
        (run_id,) = sent.json()["events"][0]["run_ids"]
        await api.rt.engine.drain()
        listed = await reader.get("/api/v1/runs")
        assert listed.status_code == 200, listed.text
        shown = await reader.get(f"/api/v1/runs/{run_id}")
        assert shown.status_code == 200, shown.text
        (skipped,) = shown.json()["steps"][0]["details"]["files_skipped"]
        assert skipped["path"] == str(logs / "bad\\xff.log")
        assert shown.json()["state"] == "succeeded"
        assert listed.json()[0]["steps"] == shown.json()["steps"]
        printed = opsmedic("runs", "--json", "-c", str(tmp_path / "opsmedic.yaml"), cwd=tmp_path)
        assert printed.returncode == 0, printed.stderr
        assert "\\udcff" not in printed.stdout
        (run,) = orjson.loads(printed.stdout)  # strict: no lone surrogates
        assert run["steps"] == shown.json()["steps"]
        await reader.aclose()
