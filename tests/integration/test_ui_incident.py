"""The Incident page against the real app and engine, on SQLite and PostgreSQL: every kind of
timeline line (events, rule matches, runs with their outputs, notifications and what they
sent, deployments and flag changes of its window, status changes), the draft as Markdown,
escaping; acknowledge, resolve, reopen and close through the code the API uses."""

from __future__ import annotations

import asyncio
import html
import re
import time
from pathlib import Path

import pytest

from api_service import Api, running_api
from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.model import Deployment, DeploymentState
from opsmedic.store.report_rows import Draft
from opsmedic.tokens import Scope
from opsmedic.ui.incident import CHANGES_SHOWN
from services import SMTPServer
from ui_client import XSS, browser, csrf_of, fire, keep, sign_in

RULES = [{
    "name": "restart-db",
    "when": {"source": "alertmanager", "labels.alertname": "DiskFull"},
    "do": [{"run_command": {"argv": ["echo", "restarted"]}},
           {"notify": {"to": "log", "title": "restarted {{ event.labels.team }}"}}],
}]  # fmt: skip


async def _incident_with_everything(api: Api) -> str:
    """An incident the engine ran a rule with a notify step for, and a deployment and a flag
    change during it (recorded as the release controller and the flag service record them)."""
    incident = await fire(api, team=XSS)
    now = time.time()
    deployment = Deployment("shop", "production", "v2", previous_version="v1",
                            requested_by="api deploy-bot", owner="host:1", created_at=now,
                            updated_at=now)  # fmt: skip
    api.store.start_deployment(deployment)
    deployment.state, deployment.finished_at, deployment.reason = (
        DeploymentState.ROLLED_BACK,
        now,
        "verify failed",
    )
    assert api.store.update_deployment(deployment, [DeploymentState.STARTED])
    flag = Flag.model_validate({"key": "new_checkout", "enabled": False})
    api.store.flags.set(flag, Author("api", "bob"), now)
    return incident


async def test_every_kind_of_line_is_on_the_timeline_and_text_is_escaped(
    tmp_path: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory,
    smtp_server: SMTPServer,
) -> None:  # fmt: skip
    mail = f"mailto://{smtp_server.host}:{smtp_server.port}?from=o@example.com&to=oc@example.com"
    async with running_api(
        tmp_path, RULES, store=store_url, notify={"log": {"urls": [mail]}}
    ) as api:
        incident = await _incident_with_everything(api)
        runs = api.store.list_runs()
        assert [r.state.value for r in runs] == ["succeeded"], runs
        async with browser(api) as client:
            await sign_in(client, api.tokens["read"])
            page = await client.get(f"/ui/incidents/{incident}")
        assert page.status_code == 200
        kinds = re.findall(r'<span class="badge tl-kind">([a-z ]+)</span>', page.text)
        for kind in ("status changed", "event received", "rule matched", "run started",
                     "notification sent", "run finished", "deployment started",
                     "deployment rolled back", "flag changed"):  # fmt: skip
            assert kind in kinds, (kind, kinds)
        text = html.unescape(page.text)
        assert "restarted" in text  # the run_command step's output, on its run line
        assert "deployment rolled_back: shop v2 to production by api deploy-bot" in text
        assert 'href="/ui/deployments/' in page.text
        assert "flag new_checkout changed by api bob" in text
        # The notification line shows what the notify step sent: its rendered title.
        assert f"restarted {XSS}" in text and XSS not in page.text
        assert "&lt;script&gt;" in page.text
        keep(tmp_path_factory, f"incident-timeline-{store_url.split(':')[0]}", page)


async def test_the_draft_is_markdown_rendered_with_html_shown_as_text(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_api(tmp_path) as api:
        incident = await fire(api)
        markdown = (f"# Draft\n\n| time | what |\n| --- | --- |\n| 1 | {XSS} |\n\n"
                    f"<img src=x onerror=alert(1)>\n\n[click](javascript:alert(1))\n")  # fmt: skip
        api.store.reports.save_draft(Draft(incident, markdown, time.time(), "on_demand"))
        async with browser(api) as client:
            await sign_in(client, api.tokens["read"])
            reply = await client.get(f"/ui/incidents/{incident}")
        page = reply.text
        draft = page[page.index('<div class="draft') :]
        assert "<h1>Draft</h1>" in draft and "<table>" in draft and "<pre>" not in draft
        assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in draft
        assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in draft
        assert 'href="javascript:' not in page
        keep(tmp_path_factory, "incident-draft", reply)


async def test_people_act_through_the_lifecycle_and_see_only_the_buttons_it_allows(
    tmp_path: Path, store_url: str
) -> None:
    async with running_api(tmp_path, store=store_url) as api:
        incident = await fire(api)
        url = f"/ui/incidents/{incident}"

        def buttons(page: str) -> list[str]:
            found = re.findall(r"<button type=\"submit\"[^>]*>([^<]+)</button>", page)
            return [label for label in found if label != "Sign out"]

        async with browser(api) as reader:
            await sign_in(reader, api.tokens["read"])
            page = await reader.get(url)
            assert buttons(page.text) == []
            for action in ("close", "reopen"):
                denied = await reader.post(f"{url}/{action}", data={"csrf": csrf_of(page.text)})
                assert denied.status_code == 403 and "operate" in denied.text
        async with browser(api) as op:
            await sign_in(op, api.token(Scope.READ, Scope.OPERATE, name="oncall"))
            csrf = csrf_of((await op.get(url)).text)
            steps = [("ack", "acknowledged", ["Resolve", "Close"]),
                     ("resolve", "resolved", ["Close", "Reopen"]),
                     ("reopen", "open", ["Acknowledge", "Resolve", "Close"])]  # fmt: skip
            assert buttons((await op.get(url)).text) == ["Acknowledge", "Resolve", "Close"]
            for action, status, offered in steps:
                reply = await op.post(f"{url}/{action}", data={"csrf": csrf})
                assert reply.status_code == 303 and reply.headers["location"] == url
                assert api.store.get_incident(incident)[0].status.value == status
                assert buttons((await op.get(url)).text) == offered, action
            # Closing is final: refused without the tick, done with it.
            unticked = await op.post(f"{url}/close", data={"csrf": csrf})
            assert unticked.status_code == 422 and "confirm" in unticked.text
            assert api.store.get_incident(incident)[0].status.value == "open"
            closed = await op.post(f"{url}/close", data={"csrf": csrf, "confirm": "final"})
            assert closed.status_code == 303
            found, _, timeline = api.store.get_incident(incident)
            assert found.status.value == "closed"
            assert [line.kind for line in timeline][-4:] == [
                "acknowledged", "resolved", "reopened", "closed"
            ]  # fmt: skip
            assert "closed by hand by oncall (dashboard)" in timeline[-1].message
            assert buttons((await op.get(url)).text) == []  # closed takes only notes
            # The lifecycle's refusal, worded as the API words it, as a page.
            again = await op.post(f"{url}/reopen", data={"csrf": csrf})
            assert again.status_code == 409 and f"incident {incident}: the incident is closed" in (
                html.unescape(again.text)
            )
            assert (
                await op.post("/ui/incidents/a%00b/ack", data={"csrf": csrf})
            ).status_code == 422
            assert (await op.post("/ui/incidents/nope/close",
                                  data={"csrf": csrf, "confirm": "final"})).status_code == 404  # fmt: skip
            forged = await op.post(f"{url}/reopen", data={"csrf": "x"})
            assert forged.status_code == 403 and "CSRF" in forged.text


async def test_a_busy_window_shows_the_changes_nearest_the_opening_and_says_so(
    tmp_path: Path,
) -> None:
    async with running_api(tmp_path) as api:
        incident = await fire(api)
        opened = api.store.get_incident(incident)[0].opened_at
        by = Author("api", "bob")
        for n in range(CHANGES_SHOWN + 10):  # flag changes a millisecond apart, after it opened
            flag = Flag.model_validate({"key": f"f{n}", "enabled": n % 2 == 0})
            api.store.flags.set(flag, by, opened + 0.001 * (n + 1))
        # The window of an open incident ends now: wait until all of them are inside it.
        await asyncio.sleep(max(0.0, opened + 0.1 - time.time()))
        async with browser(api) as client:
            await sign_in(client, api.tokens["read"])
            page = await client.get(f"/ui/incidents/{incident}")
            every = await client.get(f"/ui/incidents/{incident}?lines=all")
            bad = await client.get(f"/ui/incidents/{incident}?lines=some")
        assert page.status_code == every.status_code == 200
        shown = re.findall(r"flag (f\d+) changed by", page.text)
        # The nearest its opening: the first CHANGES_SHOWN, not the last ten.
        assert shown == [f"f{n}" for n in range(CHANGES_SHOWN)]
        said = f"the {CHANGES_SHOWN} deployments and flag changes nearest its opening of "
        assert said + f"{CHANGES_SHOWN + 10} in its window" in page.text
        assert f'href="/ui/incidents/{incident}?lines=all"' in page.text
        assert len(re.findall(r"flag (f\d+) changed by", every.text)) == CHANGES_SHOWN + 10
        assert "?lines=all" not in every.text.split("Timeline", 1)[1].split("</h2>", 1)[1][:400]
        assert bad.status_code == 422 and "lines" in bad.text
