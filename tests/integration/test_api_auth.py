"""Every route refuses no token, a wrong token, and a token without its scope."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from api_service import running_api
from opsmedic.api.app import PUBLIC_PATHS
from opsmedic.metrics import Metrics
from opsmedic.runtime import api_app
from opsmedic.tokens import Scope

SCOPE_OF_TAG = {"ingest": Scope.INGEST, "read": Scope.READ, "operate": Scope.OPERATE,
                "admin": Scope.ADMIN, "health": Scope.READ}  # fmt: skip


async def test_every_route_refuses_missing_wrong_and_unscoped_tokens(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        # Every route in the OpenAPI document: no route of ours is left out of it (the docs
        # pages themselves are, and are public).
        spec = api_app(api.rt, Metrics()).app.openapi()
        routes = [
            (method.upper(), path.replace("{ref}", "x").replace("{name}", "x"), op["tags"][0])
            for path, methods in spec["paths"].items()
            for method, op in methods.items()
        ]
        assert len(routes) >= 18, routes  # events, 6 webhooks, reads, operate, admin, health
        assert ("POST", "/api/v1/rules/x/runs", "operate") in routes  # a run by hand
        assert ("GET", "/api/v1/slos", "read") in routes
        checked = 0
        for method, path, tag in routes:
            if path in PUBLIC_PATHS:
                continue
            needed = SCOPE_OF_TAG[tag]
            others = [s for s in Scope if s not in (needed, Scope.ADMIN)]
            unscoped = api.token(*others, name=f"without-{needed}-{checked}")
            for token, expected in ((None, 401), ("om_wrong", 401), (unscoped, 403)):
                async with api.client(token) as client:
                    reply = await client.request(method, path, json={})
                assert reply.status_code == expected, (method, path, token, reply.text)
                assert reply.json()["detail"]
            checked += 1
        assert checked == len([r for r in routes if r[1] not in PUBLIC_PATHS])


async def test_admin_implies_every_scope_and_revocation_is_immediate(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        async with api.client(api.tokens["admin"]) as admin:
            made = await admin.post("/api/v1/tokens", json={"name": "am", "scopes": ["ingest"]})
            assert made.status_code == 201
            secret = made.json()["token"]
            assert secret.startswith("om_")
            listed = (await admin.get("/api/v1/tokens")).json()
            assert "am" in {t["name"] for t in listed}
            assert secret not in json.dumps(listed)  # never the secret, only its hash is kept
            assert (await admin.get("/api/v1/events")).status_code == 200
            dup = await admin.post("/api/v1/tokens", json={"name": "am", "scopes": ["read"]})
            assert dup.status_code == 409
            async with api.client(secret) as sender:
                assert (
                    await sender.post("/api/v1/events", json={"source": "a"})
                ).status_code == 202
                assert (await admin.delete("/api/v1/tokens/am")).status_code == 200
                assert (
                    await sender.post("/api/v1/events", json={"source": "a"})
                ).status_code == 401
            bad = await admin.post("/api/v1/tokens", json={"name": "x", "scopes": ["root"]})
            assert bad.status_code == 422 and "scopes" in bad.json()["detail"]
        assert hashlib.sha256(secret.encode()).hexdigest() not in secret


async def test_query_token_only_when_the_config_allows_it(tmp_path: Path) -> None:
    async with running_api(tmp_path / "off") as api, api.client() as anon:
        token = api.tokens["ingest"]
        reply = await anon.post("/api/v1/events", params={"token": token}, json={"source": "a"})
        assert reply.status_code == 401
    async with (
        running_api(tmp_path / "on", api={"allow_query_token": True}) as api,
        api.client() as anon,
    ):
        token = api.tokens["ingest"]
        reply = await anon.post("/api/v1/events", params={"token": token}, json={"source": "a"})
        assert reply.status_code == 202
        # A malformed Authorization header is refused, not silently ignored.
        reply = await anon.post("/api/v1/events", params={"token": token},
                                    headers={"Authorization": "Basic eDp5"}, json={"source": "a"})  # fmt: skip
        assert reply.status_code == 401


PD_BODY = {"event": {"id": "01", "event_type": "incident.triggered", "resource_type": "incident",
                     "occurred_at": "2026-11-22T02:01:16Z",
                     "data": {"id": "PABC123", "status": "triggered", "title": "checkout 5xx",
                              "service": {"id": "PSVC", "summary": "checkout"}}}}  # fmt: skip


async def test_pagerduty_signature_is_verified_when_a_secret_is_configured(tmp_path: Path) -> None:
    secret_file = tmp_path / "pd.secret"
    secret_file.write_text("whsec-test")
    async with running_api(tmp_path, webhooks={"pagerduty_signing_secrets": [{"file": str(secret_file)}]}) as api, \
            api.client(api.tokens["ingest"]) as client:  # fmt: skip
        raw = json.dumps(PD_BODY).encode()
        good = "v1=" + hmac.new(b"whsec-test", raw, hashlib.sha256).hexdigest()
        bad = "v1=" + hmac.new(b"other", raw, hashlib.sha256).hexdigest()
        for header, expected in ((None, 401), (bad, 401), (f"{bad},{good}", 202), (good, 202)):
            headers = {"Content-Type": "application/json"}
            if header:
                headers["X-PagerDuty-Signature"] = header
            reply = await client.post("/api/v1/webhooks/pagerduty", content=raw, headers=headers)
            assert reply.status_code == expected, (header, reply.text)
        tampered = raw.replace(b"checkout", b"checkin")
        reply = await client.post("/api/v1/webhooks/pagerduty", content=tampered,
                                  headers={"X-PagerDuty-Signature": good})  # fmt: skip
        assert reply.status_code == 401
        assert api.store.counts()["events"] == 2
