"""On-call summaries, stats, release records, charts and the HTML bundle, from real stores;
and the drafting task of `opsmedic run`."""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET

from opsmedic.clock import ManualClock
from opsmedic.model import Event, Status
from opsmedic.reports import oncall
from opsmedic.reports.charts import days, per_day
from opsmedic.reports.drafts import keep_drafting
from opsmedic.reports.html import page
from opsmedic.reports.release import record
from opsmedic.reports.stats import percentile, stats
from opsmedic.store import Store
from report_scenes import alert, incident_scene
from store_fixtures import T0

WINDOW = (T0 - 3600, T0 + 3600)


def _escalation(at: float) -> Event:
    return Event(source="opsmedic", kind="escalation", resource="checkout", host="web-1",
                 labels={"rule": "restart-app", "reason": "limit", "target": "web-1"},
                 severity="critical", status=Status.FIRING, time=at)  # fmt: skip


def test_oncall_summary_of_a_window(store: Store) -> None:
    scene = incident_scene(store)
    store.record([_escalation(T0 + 30)], [])
    summary = oncall.summarize(store, *WINDOW)
    data = oncall.as_json(summary)
    (incident,) = data["incidents"]
    assert incident | {"opened_at": 0} == {
        "id": scene.incident_id, "title": "HighErrorRate on checkout", "severity": "info",
        "status": "resolved", "opened_at": 0, "resolution": "automatic",
        "time_to_mitigate_s": 42.25, "events": 2, "runs": 2,
    }  # fmt: skip
    assert data["runs"] == {"failed": 1, "succeeded": 1}
    assert data["noisiest_rules"][0] == {"rule": "restart-app", "runs": 1, "failed": 1}
    (noisy,) = data["noisiest_alerts"]
    # It fired once (its resolve is not a firing); opsmedic's own escalation is left out.
    assert (noisy["alert"], noisy["fired"]) == ("HighErrorRate", 1)
    assert [r["id"] for r in data["failed_runs"]] == [scene.failed.id]
    assert [(e["rule"], e["reason"], e["target"]) for e in data["escalations"]] == [
        ("restart-app", "limit", "web-1")
    ]
    text = oncall.markdown(summary)
    assert (
        "| 1 | 2023-11-14 22:13:20 | HighErrorRate on checkout | info | resolved | automatic |"
        in text
    )
    assert "escalated (limit)" in text and "| restart-app | web-1 | failed |" in text
    assert "1 incident, 2 runs (1 failed, 1 succeeded), 1 escalation." in text
    assert oncall.summarize(store, T0 + 3600, T0 + 7200).incidents == []  # window honoured


def test_a_manual_resolution_is_told_apart(store: Store) -> None:
    from opsmedic.lifecycle import Action

    scene = incident_scene(store, resolve=False)
    store.incident_action(scene.incident_id, Action.RESOLVE, "alice", T0 + 100)
    (incident,) = oncall.as_json(oncall.summarize(store, *WINDOW))["incidents"]
    assert incident["resolution"] == "manual"


def test_reports_over_an_empty_store(store: Store) -> None:
    summary = oncall.summarize(store, *WINDOW)
    text = oncall.markdown(summary)
    assert "0 incidents, 0 runs (none), 0 escalations." in text and "No incident." in text
    for svg in oncall.charts(summary).values():
        ET.fromstring(svg)
    found = stats(store, *WINDOW)
    assert (found.rules, found.actions, found.first) == ({}, {}, None)


def test_stats_per_rule_and_action_and_times_an_action_ran_against_a_target(
    store: Store,
) -> None:
    incident_scene(store)
    found = stats(store, *WINDOW)
    assert [(t.name, t.runs, t.succeeded, t.failed) for t in found.rules.values()] == [
        ("restart-app", 1, 0, 1), ("rollback-app", 1, 1, 0)]  # fmt: skip
    notify = found.actions["notify"]
    assert (notify.runs, notify.success_rate, list(found.actions)) == (
        2, 0.5, ["notify", "restart_service"])  # fmt: skip
    assert found.actions["restart_service"].percentiles() == {
        "p50": 7.5, "p95": 32.25, "p99": 32.25}  # fmt: skip
    assert stats(store, *WINDOW, action="restart_service", target="web-1").ran(
        "restart_service") == 2  # fmt: skip
    assert stats(store, *WINDOW, action="restart_service", target="web-2").ran(
        "restart_service") == 0  # fmt: skip
    assert stats(store, T0 + 5, T0 + 3600, action="restart_service").ran("restart_service") == 1
    assert list(stats(store, *WINDOW, rule="rollback-app").rules) == ["rollback-app"]


def test_percentiles_are_measured_values_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([3.0], 99) == 3.0 and percentile([], 50) is None


def test_release_record_from_the_deployment_row(store: Store) -> None:
    scene = incident_scene(store)
    d = scene.deployment
    d.checks = {"gates": {"forced": False, "results": [{"name": "ci", "ok": True}]},
                "verify": [{"check": "<script>x</script>", "ok": False, "detail": "5xx 12%"}],
                "canary": {"score": 61.5, "marginal": 75}, "custom": []}  # fmt: skip
    assert store.update_deployment(d, [d.state])
    text = record(store.get_deployment(d.id))
    for expected in ("| version | v1 → v2 |", "| deployed by | bob |",
                     "| rolled back to | v1 |", "## Gates [^1]", "## Verification checks [^1]",
                     "## Canary analysis [^1]", "\n- score: 61.5", "## custom [^1]",
                     "- check: \\<script\\>x\\</script\\>",
                     f"[^1]: deployments row {d.id}"):  # fmt: skip
        assert expected in text, expected
    assert text.index("## Gates") < text.index("## Verification") < text.index("## Canary")


def test_html_shows_store_text_as_text_and_runs_no_script(store: Store) -> None:
    incident_scene(store, alertname="<script>alert(1)</script>")
    summary = oncall.summarize(store, *WINDOW)
    html = page("On-call summary", oncall.markdown(summary), oncall.charts(summary))
    assert "<script" not in html and "javascript" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; on checkout" in html
    assert html.count("<svg") == 2 and "<table>" in html
    assert '<a href="#fn-1">[1]</a>' in html and '<li id="fn-1">[1]: incidents row ' in html


def test_per_day_counts_each_utc_day() -> None:
    day = 86_400.0
    start = T0 - T0 % day
    svg = per_day(
        "t", {"incidents": [start + 1, start + 2, start + day + 5]}, start, start + 2 * day
    )
    assert (
        days(start, start + 2 * day)[0] == "2023-11-14" and len(days(start, start + 2 * day)) == 3
    )
    values = re.findall(r'<desc class="value">(\d+)</desc>', svg)
    assert values == ["2", "1", "0"]
    assert "<script" not in svg


async def test_opsmedic_run_drafts_an_incident_resolved_past_its_reopen_window(
    store: Store,
) -> None:
    scene = incident_scene(store)
    clock, stop = ManualClock(T0 + 300 + 60), asyncio.Event()
    task = asyncio.create_task(keep_drafting(store, clock, 120.0, stop, every=0.01))
    await asyncio.sleep(0.1)
    assert store.reports.draft(scene.incident_id) is None  # still inside its reopen window
    clock.advance(61)
    for _ in range(500):
        if store.reports.draft(scene.incident_id) is not None:
            break
        await asyncio.sleep(0.01)
    found = store.reports.draft(scene.incident_id)
    assert found is not None and found.trigger == "auto" and found.generated_at == T0 + 421
    stop.set()
    await task


def test_an_alert_of_another_window_is_not_counted(store: Store) -> None:
    store.record([alert(at=T0 - 7200)], [])
    assert oncall.summarize(store, *WINDOW).alerts == []


def test_the_noisiest_alerts_count_firings_not_healthy_readings(store: Store) -> None:
    """A probe healthy every interval (resolved readings) is not noisy; one that fired three
    times is, counted by its firing events."""

    def reading(kind: str, status: Status, at: float) -> Event:
        return Event(source="http", kind=kind, resource=f"http://127.0.0.1:8000/{kind}",
                     host="web-1", status=status, time=at)  # fmt: skip

    store.record([reading("healthy", Status.RESOLVED, T0 + i) for i in range(50)], [])
    store.record([reading("flaky", s, T0 + 100 + i)
                  for i, s in enumerate([Status.FIRING, Status.RESOLVED] * 3)], [])  # fmt: skip
    alerts = oncall.summarize(store, *WINDOW).alerts
    assert [(e.kind, e.status, n) for e, n in alerts] == [("flaky", Status.FIRING, 3)]
    assert "| flaky | web-1 |" in oncall.markdown(oncall.summarize(store, *WINDOW))
