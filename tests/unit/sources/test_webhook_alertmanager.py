"""Alertmanager's webhook → Events: the captured payload, batches, fingerprints, bad shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webhook_payloads import ALERTMANAGER, load, resolved

from opsmedic.errors import WebhookError
from opsmedic.model import Status
from opsmedic.sources.webhooks.alert_group import fingerprint
from opsmedic.sources.webhooks.alertmanager import parse


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def alert(status: str = "firing", **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": labels, "startsAt": "2026-11-22T02:01:16Z",
            "endsAt": "0001-01-01T00:00:00Z"}  # fmt: skip


def test_it_maps_the_captured_firing_payload() -> None:
    (event,) = parse(load(ALERTMANAGER))
    assert event.source == "alertmanager"
    assert event.status is Status.FIRING
    assert event.kind == "HighErrorRate"
    assert event.resource == "checkout"
    assert event.host == ""
    assert event.labels == {"alertname": "HighErrorRate", "service": "checkout", "severity": "page"}
    assert event.severity == "critical"  # page
    assert event.fingerprint == "6e890fd1d2e6636f"
    assert event.time == ts("2026-11-22T02:01:16")
    assert event.value is None


def test_the_payload_keeps_the_alert_and_the_group_fields_it_needs() -> None:
    body = load(ALERTMANAGER)
    body["alerts"][0]["newField"] = {"kept": True}
    body["somethingNew"] = 1
    (event,) = parse(body)
    assert event.payload["annotations"] == {"summary": "5xx ratio 12%"}
    assert event.payload["generatorURL"] == "http://prometheus.local/graph?g0.expr=x"
    assert event.payload["newField"] == {"kept": True}
    assert event.payload["somethingNew"] == 1
    assert event.payload["groupKey"] == '{}:{alertname="HighErrorRate", service="checkout"}'
    assert event.payload["receiver"] == "opsmedic"
    assert event.payload["externalURL"] == "http://vm:9093"
    assert event.payload["groupLabels"] == {"alertname": "HighErrorRate", "service": "checkout"}
    # Summaries of what every alert holds are not copied into each alert.
    assert "commonLabels" not in event.payload
    assert "commonAnnotations" not in event.payload
    assert "alerts" not in event.payload


def test_a_resolved_alert_meets_its_firing_one() -> None:
    (firing,) = parse(load(ALERTMANAGER))
    (done,) = parse(resolved(load(ALERTMANAGER)))
    assert done.status is Status.RESOLVED
    assert done.fingerprint == firing.fingerprint
    assert done.time == ts("2026-11-22T02:11:16")  # endsAt, not startsAt


def test_without_a_fingerprint_it_computes_alertmanagers_from_the_labels() -> None:
    body = load(ALERTMANAGER)
    del body["alerts"][0]["fingerprint"]
    (page,) = parse(body)
    body["alerts"][0]["labels"]["severity"] = "ticket"
    (ticket,) = parse(body)
    # The vectors of REFERENCE.md 2.2, as Alertmanager prints them.
    assert page.fingerprint == "6e890fd1d2e6636f"
    assert ticket.fingerprint == "afa33a1b2acde30a"
    assert ticket.severity == "warning"


def test_fingerprint_vectors_and_label_order() -> None:
    labels = {"severity": "page", "service": "checkout", "alertname": "HighErrorRate"}
    assert fingerprint(labels) == "6e890fd1d2e6636f"
    assert fingerprint({**labels, "severity": "ticket"}) == "afa33a1b2acde30a"
    assert fingerprint({}) == "cbf29ce484222325"  # FNV-1a's offset basis: the empty label set


@pytest.mark.parametrize(
    ("labels", "expected"),
    [({"alertname": "A", "instance": "web-1:9100", "job": "node", "zeta": "1", "Alpha": "2",
       "_b": "3"}, "a0e02de9f1535672"),
     ({"alertname": "Ünïcødé ✓", "a": "x\u00ff", "B": "ü", "b": "日本"}, "89fff000787fa8fa")],
)  # fmt: skip
def test_fingerprints_match_what_a_real_alertmanager_computed(
    labels: dict[str, str], expected: str
) -> None:
    """Vectors read back from Debian's prometheus-alertmanager 0.25.0 (/api/v2/alerts)."""
    assert fingerprint(labels) == expected


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=5))
def test_any_label_set_keeps_its_fingerprint_when_it_resolves(labels: dict[str, str]) -> None:
    body = {"alerts": [{"status": "firing", "labels": labels},
                       {"status": "resolved", "labels": dict(reversed(labels.items()))}]}  # fmt: skip
    firing, done = parse(body)
    assert (firing.status, done.status) == (Status.FIRING, Status.RESOLVED)
    assert firing.fingerprint == done.fingerprint


def test_a_batch_gives_one_event_per_alert_with_its_own_status() -> None:
    body = {"status": "firing", "groupKey": "g", "alerts": [
        alert(alertname="DiskFull", instance="web-1:9100", job="node", severity="critical"),
        alert("resolved", alertname="DiskFull", instance="web-2:9100", job="node"),
        alert(alertname="DiskFull", instance="[2001:db8::1]:9100", job="node"),
    ]}  # fmt: skip
    events = parse(body)
    assert [e.status for e in events] == [Status.FIRING, Status.RESOLVED, Status.FIRING]
    assert [e.host for e in events] == ["web-1", "web-2", "2001:db8::1"]
    assert {e.resource for e in events} == {"node"}  # job before instance
    assert len({e.fingerprint for e in events}) == 3
    assert all(e.payload["groupKey"] == "g" for e in events)
    assert events[1].time > 0  # resolved with Go's zero endsAt: stamped on arrival instead


def test_an_alert_without_status_takes_the_groups() -> None:
    body = {"status": "resolved", "alerts": [{"labels": {"alertname": "X"}}]}
    (event,) = parse(body)
    assert event.status is Status.RESOLVED


def test_an_empty_group_gives_no_events() -> None:
    assert parse({"alerts": []}) == []


def test_label_values_become_text() -> None:
    body = {"alerts": [{"status": "firing", "labels": {"n": 3, "b": True, "o": {"x": [1]}}}]}
    (event,) = parse(body)
    assert event.labels == {"n": "3", "b": "true", "o": '{"x": [1]}'}


@pytest.mark.parametrize(
    ("word", "severity"),
    [("critical", "critical"), ("CRIT", "critical"), ("page", "critical"), ("error", "error"),
     ("major", "error"), ("warning", "warning"), ("ticket", "warning"), ("info", "info"),
     ("none", "info"), ("whatever", "info")],
)  # fmt: skip
def test_severity_words_are_normalized(word: str, severity: str) -> None:
    (event,) = parse({"alerts": [alert(alertname="X", severity=word)]})
    assert event.severity == severity


@pytest.mark.parametrize(
    ("labels", "resource", "host"),
    [({"service": "checkout", "job": "api", "instance": "10.0.0.1:8080"}, "checkout", "10.0.0.1"),
     ({"app": "shop", "host": "web-1", "instance": "web-1:9100"}, "shop", "web-1"),
     ({"instance": "fe80::1"}, "fe80::1", "fe80::1"),
     ({"instance": "db-1:not-a-port"}, "db-1:not-a-port", "db-1:not-a-port"),
     ({"alertname": "X"}, "", "")],
)  # fmt: skip
def test_resource_and_host_come_from_labels(
    labels: dict[str, str], resource: str, host: str
) -> None:
    (event,) = parse({"alerts": [alert(**labels)]})
    assert (event.resource, event.host) == (resource, host)


@pytest.mark.parametrize(
    ("body", "message"),
    [([], "body: expected an object, got list"),
     ("x", "body: expected an object, got string"),
     ({}, "alerts: missing"),
     ({"alerts": {}}, "alerts: expected a list, got object"),
     ({"alerts": [alert(), 3]}, "alerts[1]: expected an object, got number"),
     ({"alerts": [alert(), alert(), alert(), {"labels": []}]},
      "alerts[3].labels: expected an object, got list"),
     ({"alerts": [{"labels": {}}]}, "alerts[0].status: missing"),
     ({"alerts": [{"status": "pending"}]},
      "alerts[0].status: expected one of firing, resolved, got 'pending'"),
     ({"status": "pending", "alerts": [{}]},
      "status: expected one of firing, resolved, got 'pending'"),
     ({"alerts": [{"status": ["firing"]}]}, "alerts[0].status: expected text, got list"),
     ({"alerts": [{"status": "firing", "fingerprint": {}}]},
      "alerts[0].fingerprint: expected text, got object")],
)  # fmt: skip
def test_bad_shapes_name_where(body: Any, message: str) -> None:
    with pytest.raises(WebhookError) as caught:
        parse(body)
    assert str(caught.value) == message
