"""The dashboard under /ui against the real app: sign-in and out, cookie flags, CSRF, scopes,
revocation, escaping, security headers, the live Now fragment, acting on an incident."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from api_service import running_api
from opsmedic.metrics import Metrics
from opsmedic.runtime import api_app
from opsmedic.tokens import Scope
from opsmedic.ui import pages  # noqa: F401  (mounting imports every page module: all routes registered)
from opsmedic.ui.kit import HEADERS, ROUTE_SCOPES, router
from opsmedic.ui.sessions import PER_TOKEN
from ui_client import XSS, browser, csrf_of, fire, keep, sign_in


async def test_sign_in_cookie_flags_headers_and_sign_out(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        assert (await client.get("/ui/")).status_code == 303  # to the sign-in page
        reply = await sign_in(client, api.tokens["read"])
        assert reply.status_code == 303 and reply.headers["location"] == "/ui/"
        cookie = next(c for c in reply.headers.get_list("set-cookie") if "om_session=" in c)
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered and "path=/ui" in lowered
        assert "secure" not in lowered  # plain HTTP here; HTTPS sets it
        page = await client.get("/ui/")
        assert page.status_code == 200 and "Open incidents" in page.text
        for name, value in HEADERS.items():
            assert page.headers[name] == value
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        assert "<script>" not in page.text.replace('<script src="/ui/static/ui.js" defer>', "")
        missing = await client.get("/ui/nothing-here")
        assert missing.status_code == 404 and missing.headers["x-frame-options"] == "DENY"
        out = await client.post("/ui/signout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        assert (await client.get("/ui/")).status_code == 303  # the session is gone


async def test_bad_token_and_forged_forms_are_refused(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        assert (await sign_in(client, "om_wrong")).status_code == 401
        assert (await sign_in(client, api.tokens["ingest"])).status_code == 401  # no read
        # A sign-in without the form's own CSRF value (a login CSRF from another site).
        forged = await client.post("/ui/signin", data={"token": api.tokens["read"]})
        assert forged.status_code == 403
        assert (await sign_in(client, api.token(Scope.READ, Scope.OPERATE))).status_code == 303
        incident = await fire(api)
        for data in ({}, {"csrf": "x" * 43}):
            reply = await client.post(f"/ui/incidents/{incident}/ack", data=data)
            assert reply.status_code == 403 and "CSRF" in reply.text
        assert api.store.get_incident(incident)[0].acknowledged_at is None


async def test_read_cannot_act_operate_acks_and_resolves(tmp_path: Path, store_url: str) -> None:
    async with running_api(tmp_path, store=store_url) as api:
        incident = await fire(api)
        async with browser(api) as reader:
            await sign_in(reader, api.tokens["read"])
            page = await reader.get(f"/ui/incidents/{incident}")
            assert page.status_code == 200 and "Acknowledge" not in page.text
            reply = await reader.post(f"/ui/incidents/{incident}/ack",
                                      data={"csrf": csrf_of(page.text)})  # fmt: skip
            assert reply.status_code == 403 and "operate" in reply.text
        async with browser(api) as operator:
            await sign_in(operator, api.token(Scope.READ, Scope.OPERATE, name="oncall"))
            page = await operator.get(f"/ui/incidents/{incident}")
            assert "Acknowledge" in page.text and "Resolve" in page.text
            for action in ("ack", "resolve"):
                reply = await operator.post(f"/ui/incidents/{incident}/{action}",
                                            data={"csrf": csrf_of(page.text)})  # fmt: skip
                assert reply.status_code == 303  # post, redirect, get
                assert reply.headers["location"] == f"/ui/incidents/{incident}"
            found = api.store.get_incident(incident)[0]
            assert found.status.value == "resolved" and "oncall" in found.acknowledged_by
            again = await operator.post(f"/ui/incidents/{incident}/ack",
                                        data={"csrf": csrf_of(page.text)})  # fmt: skip
            assert again.status_code == 409  # the lifecycle's refusal, shown as a page
            assert (await operator.get("/ui/incidents/nope")).status_code == 404


async def test_a_revoked_tokens_session_is_refused(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        secret = api.token(Scope.READ, name="soon-revoked")
        await sign_in(client, secret)
        assert (await client.get("/ui/")).status_code == 200
        api.store.revoke_token("soon-revoked", time.time())
        assert (await client.get("/ui/")).status_code == 303
        assert (await client.get("/ui/now/fragment")).status_code == 303


async def test_labels_are_escaped_and_the_now_fragment_follows_events(
    tmp_path: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_api(tmp_path, store=store_url) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        before = (await client.get("/ui/now/fragment")).text
        incident = await fire(api, title=XSS)
        after = (await client.get("/ui/now/fragment")).text
        assert after != before and "&lt;script&gt;alert(1)&lt;/script&gt;" in after
        assert XSS not in after
        async with browser(api) as anon:
            signin = await anon.get("/ui/signin")
        pages = {"now": await client.get("/ui/"), "signin": signin,
                 "incident": await client.get(f"/ui/incidents/{incident}")}  # fmt: skip
        for name, page in pages.items():
            assert page.status_code == 200 and XSS not in page.text
            keep(tmp_path_factory, f"{name}-{store_url.split(':')[0]}", page)


async def test_every_ui_route_is_guarded_by_its_scope(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api:
        # Every route of the dashboard's router says what it needs (none added around _route).
        routes = {
            (m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods or ()
        }
        assert routes == set(ROUTE_SCOPES) and len(routes) >= 9
        incident = await fire(api)
        for (method, path), scope in sorted(ROUTE_SCOPES.items()):
            url = path.replace("{ref}", incident).replace("{name}", "ui.css")
            if scope is None:
                async with browser(api) as anon:
                    assert (await anon.request(method, url)).status_code in (200, 403), url
                continue
            others = [s for s in Scope if s not in (scope, Scope.ADMIN)]
            token = api.token(*others, name=f"no-{scope}-{method}{path}")
            async with browser(api) as client:
                signed_in = await sign_in(client, token)
                if scope is Scope.READ:  # a token that cannot read cannot sign in at all
                    assert signed_in.status_code == 401
                else:
                    page = await client.get(f"/ui/incidents/{incident}")
                    reply = await client.request(method, url, data={"csrf": csrf_of(page.text)})
                    assert reply.status_code == 403, (method, url, reply.text)
            async with browser(api) as anon:
                reply = await anon.request(method, url)
                assert reply.status_code == (303 if method == "GET" else 403), (method, url)


async def test_secure_cookie_over_https_only_and_forwarded_proto_not_believed(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path) as api:
        transport = httpx.ASGITransport(app=api_app(api.rt, Metrics()))
        for base, forwarded, secure in (("https://ops", {}, True),
                                        ("http://ops", {"X-Forwarded-Proto": "https"}, False)):  # fmt: skip
            async with httpx.AsyncClient(transport=transport, base_url=base,
                                         headers=forwarded) as client:  # fmt: skip
                reply = await sign_in(client, api.tokens["read"])
            cookie = next(c for c in reply.headers.get_list("set-cookie") if "om_session=" in c)
            assert ("; secure" in cookie.lower()) is secure, (base, cookie)


async def test_bad_requests_get_a_4xx_page(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.token(Scope.READ, Scope.OPERATE))
        page = await client.get("/ui/")
        big = await client.post("/ui/signout", data={"csrf": csrf_of(page.text), "x": "y" * 20000})
        assert big.status_code == 413 and "over" in big.text
        assert (await client.get("/ui/incidents/a%00b")).status_code == 422
        assert (await client.post("/ui/incidents/nope/ack",
                                  data={"csrf": csrf_of(page.text)})).status_code == 404  # fmt: skip
        css = await client.get("/ui/static/ui.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert (await client.get("/ui/static/..%2Fpages.py")).status_code == 404
        assert (await client.get("/ui/static/pages.py")).status_code == 404
        assert (await client.get("/ui/")).status_code == 200  # still signed in


async def test_errors_under_ui_are_pages_with_the_nav_and_the_apis_stay_json(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.token(Scope.READ, Scope.OPERATE))
        refused = await client.get("/ui/runs", params={"state": "lost"})
        assert refused.status_code == 422 and "Sign out" in refused.text  # the nav is there
        huge = b"csrf=x&token=" + b"a" * (2 * 1024 * 1024)
        form = {"content-type": "application/x-www-form-urlencoded"}
        for method, path, status in (("GET", "/ui/nothing-here", 404),
                                     ("GET", "/ui/signout", 405),
                                     ("POST", "/ui/signin", 413)):  # fmt: skip
            body = huge if status == 413 else None
            page = await client.request(method, path, content=body, headers=form)
            assert page.status_code == status, (path, page.text[:200])
            assert page.headers["content-type"].startswith("text/html"), path
            assert "Not done" in page.text and page.headers["x-frame-options"] == "DENY"
        assert "POST" in (await client.get("/ui/signout")).headers["allow"]
        async with api.client(api.tokens["admin"]) as json_api:
            for method, path, status in (("GET", "/api/v1/nothing-here", 404),
                                         ("DELETE", "/api/v1/runs", 405),
                                         ("POST", "/api/v1/rules/reload", 413)):  # fmt: skip
                body = huge if status == 413 else None
                reply = await json_api.request(method, path, content=body)
                assert reply.status_code == status, (path, reply.text[:200])
                assert (
                    reply.headers["content-type"] == "application/json" and reply.json()["detail"]
                )


async def test_signing_in_again_ends_the_old_session_and_a_token_holds_at_most_20(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path) as api, browser(api) as first:
        await sign_in(first, api.tokens["read"])
        old = first.cookies["om_session"]
        await sign_in(first, api.tokens["read"])  # over the session it has
        assert first.cookies["om_session"] != old
        async with browser(api) as stale:
            stale.cookies.set("om_session", old)
            assert (await stale.get("/ui/")).status_code == 303  # the old one is closed
        assert (await first.get("/ui/")).status_code == 200
        others = [browser(api) for _ in range(PER_TOKEN)]
        for other in others:  # 20 more sign-ins of the same token: the oldest (first's) goes
            await sign_in(other, api.tokens["read"])
        assert (await first.get("/ui/")).status_code == 303
        assert [(await o.get("/ui/")).status_code for o in others] == [200] * PER_TOKEN
        async with browser(api) as admin:  # another token's session is not touched
            await sign_in(admin, api.tokens["admin"])
            await sign_in(others[0], api.tokens["read"])
            assert (await admin.get("/ui/")).status_code == 200
        for other in others:
            await other.aclose()
