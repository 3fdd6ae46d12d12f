"""The Now page against the real app and engine, on SQLite and PostgreSQL: what automation did
per incident, a canary's weights while it runs, the last hour's flag changes with who and
what, the live fragment following them, escaping."""

from __future__ import annotations

import html
import time
from pathlib import Path

import pytest

from api_service import running_api
from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.model import Deployment, RunState
from opsmedic.ui import now
from store_fixtures import T0, make_event, make_run
from ui_client import XSS, browser, fire, keep, sign_in

RULES = [{
    "name": "restart-db",
    "when": {"source": "alertmanager", "labels.alertname": "DiskFull"},
    "do": [{"run_command": {"argv": ["true"]}}],
}]  # fmt: skip


async def test_now_shows_automation_canary_weights_and_flag_changes(
    tmp_path: Path, store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    async with running_api(tmp_path, RULES, store=store_url) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        before = (await client.get("/ui/now/fragment")).text
        await fire(api)
        now = time.time()
        canary = Deployment(f"shop{XSS}", "production", "v2", previous_version="v1",
                            strategy="canary", requested_by="cli alice", owner="host:1",
                            created_at=now, updated_at=now)  # fmt: skip
        api.store.start_deployment(canary)
        step = {"canary_percent": 10, "weights": {"10.0.0.1:80": 90, "10.0.0.2:80": 10}}
        assert api.store.deployment_heartbeat(
            canary.id, "host:1", now, {"canary": {"steps": [step]}}
        )
        flags = api.store.flags
        flags.set(Flag.model_validate({"key": "old_flag"}), Author("cli", "carol"), now - 7200)
        flags.set(Flag.model_validate({"key": "checkout"}), Author("cli", "alice"), now - 60)
        flags.set(Flag.model_validate({"key": "checkout", "enabled": False}),
                  Author("api", "bot"), now - 30)  # fmt: skip
        after = (await client.get("/ui/now/fragment")).text
        assert after != before  # what the page's script swaps in, without a reload
        text = html.unescape(after)
        assert "restart-db: succeeded" in text  # what automation did for the incident
        assert "mitigated" in text
        assert "canary step 10 %" in text and "10.0.0.1:80 90" in text and "10.0.0.2:80 10" in text
        assert f"shop{XSS}" in text and XSS not in after
        assert "checkout</strong></a> v2 by api bot" in text and "enabled: true → false" in text
        assert "checkout</strong></a> v1 by cli alice" in text and "created" in text
        assert "old_flag" not in text  # two hours ago
        page = await client.get("/ui/")
        assert page.status_code == 200 and XSS not in page.text
        keep(tmp_path_factory, f"now-filled-{store_url.split(':')[0]}", page)


async def test_the_incidents_cut_says_of_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(now, "INCIDENTS_SHOWN", 2)
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        for i in range(3):
            await fire(api, title=f"Alert{i}", fingerprint=f"f{i}")
        page = (await client.get("/ui/now/fragment")).text
        assert "the newest 2 of 3 shown" in page and '<span class="big">3</span>' in page
        assert "Alert2" in page and "Alert1" in page and "Alert0" not in page


async def test_a_stored_severity_goes_into_a_class_only_as_a_known_one(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        sent = []
        for n, severity in enumerate(("critical x skip", "warning")):
            body = {"source": "alertmanager", "kind": f"Sev{n}", "status": "firing",
                    "fingerprint": f"s{n}", "time": time.time(), "severity": severity}  # fmt: skip
            async with api.client(api.tokens["ingest"]) as ingest:
                reply = await ingest.post("/api/v1/events", json=body)
            assert reply.status_code == 202, reply.text
            sent.append(reply.json()["events"][0]["incident_id"])
        await api.rt.engine.drain()
        fragment = (await client.get("/ui/now/fragment")).text
        incident = (await client.get(f"/ui/incidents/{sent[0]}")).text
        for page in (fragment, incident):
            assert 'class="badge sev-other">critical x skip<' in page
            assert "sev-critical x skip" not in page
        assert 'class="badge sev-warning">warning<' in fragment


async def test_the_summary_is_the_live_region_and_the_time_is_marked(tmp_path: Path) -> None:
    # ui.js swaps the fragment only when more than its data-updated time changed, keeps the
    # aria-live summary element and the focus (by id or href) across a swap.
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        page = (await client.get("/ui/")).text
        assert page.count("aria-live") == 1
        assert '<ul class="tiles" aria-label="Summary" aria-live="polite">' in page
        assert '<p class="dim small updated" data-updated>Updated <time' in page
        script = (await client.get("/ui/static/ui.js")).text
        assert "[data-updated]" in script and ".focus()" in script


async def test_running_runs_and_rollouts_cut_say_of_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(now, "RUNNING_SHOWN", 2)
    monkeypatch.setattr(now, "DEPLOYMENTS_SHOWN", 2)
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        for n in range(3):
            event = make_event(fingerprint=f"r{n}")
            api.store.record([event], [make_run(event, state=RunState.RUNNING, started_at=T0)])
            at = time.time()
            api.store.start_deployment(Deployment(f"svc{n}", "production", "v2", owner="host:1",
                                                  created_at=at, updated_at=at))  # fmt: skip
        page = html.unescape((await client.get("/ui/now/fragment")).text)
        assert 'Runs in progress <span class="count">the first 2 of 3 shown' in page
        assert 'Deployments rolling out <span class="count">the first 2 of 3 shown' in page
        assert page.count('<span class="big">3</span>') == 2  # the summary's counts: all of them
