"""The dashboard's Silences page against the real app: a silence made from an incident's labels
holds the next matching event in the real engine, expired with a confirmation step; bad input,
scopes, CSRF and escaping."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_ui import XSS, browser, csrf_of, fire, sign_in

from api_service import Api, running_api
from opsmedic.config.matchers import new_silence
from opsmedic.model import Event
from opsmedic.tokens import Scope
from opsmedic.ui import silences
from opsmedic.ui.silences import prefill

RULES = [{"name": "page-db", "when": {"kind": "DiskFull"}, "do": ["noop"]}]
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


async def ingest(api: Api, labels: dict[str, str]) -> dict[str, Any]:
    body = {"source": "alertmanager", "kind": "DiskFull", "resource": "db1", "status": "firing",
            "fingerprint": "a", "time": time.time(), "labels": labels}  # fmt: skip
    async with api.client(api.tokens["ingest"]) as client:
        reply = await client.post("/api/v1/events", json=body)
    assert reply.status_code == 202, reply.text
    await api.rt.engine.drain()
    event: dict[str, Any] = reply.json()["events"][0]
    return event


def textarea(page: str) -> str:
    found = re.search(r'<textarea id="matchers"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    assert found, page
    return found.group(1)


async def operator(api: Api, client: httpx.AsyncClient) -> str:
    """Signs `client` in with read and operate; a page's CSRF value."""
    await sign_in(client, api.token(Scope.READ, Scope.OPERATE, name="oncall"))
    return csrf_of((await client.get("/ui/silences")).text)


async def test_a_silence_from_an_incidents_labels_holds_then_expires(
    tmp_path: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_api(tmp_path, RULES, store=store_url) as api, browser(api) as client:
        labels = {"alertname": "DiskFull", "service": XSS}
        incident = (await ingest(api, labels))["incident_id"]
        csrf = await operator(api, client)
        shown = await client.get(f"/ui/incidents/{incident}")
        assert f'href="/ui/silences/new?incident={incident}"' in shown.text
        new = await client.get("/ui/silences/new", params={"incident": incident})
        assert new.status_code == 200 and XSS not in new.text
        matchers = textarea(new.text)
        assert matchers == f"labels.alertname=DiskFull\nlabels.service={ESCAPED}"
        made = await client.post("/ui/silences", data={
            "csrf": csrf, "matchers": f"labels.alertname=DiskFull\nlabels.service={XSS}",
            "duration": "1h", "comment": f"disk swap {XSS}", "incident": incident})  # fmt: skip
        assert made.status_code == 303, made.text
        (silence,) = api.store.silences.list()
        assert made.headers["location"] == f"/ui/silences#silence-{silence.id}"
        assert silence.created_by == "ui oncall" and silence.ends_at - silence.starts_at == 3600
        # The real engine holds the next matching event, and says which silence did.
        event = await ingest(api, labels)
        assert event["run_ids"] == [] and silence.id in event["held"][0]["reason"]
        listing = await client.get("/ui/silences")
        assert f"disk swap {ESCAPED}" in listing.text and XSS not in listing.text
        assert f"/ui/silences/{silence.id}/expire" in listing.text

        confirm = await client.get(f"/ui/silences/{silence.id}/expire")
        assert confirm.status_code == 200 and "Expire now" in confirm.text
        assert api.store.silences.list()[0].ends_at > time.time()  # asking is not expiring
        gone = await client.post(f"/ui/silences/{silence.id}/expire", data={"csrf": csrf})
        assert gone.status_code == 303
        assert gone.headers["location"] == f"/ui/silences?all=1#silence-{silence.id}"
        assert api.store.silences.list()[0].state(time.time()) == "expired"
        assert silence.id not in (await client.get("/ui/silences")).text
        every = await client.get("/ui/silences", params={"all": "1"})
        assert silence.id in every.text and "expired" in every.text
        assert len((await ingest(api, labels))["run_ids"]) == 1  # runs again

        artifacts = tmp_path_factory.getbasetemp() / "ui-pages"
        artifacts.mkdir(exist_ok=True)
        backend = store_url.split(":")[0]
        for name, page in (("silences", every), ("silences-new", new),
                           ("silences-expire", confirm)):  # fmt: skip
            (artifacts / f"{name}-{backend}.html").write_text(page.text)


async def test_bad_input_is_a_422_page_naming_the_field_and_makes_nothing(
    tmp_path: Path, store_url: str
) -> None:
    async with running_api(tmp_path, RULES, store=store_url) as api, browser(api) as client:
        csrf = await operator(api, client)
        ok = {"csrf": csrf, "matchers": "host=web-1", "duration": "1h", "comment": "why"}
        cases = [
            ({"matchers": "colour=red"}, "matchers: Value error, 'colour=red': unknown field"),
            ({"matchers": "host>web"}, "matchers: Value error, not a matcher: 'host>web'"),
            ({"matchers": "host!=x"}, "matchers: Value error, a silence needs one matcher"),
            ({"matchers": "\n \n"}, "matchers: List should have at least 1 item"),
            ({"duration": "soon"}, "duration: Value error"),
            ({"duration": "0s"}, "silence: the duration must be positive"),
            ({"duration": ""}, "silence: give either a duration or an end"),
            ({"comment": " "}, "comment: String should have at least 1 character"),
            ({"comment": "a\x1bb"}, "comment: Value error, control character"),
        ]
        for change, says in cases:
            reply = await client.post("/ui/silences", data={**ok, **change})
            assert reply.status_code == 422, (change, reply.text)
            assert says in html.unescape(reply.text), (change, reply.text)
            assert 'name="duration"' in reply.text  # the form again, with what was typed
        assert api.store.silences.list() == []
        assert (await client.get("/ui/silences", params={"all": "yes"})).status_code == 422
        assert (await client.get("/ui/silences/new", params={"incident": "nope"})).status_code \
            == 404  # fmt: skip
        assert (await client.get("/ui/silences/nosuch/expire")).status_code == 404
        nul = await client.get("/ui/silences/new", params={"incident": "a\x00b"})
        assert nul.status_code == 422 and "NUL" in nul.text
        assert (await client.post("/ui/silences/a%00b/expire", data={"csrf": csrf})).status_code \
            == 422  # fmt: skip
        missing = await client.post("/ui/silences/nosuch/expire", data={"csrf": csrf})
        assert missing.status_code == 404 and "no silence" in missing.text


async def test_read_sees_no_buttons_and_is_refused_and_csrf_is_checked(tmp_path: Path) -> None:
    async with running_api(tmp_path, RULES) as api:
        incident = await fire(api)
        async with browser(api) as admin:
            csrf = await operator(api, admin)
            made = await admin.post("/ui/silences", data={
                "csrf": csrf, "matchers": "host=web-1", "duration": "1h", "comment": "x"})  # fmt: skip
            assert made.status_code == 303
            (silence,) = api.store.silences.list()
            for data in ({}, {"csrf": "x" * 43}):  # a forged form: nothing made or expired
                forged = await admin.post("/ui/silences", data={**data, "matchers": "host=a",
                                          "duration": "1h", "comment": "x"})  # fmt: skip
                assert forged.status_code == 403 and "CSRF" in forged.text
                forged = await admin.post(f"/ui/silences/{silence.id}/expire", data=data)
                assert forged.status_code == 403
            assert len(api.store.silences.list(ending_after=time.time())) == 1
        async with browser(api) as reader:
            await sign_in(reader, api.tokens["read"])
            page = await reader.get("/ui/silences")
            assert page.status_code == 200 and silence.id in page.text
            assert "New silence" not in page.text and "/expire" not in page.text
            assert "Silence…" not in (await reader.get(f"/ui/incidents/{incident}")).text
            csrf = csrf_of(page.text)
            for method, url, data in (
                ("GET", "/ui/silences/new", None), ("GET", f"/ui/silences/{silence.id}/expire", None),
                ("POST", "/ui/silences", {"csrf": csrf, "matchers": "host=a", "duration": "1h",
                                          "comment": "x"}),
                ("POST", f"/ui/silences/{silence.id}/expire", {"csrf": csrf}),
            ):  # fmt: skip
                reply = await reader.request(method, url, data=data)
                assert reply.status_code == 403 and "operate" in reply.text, (method, url)
        assert len(api.store.silences.list(ending_after=time.time())) == 1


def test_prefill_says_each_label_on_one_line_or_names_it() -> None:
    event = Event(source="am", kind="Down", resource="db1", labels={
        "env": "prod", "pad": " x ", "quoted": '"q"', "multi": "a\nb", "sep": "a\u2028b", "a b": "x"})  # fmt: skip
    lines, skipped = prefill(event)
    assert lines == ["labels.env=prod", 'labels.pad=" x "', 'labels.quoted=""q""']
    assert skipped == ["labels.a b", "labels.multi", "labels.sep"]
    bare = Event(source="disk", kind="usage", resource="/var", host="web-1")
    assert prefill(bare) == (["source=disk", "kind=usage", "resource=/var", "host=web-1"], [])


async def test_the_listing_is_bounded_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(silences, "SHOWN", 2)
    async with running_api(tmp_path, RULES) as api, browser(api) as client:
        now = time.time()
        made = [new_silence([f"host=web-{n}"], now=now, starts_at=None, ends_at=None,
                            duration=3600.0 * (n + 1), created_by="cli t", comment=f"c{n}")
                for n in range(3)]  # fmt: skip
        for silence in made:
            api.store.silences.add(silence)
        api.store.silences.expire(made[0].id, now)
        await sign_in(client, api.tokens["read"])
        active = (await client.get("/ui/silences")).text
        assert "(the first" not in active  # two active: both shown
        every = (await client.get("/ui/silences", params={"all": "1"})).text
        assert "(the first 2 shown, latest end first)" in every
        # What still holds is listed; the one that ended is the one left out.
        assert made[2].id in every and made[1].id in every and made[0].id not in every
