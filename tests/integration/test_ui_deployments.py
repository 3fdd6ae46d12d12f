"""The dashboard's Deployments pages against the real app and real deployments: the list and
its filters, a canary's weights and judge through a real nginx, the emergency rollback end
to end (and refused), scopes, CSRF, bad input and escaping."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmedic.model import DeploymentState
from opsmedic.tokens import Scope
from opsmedic.ui import deployments

if __package__:
    from ..api_service import Api, running_api
    from ..release_site import Site, site, site_services
    from ..services_nginx import UPSTREAM, CanaryRig
    from ..ui_client import XSS, browser, csrf_of, keep, sign_in
    from .test_releases_canary import Shop, _site
else:
    from test_releases_canary import Shop, _site

    from api_service import Api, running_api
    from release_site import Site, site, site_services  # noqa: F401 (site: a fixture)
    from services_nginx import UPSTREAM, CanaryRig
    from ui_client import XSS, browser, csrf_of, keep, sign_in


async def _promoted_twice(api: Api, service: str) -> tuple[str, str]:
    """v1 then v2 deployed and promoted (v2 without checks: nothing to fail); their ids."""
    assert api.rt.releases is not None
    first = await api.rt.releases.deploy(service, "v1")
    api.rt.releases.services[service].verify.clear()
    second = await api.rt.releases.deploy(service, "v2")
    assert (first.state, second.state) == ("promoted", "promoted"), second.reason
    return first.id, second.id


def _rollback_form(page: str, **fields: str) -> dict[str, str]:
    found = re.search(r'name="to" value="([^"]+)"', page)
    assert found, page
    return {"csrf": csrf_of(page), "to": found.group(1), "confirm": "yes"} | fields


async def test_list_filter_and_roll_back_from_the_page(
    site: Site, store_url: str, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    async with running_api(site.root, store=store_url, services=site_services(site)) as api:
        first, second = await _promoted_twice(api, "shortener")
        async with browser(api) as client:
            await sign_in(client, api.token(Scope.READ, Scope.OPERATE, name="oncall"))
            listed = await client.get("/ui/deployments", params={"service": "shortener"})
            assert listed.status_code == 200
            assert listed.text.index(second) < listed.text.index(first)  # newest first
            assert "promoted" in listed.text and "v1 → <strong>v2</strong>" in listed.text
            monkeypatch.setattr(deployments, "SHOWN", 1)
            cut = await client.get("/ui/deployments")
            assert "the first 1 of 2 shown" in cut.text and first not in cut.text
            monkeypatch.undo()
            none = await client.get("/ui/deployments", params={"env": "staging"})
            assert none.status_code == 200 and second not in none.text
            page = await client.get(f"/ui/deployments/{second}")
            assert page.status_code == 200
            # The confirmation names the service, the env and the version it goes back to.
            assert re.search(r"Roll <strong>shortener</strong> in <strong>production</strong> "
                             r"back to <strong>v1</strong>", page.text)  # fmt: skip
            unconfirmed = await client.post(f"/ui/deployments/{second}/rollback",
                                            data=_rollback_form(page.text, confirm=""))  # fmt: skip
            assert unconfirmed.status_code == 422 and "confirm" in unconfirmed.text
            assert api.store.get_deployment(second).state is DeploymentState.PROMOTED
            done = await client.post(f"/ui/deployments/{second}/rollback",
                                     data=_rollback_form(page.text, reason="pager says 500s"))  # fmt: skip
            assert done.status_code == 303
            assert done.headers["location"] == f"/ui/deployments/{second}"
            rolled = api.store.get_deployment(second)
            assert rolled.state is DeploymentState.ROLLED_BACK and rolled.rolled_back_to == "v1"
            assert "pager says 500s" in rolled.reason and "oncall (dashboard)" in rolled.reason
            assert site.version() == "v1"
            after = await client.get(done.headers["location"])
            assert "Already rolled back to v1" in after.text and 'name="to"' not in after.text
            keep(tmp_path_factory, f"deployments-{store_url.split(':')[0]}", listed)
            keep(tmp_path_factory, f"deployment-{store_url.split(':')[0]}", after)


async def test_a_deployment_in_flight_is_on_now_and_rolled_back_from_its_page(site: Site) -> None:
    async with running_api(site.root, services=site_services(site)) as api:
        assert api.rt.releases is not None
        assert (await api.rt.releases.deploy("shortener", "v1")).state == "promoted"
        service = api.rt.releases.services["shortener"]
        service.verify.clear()  # v2 (answering 500) bakes on with nothing to fail it
        service.bake = 30.0
        flying = await api.rt.releases.start("shortener", "v2")
        async with browser(api) as client:
            await sign_in(client, api.token(Scope.READ, Scope.OPERATE))
            for _ in range(200):  # bounded: the switch takes a moment
                if api.store.get_deployment(flying.id).state is DeploymentState.VERIFYING:
                    break
                await asyncio.sleep(0.05)
            fragment = await client.get("/ui/now/fragment")
            assert (
                f'href="/ui/deployments/{flying.id}"><strong>shortener</strong>/production</a>'
                in fragment.text
            )
            page = await client.get(f"/ui/deployments/{flying.id}")
            assert "verifying" in page.text and "back to <strong>v1</strong>" in page.text
            done = await client.post(f"/ui/deployments/{flying.id}/rollback",
                                     data=_rollback_form(page.text))  # fmt: skip
            assert done.status_code == 303
        rolled = api.store.get_deployment(flying.id)
        assert rolled.state is DeploymentState.ROLLED_BACK and rolled.rolled_back_to == "v1"
        assert site.version() == "v1"


async def test_a_refused_rollback_is_a_page_with_its_status(site: Site) -> None:
    async with running_api(site.root, services=site_services(site)) as api:
        _, second = await _promoted_twice(api, "shortener")
        async with browser(api) as client:
            await sign_in(client, api.token(Scope.READ, Scope.OPERATE))
            page = await client.get(f"/ui/deployments/{second}")
            # A version other than the one the page offers (a forged form): refused before
            # the controller is asked, nothing switched.
            for to in ("v3", "v9"):
                reply = await client.post(f"/ui/deployments/{second}/rollback",
                                          data=_rollback_form(page.text, to=to))  # fmt: skip
                assert reply.status_code == 409, reply.text
                assert f"the rollback target is v1, not {to}: reload" in reply.text
            assert api.store.get_deployment(second).state is DeploymentState.PROMOTED
            # The page left open while v1 went out again: its form no longer rolls back.
            assert api.rt.releases is not None
            third = await api.rt.releases.deploy("shortener", "v1")
            assert third.state == "promoted", third.reason
            stale = await client.post(f"/ui/deployments/{second}/rollback",
                                      data=_rollback_form(page.text))  # fmt: skip
            assert stale.status_code == 409 and f"deployment {third.id} (v1) is newer" in stale.text
            assert api.store.get_deployment(third.id).state is DeploymentState.PROMOTED
            assert site.version() == "v1"
            # Rolled back elsewhere (the CLI) meanwhile: the target the page offered is gone.
            page = await client.get(f"/ui/deployments/{third.id}")
            await api.rt.releases.rollback("shortener", "production", to="v2",
                                           reason="cli", requested_by="cli")  # fmt: skip
            gone = await client.post(f"/ui/deployments/{third.id}/rollback",
                                     data=_rollback_form(page.text))  # fmt: skip
            assert gone.status_code == 409 and "target is none" in gone.text, gone.text


async def test_read_cannot_roll_back_csrf_and_bad_input(site: Site) -> None:
    async with running_api(site.root, services=site_services(site)) as api:
        _, second = await _promoted_twice(api, "shortener")
        async with browser(api) as reader:
            await sign_in(reader, api.tokens["read"])
            page = await reader.get(f"/ui/deployments/{second}")
            assert page.status_code == 200 and "Roll back" not in page.text
            reply = await reader.post(f"/ui/deployments/{second}/rollback",
                                      data={"csrf": csrf_of(page.text), "to": "v1",
                                            "confirm": "yes"})  # fmt: skip
            assert reply.status_code == 403 and "operate" in reply.text
        async with browser(api) as operator:
            await sign_in(operator, api.tokens["admin"])
            page = await operator.get(f"/ui/deployments/{second}")
            for data in ({"to": "v1", "confirm": "yes"}, _rollback_form(page.text, csrf="x")):
                forged = await operator.post(f"/ui/deployments/{second}/rollback", data=data)
                assert forged.status_code == 403 and "CSRF" in forged.text
            bad: list[tuple[str, dict[str, str], int, str]] = [
                (second, _rollback_form(page.text, to="../v1"), 422, "to:"),
                (second, _rollback_form(page.text, to=""), 422, "to:"),
                (second, _rollback_form(page.text, to="v1\n"), 422, "to:"),
                (second, _rollback_form(page.text, reason="x" * 1001), 422, "reason:"),
                ("nope", _rollback_form(page.text), 404, "nope"),
            ]
            for ref, data, status, says in bad:
                reply = await operator.post(f"/ui/deployments/{ref}/rollback", data=data)
                assert reply.status_code == status and says in reply.text, (data, reply.text)
            assert api.store.get_deployment(second).state is DeploymentState.PROMOTED
            for url, status, says in (("/ui/deployments/nope", 404, "nope"),
                                      ("/ui/deployments/a%00b", 422, "NUL"),
                                      (f"/ui/deployments?service={XSS}", 422, "service:"),
                                      ("/ui/deployments?env=a/b", 422, "env:"),
                                      ("/ui/deployments?service=shortener%0A", 422, "service:")):  # fmt: skip
                reply = await operator.get(url)
                assert reply.status_code == status and says in reply.text, url
                assert XSS not in reply.text
            assert "&lt;script&gt;" in (await operator.get(f"/ui/deployments?service={XSS}")).text


def _canary_services(rig: CanaryRig, root: Path) -> dict[str, Any]:
    """The canary tests' service `shop` (1 s steps, 20 requests a side at least)."""
    config: dict[str, Any] = yaml.safe_load(_site(rig, root, interval="1s").read_text())
    return dict(config["services"])


async def test_a_canary_shows_its_weights_and_the_judges_scores(
    canary_rig: CanaryRig, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_api(tmp_path, services=_canary_services(canary_rig, tmp_path)) as api:
        assert api.rt.releases is not None
        first = await api.rt.releases.deploy("shop", "v1")  # nothing serving: no canary
        assert first.state is DeploymentState.PROMOTED, first.reason
        canary, _ = await Shop(canary_rig, api.rt).deploy_under_load("v2")
        assert canary.state is DeploymentState.PROMOTED, canary.reason
        steps = deployments.canary_steps(api.store.get_deployment(canary.id))
        assert [s["canary_percent"] for s in steps] == [33]
        async with browser(api) as client:
            await sign_in(client, api.token(Scope.READ, Scope.OPERATE))
            page = await client.get(f"/ui/deployments/{canary.id}")
            assert page.status_code == 200
            judged = steps[0]["judgement"]
            assert f"score {judged['score']:.1f}" in page.text and judged["verdict"] == "pass"
            assert "error_ratio" in page.text and "latency" in page.text
            assert "pass at ≥ 95, marginal at ≥ 75" in page.text
            svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
            # Inline under the page's CSP: no script, no <style> element, no style attribute.
            assert "<script" not in svg and "<style" not in svg and "style=" not in svg
            assert "step 1 (33 %)" in svg and "canary v2" in svg and "stable v1" in svg
            keep(tmp_path_factory, "deployment-canary", page)
            # The emergency rollback goes back through the router: 100 % to v1's backend.
            back = await client.post(f"/ui/deployments/{canary.id}/rollback",
                                     data=_rollback_form(page.text))  # fmt: skip
            assert back.status_code == 303
        assert api.store.get_deployment(canary.id).rolled_back_to == "v1"
        assert await canary_rig.router.weights(UPSTREAM) == {canary_rig.stable.address: 1}
