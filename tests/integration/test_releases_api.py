"""Deployments through the API and through a rule's `deploy` and `rollback` actions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml

from opsmedic.views import DeploymentView

if __package__:
    from ..api_service import Api, running_api
    from ..release_site import Site, site, site_config
else:
    from api_service import Api, running_api
    from release_site import Site, site, site_config  # noqa: F401 (site: a fixture)


def _services(site: Site) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(site_config(site))["services"]
    return services


async def _settled(api: Api, deployment_id: str) -> dict[str, Any]:
    async with api.client(api.tokens["read"]) as client:
        for _ in range(300):  # bounded: bake 1s, a few checks
            found = (await client.get("/api/v1/deployments")).json()
            mine = next(d for d in found if d["id"] == deployment_id)
            if mine["state"] not in ("started", "verifying"):
                return mine
            await asyncio.sleep(0.05)
    raise AssertionError(f"deployment {deployment_id} did not finish")


async def test_deploy_list_and_roll_back_through_the_api(site: Site) -> None:
    async with running_api(site.root, services=_services(site)) as api:
        async with api.client(api.tokens["operate"]) as client:
            started = await client.post("/api/v1/deployments",
                                        json={"service": "shortener", "version": "v1"})  # fmt: skip
            assert started.status_code == 202, started.text
            body = started.json()
            assert body["state"] == "started"
            assert body["requested_by"].startswith("api test-operate")
            assert list(body) == list(DeploymentView.model_fields)
            assert (await _settled(api, body["id"]))["state"] == "promoted"
            two = await client.post("/api/v1/deployments",
                                    json={"service": "shortener", "version": "v3"})  # fmt: skip
            assert (await _settled(api, two.json()["id"]))["rolled_back_to"] == "v1"
            again = await client.post("/api/v1/deployments/rollback",
                                      json={"service": "shortener"})  # fmt: skip
            assert again.status_code == 200
            assert again.json()["id"] == two.json()["id"]  # idempotent: already there
        async with api.client(api.tokens["read"]) as client:
            listed = await client.get("/api/v1/deployments", params={"service": "shortener"})
            assert [d["version"] for d in listed.json()] == ["v3", "v1"]
            refused = await client.post("/api/v1/deployments/rollback",
                                        json={"service": "shortener"})  # fmt: skip
            assert refused.status_code == 403
    assert site.version() == "v1"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"service": "nope", "version": "v1"}, 404, "unknown service 'nope'"),
        ({"service": "shortener", "version": "v9"}, 404, "unknown version 'v9'"),
        ({"service": "shortener", "version": "v1", "env": "staging"}, 404, "environment"),
        ({"service": "shortener"}, 422, "version"),
        ({"service": "shortener", "version": "../v1"}, 422, "version"),
        ({"service": "shortener", "version": "v1", "forse": True}, 422, "forse"),
        # A string is no boolean: "yes" must not skip the gates.
        ({"service": "shortener", "version": "v1", "force": "yes"}, 422, "force"),
        ([1, 2], 422, ""),
    ],
)
async def test_bad_deployment_requests_get_a_4xx_naming_it(
    site: Site, body: Any, status: int, says: str
) -> None:
    async with running_api(site.root, services=_services(site)) as api:
        async with api.client(api.tokens["operate"]) as client:
            reply = await client.post("/api/v1/deployments", json=body)
            assert reply.status_code == status, reply.text
            assert says in reply.text
            back = await client.post("/api/v1/deployments/rollback", json={"service": "shortener"})
            assert back.status_code == 404
            assert "no deployment in production" in back.text
        assert api.store.list_deployments() == []


async def test_an_alert_after_a_release_rolls_it_back_through_the_rollback_action(
    site: Site,
) -> None:
    rules = [
        {
            "name": "undo-release",
            "when": {"kind": "shortener_errors"},
            "do": [{"rollback": {"service": "shortener", "reason": "error rate alert"}}],
        }
    ]
    async with running_api(site.root, rules, services=_services(site)) as api:
        assert api.rt.releases is not None
        first = await api.rt.releases.deploy("shortener", "v1")
        # Without checks v2 is promoted after its bake: here, as in the seed, it is the
        # alert that fires after the release that undoes it.
        api.rt.releases.services["shortener"].verify.clear()
        second = await api.rt.releases.deploy("shortener", "v2")
        assert (first.state, second.state) == ("promoted", "promoted")
        async with api.client(api.tokens["ingest"]) as client:
            sent = await client.post("/api/v1/events", json={"source": "prometheus",
                                                             "kind": "shortener_errors"})  # fmt: skip
            assert sent.status_code in (200, 202)
        await api.rt.engine.drain()
        runs = api.store.list_runs(rule="undo-release")
        assert [r.state for r in runs] == ["succeeded"], runs[0].message
        rolled = api.store.get_deployment(second.id)
        assert rolled.state == "rolled_back" and rolled.rolled_back_to == "v1"
        assert "error rate alert" in rolled.reason
    assert site.version() == "v1"
