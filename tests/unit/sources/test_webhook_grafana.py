"""Grafana's webhook → Events: unified alerting (Alertmanager-shaped) and legacy alerting."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from webhook_payloads import GRAFANA, GRAFANA_LEGACY, load, resolved

from opsmedic.errors import WebhookError
from opsmedic.model import Status
from opsmedic.sources.webhooks.alert_group import fingerprint
from opsmedic.sources.webhooks.grafana import parse


def test_it_maps_the_documented_unified_payload() -> None:
    (event,) = parse(load(GRAFANA))
    assert event.source == "grafana"
    assert event.status is Status.FIRING
    assert event.kind == "High CPU"
    assert event.labels == {"alertname": "High CPU", "team": "blue"}
    assert event.fingerprint == "bc97ff14869b13e3"  # Grafana's own, as sent
    assert event.value == 97.2
    assert event.time == datetime.fromisoformat("2021-10-12T09:56:03+02:00").timestamp()
    assert event.payload["orgId"] == 1
    assert event.payload["annotations"] == {"summary": "cpu 97%"}


def test_resolved_keeps_the_fingerprint() -> None:
    (firing,) = parse(load(GRAFANA))
    (done,) = parse(resolved(load(GRAFANA)))
    assert done.status is Status.RESOLVED
    assert done.fingerprint == firing.fingerprint


def test_without_a_fingerprint_it_computes_alertmanagers() -> None:
    body = load(GRAFANA)
    del body["alerts"][0]["fingerprint"]
    (event,) = parse(body)
    assert event.fingerprint == fingerprint({"alertname": "High CPU", "team": "blue"})


def test_the_groups_rendered_message_is_not_copied_into_each_alert() -> None:
    body = load(GRAFANA)
    body["message"] = "**Firing**\n" + "x" * 10_000
    body["title"] = "[FIRING:1] High CPU"
    (event,) = parse(body)
    assert "message" not in event.payload
    assert event.payload["title"] == "[FIRING:1] High CPU"


@pytest.mark.parametrize(
    ("values", "value"),
    [({"B": 97.2}, 97.2), ({"A": 3}, 3.0), ({"A": 1.0, "C": 1}, None), ({}, None),
     (None, None), ({"B": "high"}, None), ({"B": True}, None), ({"B": 10**400}, None)],
)  # fmt: skip
def test_one_reading_becomes_the_value(values: Any, value: float | None) -> None:
    body = load(GRAFANA)
    body["alerts"][0]["values"] = values
    (event,) = parse(body)
    assert event.value == value


def test_it_maps_a_legacy_alert() -> None:
    (event,) = parse(load(GRAFANA_LEGACY))
    assert event.source == "grafana"
    assert event.status is Status.FIRING
    assert event.kind == "Disk full"
    assert event.labels == {"host": "web-1", "severity": "warning"}
    assert event.host == "web-1"
    assert event.severity == "warning"
    assert event.value == 93.5
    assert event.fingerprint == "grafana:7"
    assert event.payload["imageUrl"] == "http://grafana.local/render/abc.png"


@pytest.mark.parametrize(
    ("state", "status"),
    [("alerting", Status.FIRING), ("no_data", Status.FIRING), ("ok", Status.RESOLVED)],
)
def test_legacy_states(state: str, status: Status) -> None:
    body = load(GRAFANA_LEGACY)
    body["state"] = state
    (event,) = parse(body)
    assert event.status is status
    assert event.fingerprint == "grafana:7"


def test_a_legacy_alert_without_rule_id_is_identified_by_name_and_tags() -> None:
    body = load(GRAFANA_LEGACY)
    del body["ruleId"]
    (event,) = parse(body)
    labels = {"host": "web-1", "severity": "warning", "alertname": "Disk full"}
    assert event.fingerprint == fingerprint(labels)


def test_legacy_with_several_matches_has_no_single_value() -> None:
    body = load(GRAFANA_LEGACY)
    body["evalMatches"].append({"value": 91.0, "metric": "disk_used_percent"})
    (event,) = parse(body)
    assert event.value is None


@pytest.mark.parametrize(
    ("change", "message"),
    [({"state": "paused"}, "state: expected one of alerting, no_data, ok, got 'paused'"),
     ({"state": None}, "state: missing"),
     ({"evalMatches": {}}, "evalMatches: expected a list, got object"),
     ({"evalMatches": [{}, "x"]}, "evalMatches[1]: expected an object, got string"),
     ({"tags": ["a:b"]}, "tags: expected an object, got list"),
     ({"ruleName": 1.5, "ruleId": [7]}, "ruleId: expected text, got list")],
)  # fmt: skip
def test_bad_legacy_shapes_name_where(change: dict[str, Any], message: str) -> None:
    body = {**load(GRAFANA_LEGACY), **change}
    with pytest.raises(WebhookError) as caught:
        parse(body)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("body", "message"),
    [(None, "body: expected an object, got null"),
     ({"receiver": "opsmedic"}, "alerts: missing"),
     ({"alerts": [{"status": "firing", "values": [97.2]}]},
      "alerts[0].values: expected an object, got list")],
)  # fmt: skip
def test_bad_unified_shapes_name_where(body: Any, message: str) -> None:
    with pytest.raises(WebhookError) as caught:
        parse(body)
    assert str(caught.value) == message
