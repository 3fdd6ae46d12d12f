"""Datadog's webhook → Events: the default payload, the recommended one, titles and tags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from webhook_payloads import DATADOG, load, render_datadog

from opsmedic.engine.incidents import Grouping, IncidentTracker
from opsmedic.errors import WebhookError
from opsmedic.model import IncidentChanges, IncidentStatus, Status
from opsmedic.sources.webhooks.datadog import parse
from opsmedic.sources.webhooks.shape import parse_tags

DOC = Path(__file__).parents[3] / "docs" / "webhooks.md"


def recommended_template() -> str:
    """The payload docs/webhooks.md tells Datadog users to paste."""
    block = re.search(r"```json\n(\{[^`]*\$ALERT_CYCLE_KEY[^`]*)```", DOC.read_text())
    assert block is not None
    return block.group(1)


def test_it_maps_the_default_payload() -> None:
    (event,) = parse(load(DATADOG))
    assert event.source == "datadog"
    assert event.status is Status.FIRING
    assert event.kind == "checkout 5xx rate"  # without the [Triggered] prefix
    assert event.severity == "error"
    assert event.time == 1706790000.0
    assert event.labels == {}
    assert event.payload["org"] == {"id": "123456", "name": "Acme"}


def test_the_default_payloads_recovery_meets_its_trigger() -> None:
    (triggered,) = parse(load(DATADOG))
    body = load(DATADOG)
    body["title"] = "[Recovered] checkout 5xx rate"
    body["id"] = "7401239799999"  # every notification is a new Datadog event
    (recovered,) = parse(body)
    assert recovered.status is Status.RESOLVED
    assert recovered.fingerprint == triggered.fingerprint


def test_it_maps_the_recommended_payload() -> None:
    (event,) = parse(render_datadog(recommended_template()))
    assert event.status is Status.FIRING
    assert event.kind == "Disk full"
    assert event.labels == {"env": "prod", "host": "web-1", "service": "checkout"}
    assert event.host == "web-1"
    assert event.resource == "checkout"
    assert event.severity == "error"  # P2
    assert event.fingerprint == "datadog:1234/host:web-1"  # the monitor and its group
    assert event.time == 1706790000.0
    assert event.payload["link"] == "https://app.datadoghq.com/event/event?id=7401239712345"


def test_the_cycle_key_links_trigger_and_recovery() -> None:
    template = recommended_template()
    (triggered,) = parse(render_datadog(template))
    (recovered,) = parse(render_datadog(template, ALERT_TRANSITION="Recovered", ALERT_TYPE="success",
                                        EVENT_TITLE="[P2] [Recovered on {host:web-1}] Disk full"))  # fmt: skip
    assert recovered.status is Status.RESOLVED
    assert recovered.fingerprint == triggered.fingerprint
    assert recovered.kind == triggered.kind


def test_a_recovery_whose_title_datadog_shortened_meets_its_trigger() -> None:
    """Datadog's documented variables ($ALERT_ID "ID of the alerting monitor", $ALERT_SCOPE
    "Comma-separated list of tags triggering the alert", $ALERT_CYCLE_KEY; see
    https://docs.datadoghq.com/integrations/webhooks/): the identity is the monitor and its
    scope; the title, which Datadog shortens on recovery, is no part of it."""
    template = recommended_template()
    (triggered,) = parse(
        render_datadog(
            template,
            EVENT_TITLE="[P2] [Triggered on {host:web-1,env:prod}] Disk full on web-1 (94%)",
            ALERT_TITLE="Disk full on web-1 (94%)",
            ALERT_SCOPE="host:web-1, env:prod",
        )
    )
    (recovered,) = parse(
        render_datadog(
            template,
            EVENT_TITLE="[Recovered] Disk full",
            ALERT_TITLE="Disk full",
            ALERT_TRANSITION="Recovered",
            ALERT_TYPE="success",
            ALERT_SCOPE="env:prod,host:web-1",
        )
    )
    assert recovered.status is Status.RESOLVED
    assert recovered.kind != triggered.kind
    assert recovered.fingerprint == triggered.fingerprint == "datadog:1234/env:prod,host:web-1"


def test_the_shortened_recovery_resolves_the_incident_its_trigger_opened() -> None:
    template = recommended_template()
    tracker = IncidentTracker(Grouping({}))
    (trigger,) = parse(render_datadog(template, ALERT_TITLE="Disk full on web-1 (94%)"))
    (recovery,) = parse(render_datadog(template, ALERT_TITLE="Disk full",
                                       ALERT_TRANSITION="Recovered", ALERT_TYPE="success"))  # fmt: skip
    changes = IncidentChanges()
    tracker.observe(trigger, changes)
    tracker.observe(recovery, changes)
    assert recovery.incident_id == trigger.incident_id != ""
    (incident,) = changes.incidents.values()
    assert incident.status is IncidentStatus.RESOLVED
    assert len(tracker) == 0


def test_the_next_cycle_of_the_same_alert_is_the_same_alert() -> None:
    """A new $ALERT_CYCLE_KEY after a recovery: still the same monitor and group (a flap)."""
    template = recommended_template()
    (first,) = parse(render_datadog(template))
    (again,) = parse(render_datadog(template, ALERT_CYCLE_KEY="0000aaaa1111bbbb2222cccc3333dddd"))
    assert again.fingerprint == first.fingerprint


@pytest.mark.parametrize(
    "body",
    [{"monitor_id": 1234, "scopes": ["host:web-1", "env:prod"]},
     {"monitor_id": "1234", "scopes": "env:prod, host:web-1"},
     {"alert_id": "1234", "alert_scope": "env:prod,host:web-1"}],
)  # fmt: skip
def test_monitor_id_and_scopes_name_the_same_alert_as_alert_id_and_scope(body: Any) -> None:
    (trigger,) = parse({**body, "title": "[Triggered on {host:web-1}] Disk full on web-1"})
    (recovery,) = parse({**body, "title": "[Recovered] Disk full"})
    assert trigger.fingerprint == recovery.fingerprint == "datadog:1234/env:prod,host:web-1"
    assert recovery.status is Status.RESOLVED


def test_the_cycle_key_serves_when_no_monitor_is_named() -> None:
    (event,) = parse({"alert_cycle_key": "9bd4", "title": "[Triggered] x"})
    assert event.fingerprint == "datadog:9bd4"


@pytest.mark.parametrize(
    ("transition", "status", "severity"),
    [("Triggered", Status.FIRING, "error"), ("Re-Triggered", Status.FIRING, "error"),
     ("Warn", Status.FIRING, "warning"), ("No Data", Status.FIRING, "warning"),
     ("Re-No Data", Status.FIRING, "warning"), ("Renotify", Status.FIRING, "error"),
     ("Recovered", Status.RESOLVED, "info"), ("Warn Recovered", Status.RESOLVED, "info")],
)  # fmt: skip
def test_transitions(transition: str, status: Status, severity: str) -> None:
    (event,) = parse({"alert_id": "1234", "alert_transition": transition})
    assert (event.status, event.severity) == (status, severity)


@pytest.mark.parametrize(
    ("title", "kind", "status"),
    [("[P1] [Triggered on {host:web-1}] Disk full", "Disk full", Status.FIRING),
     ("[Recovered on {host:web-1}] Disk full", "Disk full", Status.RESOLVED),
     ("[Re-Triggered] [P3] Disk full", "Disk full", Status.FIRING),
     ("[prod] Disk full", "[prod] Disk full", Status.FIRING),
     ("[Recovered] [prod] Disk full", "[prod] Disk full", Status.RESOLVED),
     ("Disk full [Recovered]", "Disk full [Recovered]", Status.FIRING),
     ("[Triggered", "[Triggered", Status.FIRING)],
)  # fmt: skip
def test_the_title_prefix_says_the_transition(title: str, kind: str, status: Status) -> None:
    (event,) = parse({"title": title})
    assert (event.kind, event.status) == (kind, status)


def test_alert_type_success_without_a_transition_is_a_recovery() -> None:
    (event,) = parse({"alert_id": "1234", "alert_type": "success"})
    assert event.status is Status.RESOLVED


def test_without_a_cycle_key_the_monitor_and_its_group_identify_the_alert() -> None:
    (web1,) = parse({"alert_id": 1234, "alert_scope": "host:web-1", "title": "[Triggered] x"})
    (web2,) = parse({"alert_id": 1234, "alert_scope": "host:web-2", "title": "[Triggered] x"})
    (bare,) = parse({"alert_id": 1234, "title": "x"})
    assert web1.fingerprint == "datadog:1234/host:web-1"
    assert web2.fingerprint == "datadog:1234/host:web-2"
    assert bare.fingerprint == "datadog:1234"


@pytest.mark.parametrize(
    ("tags", "labels"),
    [("env:prod,service:checkout", {"env": "prod", "service": "checkout"}),
     (" env:prod , team : payments ,", {"env": "prod", "team": "payments"}),
     ("url:http://x:8080/a,flag", {"url": "http://x:8080/a", "flag": ""}),
     (["env:prod", "role:db"], {"env": "prod", "role": "db"}),
     ("", {}), ([], {}), (None, {}), (",,:x", {})],
)  # fmt: skip
def test_tags_become_labels(tags: Any, labels: dict[str, str]) -> None:
    assert parse_tags(tags, "tags") == labels


@pytest.mark.parametrize(
    ("body", "message"),
    [([], "body: expected an object, got list"),
     ({}, "body: not a Datadog alert: none of title, alert_title, alert_id, monitor_id, alert_cycle_key"),
     ({"body": "x", "id": "1"},
      "body: not a Datadog alert: none of title, alert_title, alert_id, monitor_id, alert_cycle_key"),
     ({"title": ["x"]}, "title: expected text, got list"),
     ({"title": "x", "tags": {"env": "prod"}}, "tags: expected a list, got object"),
     ({"title": "x", "tags": ["env:prod", 3]}, "tags[1]: expected text, got number"),
     ({"title": "x", "hostname": True}, "hostname: expected text, got boolean"),
     ({"monitor_id": 1, "scopes": {"a": 1}}, "scopes: expected a list, got object"),
     ({"monitor_id": 1, "scopes": ["a:b", 2]}, "scopes[1]: expected text, got number")],
)  # fmt: skip
def test_bad_shapes_name_where(body: Any, message: str) -> None:
    with pytest.raises(WebhookError) as caught:
        parse(body)
    assert str(caught.value) == message
