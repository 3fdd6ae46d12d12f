"""A real Alertmanager sends its webhooks to opsmedic: firing, grouped, then resolved, end to
end to a run and an incident."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from api_service import Api, running_api
from opsmedic.model import IncidentStatus, RunState
from services_alertmanager import alert, running_alertmanager

pytestmark = pytest.mark.alertmanager
WAIT_S = 60  # Alertmanager's group_wait and group_interval are 1 s; this is a generous bound

RULES = [{
    "name": "restart-checkout",
    "when": {"source": "alertmanager", "labels.alertname": "HighErrorRate"},
    "do": [{"run_command": {"argv": ["echo", "restarting {{ event.labels.service }}"]}}],
    "throttle": {"once_within": "1h", "per": ["labels.alertname", "labels.service"]},
}]  # fmt: skip
LABELS = {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"}


async def until(check: Callable[[], bool], what: str, am_log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            tail = am_log.read_text()[-3000:]  # noqa: ASYNC240 - failing anyway
            raise AssertionError(f"timed out waiting for {what}; Alertmanager's log:\n{tail}")
        await asyncio.sleep(0.1)


def incidents(api: Api) -> list[tuple[IncidentStatus, int]]:
    return [(i.status, i.events) for i in api.store.list_incidents()]


async def test_alertmanager_firing_grouped_then_resolved(tmp_path: Path) -> None:
    async with running_api(tmp_path / "opsmedic", RULES) as api:
        url = f"{api.url}/api/v1/webhooks/alertmanager"
        with running_alertmanager(tmp_path / "am", url, api.tokens["ingest"]) as am:
            # Two alerts of one group (same alertname and service, two instances).
            await asyncio.to_thread(am.post_alerts, [
                alert({**LABELS, "instance": "web-1"}, summary="5xx 12%"),
                alert({**LABELS, "instance": "web-2"}, summary="5xx 9%"),
            ])  # fmt: skip
            await until(lambda: len(api.store.list_events()) >= 2, "the firing webhook", am.log)
            await until(lambda: any(r.state.finished for r in api.store.list_runs()),
                        "the run", am.log)  # fmt: skip
            await api.rt.engine.drain()
            events = api.store.list_events()
            assert {e.labels["instance"] for e in events} == {"web-1", "web-2"}
            assert all(e.source == "alertmanager" and len(e.fingerprint) == 16 for e in events)
            (run,) = api.store.list_runs()  # one group, one remediation: the throttle holds
            assert run.state is RunState.SUCCEEDED
            assert "restarting checkout" in run.steps[0].output
            (incident,) = api.store.list_incidents()
            assert incident.status is IncidentStatus.MITIGATED
            _, alerts, _ = api.store.get_incident(incident.id)
            assert len(alerts) == 2  # both alerts of the group joined one incident
            # Both resolve: Alertmanager sends the resolved group (send_resolved: true).
            await asyncio.to_thread(am.post_alerts, [
                alert({**LABELS, "instance": "web-1"}, resolved=True),
                alert({**LABELS, "instance": "web-2"}, resolved=True),
            ])  # fmt: skip
            await until(
                lambda: api.store.list_incidents()[0].status is IncidentStatus.RESOLVED,
                "the resolved webhook", am.log,
            )  # fmt: skip
            _, alerts, timeline = api.store.get_incident(incident.id)
            assert {a.status for a in alerts} == {"resolved"}
            assert [t.kind for t in timeline if t.kind == "status_changed"] == [
                "status_changed"
            ] * 3
            assert len(api.store.list_runs()) == 1  # resolved alerts planned no new run
