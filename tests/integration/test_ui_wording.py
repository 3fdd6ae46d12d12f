"""The dashboard's wording: a count says `1 event`, a log hunt's window starts at a time
written as every other time, the post-mortem's empty state says when a draft comes."""

from __future__ import annotations

import html
import time
from pathlib import Path

from api_service import running_api
from opsmedic.model import RunState, StepRecord
from store_fixtures import make_event, make_run
from ui_client import browser, fire, sign_in


async def test_counts_hunt_window_and_draft_empty_state(tmp_path: Path) -> None:
    async with running_api(tmp_path) as api, browser(api) as client:
        await sign_in(client, api.tokens["read"])
        incident = await fire(api)
        now = time.time()
        hunt = StepRecord(action="loghunt", params={}, state=RunState.SUCCEEDED, started_at=now,
                          details={"summary": "2 errors:", "distinct": 2,
                                   "window": {"since": "2026-12-07T17:00:00+00:00"}})  # fmt: skip
        event = make_event(fingerprint="hunt")
        run = make_run(event, rule="hunt", actions=["loghunt"], incident_id=incident,
                       state=RunState.SUCCEEDED, finished_at=now, steps=[hunt])  # fmt: skip
        api.store.record([event], [run])
        page = html.unescape((await client.get(f"/ui/incidents/{incident}")).text)
        assert "· 1 event</li>" in page and "1 events" not in page
        assert "2 errors, since 2026-12-07 17:00:00 UTC" in page
        assert "once the incident has stayed resolved longer than incidents.reopen_within" in (
            page.replace("<code>", "").replace("</code>", "")
        )
        fragment = html.unescape((await client.get("/ui/now/fragment")).text)
        assert "· 1 event" in fragment and "1 events" not in fragment
