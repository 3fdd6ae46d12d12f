"""The dashboard's Flags pages against the real app, its store and a real Redis: the list
(the invalid rows apart), a flag and its history, switching and rolling out with the page's
version (a concurrent change is a 409 page), scopes, CSRF, bad input and escaping."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmedic.tokens import Scope

if __package__:
    from ..api_service import Api, running_api
    from ..services_redis import RedisServer
    from ..store_fixtures import overwrite_flag
    from ..ui_client import XSS, browser, csrf_of, keep, sign_in
    from .test_flagops_api import redis_docs
else:
    from test_flagops_api import redis_docs

    from api_service import Api, running_api
    from services_redis import RedisServer
    from store_fixtures import overwrite_flag
    from ui_client import XSS, browser, csrf_of, keep, sign_in

FLAGS = {
    "new_checkout": {"description": f"the one-page checkout {XSS}", "default": "on"},
    "theme": {"type": "string", "variants": {"classic": "#222", "bright": XSS},
              "default": "classic"},
}  # fmt: skip


def _config(server: RedisServer) -> dict[str, Any]:
    return {"flags": FLAGS, "flag_store": {"redis": {"url": server.url, "check_every": "1h"}}}


def _form(page: str, action: str, **fields: str) -> dict[str, str]:
    """The fields of the page's form posting to `action`, its box ticked, with `fields`."""
    found = re.search(rf'action="{re.escape(action)}">(.*?)</form>', page, re.DOTALL)
    assert found, page
    values = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', found.group(1)))
    return values | {"confirm": "yes"} | fields


@asynccontextmanager
async def _operator(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with browser(api) as client:
        await sign_in(client, api.token(Scope.READ, Scope.OPERATE, name="oncall"))
        yield client


async def test_switch_and_roll_out_reach_the_store_and_redis(
    tmp_path: Path, store_url: str, redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    async with running_api(tmp_path, store=store_url, **_config(redis_server)) as api:
        assert api.rt.flags is not None
        await api.rt.flags.check()  # the start's sync to Redis, done now
        async with _operator(api) as client:
            page = await client.get("/ui/flags/new_checkout")
            assert page.status_code == 200 and "version 1" in page.text
            off = await client.post("/ui/flags/new_checkout/enabled",
                                    data=_form(page.text, "/ui/flags/new_checkout/enabled"))  # fmt: skip
            assert off.status_code == 303 and off.headers["location"] == "/ui/flags/new_checkout"
            record = api.store.flags.get("new_checkout")
            assert (record.version, record.flag.enabled) == (2, False)
            assert str(record.updated_by) == "api oncall (dashboard)"
            assert redis_docs(redis_server)["new_checkout"]["enabled"] is False
            now = await client.get("/ui/flags/new_checkout")
            rollout = _form(now.text, "/ui/flags/new_checkout/rollout", percentage="25")
            assert (
                await client.post("/ui/flags/new_checkout/rollout", data=rollout)
            ).status_code == 303
            assert redis_docs(redis_server)["new_checkout"]["rollout"]["percentage"] == 25
            # The first page again: its version is 1, the flag's 3. Refused, nothing lost.
            stale = await client.post("/ui/flags/new_checkout/enabled",
                                      data=_form(page.text, "/ui/flags/new_checkout/enabled"))  # fmt: skip
            assert stale.status_code == 409 and "expected version 1" in stale.text
            assert api.store.flags.get("new_checkout").version == 3
            assert redis_docs(redis_server)["new_checkout"]["enabled"] is False
            shown = await client.get("/ui/flags/new_checkout")
            assert "api oncall (dashboard)" in shown.text and "v3" in shown.text
            assert "<code>enabled</code> true → false" in shown.text
            fragment = await client.get("/ui/now/fragment")  # changed in the last hour: linked
            assert (
                'href="/ui/flags/new_checkout"><strong>new_checkout</strong></a> v3'
                in fragment.text
            )
            listed = await client.get("/ui/flags", params={"enabled": "off"})
            assert "new_checkout" in listed.text and "/ui/flags/theme" not in listed.text
            backend = store_url.split(":")[0]
            keep(tmp_path_factory, f"flags-{backend}", await client.get("/ui/flags"))
            keep(tmp_path_factory, f"flag-{backend}", shown)


async def test_read_cannot_change_csrf_bad_input_and_refusals(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with running_api(tmp_path, **_config(redis_server)) as api:
        async with browser(api) as reader:
            await sign_in(reader, api.tokens["read"])
            page = await reader.get("/ui/flags/new_checkout")
            assert page.status_code == 200 and "Switch" not in page.text
            for action in ("enabled", "rollout"):
                reply = await reader.post(f"/ui/flags/new_checkout/{action}",
                                          data={"csrf": csrf_of(page.text), "confirm": "yes",
                                                "expected_version": "1", "enabled": "off",
                                                "percentage": "5"})  # fmt: skip
                assert reply.status_code == 403 and "operate" in reply.text
        async with _operator(api) as client:
            page = (await client.get("/ui/flags/new_checkout")).text
            enabled = "/ui/flags/new_checkout/enabled"
            forged = await client.post(enabled, data=_form(page, enabled, csrf="x" * 43))
            assert forged.status_code == 403 and "CSRF" in forged.text
            rollout = "/ui/flags/new_checkout/rollout"
            bad = [
                (enabled, _form(page, enabled, confirm=""), 422, "confirm:"),
                (enabled, _form(page, enabled, expected_version="x"), 422, "expected_version:"),
                (enabled, _form(page, enabled, expected_version="²"), 422, "expected_version:"),
                (enabled, _form(page, enabled, expected_version="0"), 422, "expected_version:"),
                (enabled, _form(page, enabled, enabled="maybe"), 422, "enabled:"),
                (rollout, _form(page, rollout, percentage="101"), 422, "percentage:"),
                (rollout, _form(page, rollout, percentage="-1"), 422, "percentage:"),
                ("/ui/flags/-bad/enabled", _form(page, enabled), 422, "key:"),
                ("/ui/flags/new_checkout%0A/enabled", _form(page, enabled), 422, "key:"),
                ("/ui/flags/nope/enabled", _form(page, enabled), 404, "nope"),
            ]
            for url, data, status, says in bad:
                reply = await client.post(url, data=data)
                assert reply.status_code == status and says in reply.text, (url, data)
            assert api.store.flags.get("new_checkout").version == 1
            # The service's own refusal: a string flag's rollout must name its variant.
            theme = (await client.get("/ui/flags/theme")).text
            refused = await client.post("/ui/flags/theme/rollout",
                                        data=_form(theme, "/ui/flags/theme/rollout",
                                                   percentage="10"))  # fmt: skip
            assert refused.status_code == 422 and "variant" in refused.text
            for url, status, says in (("/ui/flags/nope", 404, "nope"),
                                      ("/ui/flags/-bad", 422, "key:"),
                                      ("/ui/flags/new_checkout%0A", 422, "key:"),
                                      ("/ui/flags?enabled=maybe", 422, "enabled:"),
                                      (f"/ui/flags?q={'x' * 101}", 422, "q:")):  # fmt: skip
                reply = await client.get(url)
                assert reply.status_code == status and says in reply.text, url


async def test_labels_are_escaped_and_invalid_rows_listed_apart(
    tmp_path: Path, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_api(tmp_path, **_config(redis_server)) as api:
        overwrite_flag(f"sqlite:///{tmp_path / 'opsmedic.db'}", "theme", '{"variants": 7}')
        async with _operator(api) as client:
            listed = await client.get("/ui/flags", params={"q": XSS})
            assert listed.status_code == 200 and "No flags match" in listed.text
            assert XSS not in listed.text and "&lt;script&gt;" in listed.text
            listed = await client.get("/ui/flags")
            assert XSS not in listed.text and "the one-page checkout &lt;script&gt;" in listed.text
            problems = listed.text[listed.text.index("Not valid flags") :]
            assert "theme" in problems and "/ui/flags/theme" not in listed.text
            flag = await client.get("/ui/flags/new_checkout")
            assert XSS not in flag.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in flag.text
            keep(tmp_path_factory, "flags-invalid-row", listed)
