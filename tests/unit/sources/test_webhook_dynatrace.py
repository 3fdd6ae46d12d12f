"""Dynatrace's custom integration → Events: the documented templates rendered as Dynatrace does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from webhook_payloads import DYNATRACE_TEMPLATE, render_dynatrace

from opsmedic.model import Status
from opsmedic.sources.webhooks import WebhookError
from opsmedic.sources.webhooks.dynatrace import parse

DOC = Path(__file__).parents[3] / "docs" / "webhooks.md"


def recommended_template() -> str:
    """The payload docs/webhooks.md tells Dynatrace users to paste."""
    block = re.search(r"```json\n(\{\"PID\"[^`]*)```", DOC.read_text())
    assert block is not None
    return block.group(1)


def test_it_maps_the_reference_template() -> None:
    (event,) = parse(render_dynatrace(DYNATRACE_TEMPLATE))
    assert event.source == "dynatrace"
    assert event.status is Status.FIRING
    assert event.kind == "Response time degradation"
    assert event.resource == "checkout"
    assert event.host == "web-1"
    assert event.labels == {"service": "checkout", "host": "web-1"}
    assert event.fingerprint == "dynatrace:-5281474176838153521_1706790000000V2"
    assert event.payload["Problem URL"].startswith("https://abc123.live.dynatrace.com/")


def test_it_maps_the_recommended_template() -> None:
    (event,) = parse(render_dynatrace(recommended_template()))
    assert event.labels == {"env": "prod", "team": "payments", "service": "checkout",
                            "host": "web-1", "impact": "SERVICE", "severity": "PERFORMANCE"}  # fmt: skip
    assert event.severity == "warning"


def test_resolved_keeps_the_fingerprint() -> None:
    (opened,) = parse(render_dynatrace(DYNATRACE_TEMPLATE))
    (done,) = parse(render_dynatrace(DYNATRACE_TEMPLATE, State="RESOLVED"))
    assert done.status is Status.RESOLVED
    assert done.fingerprint == opened.fingerprint


@pytest.mark.parametrize(
    ("state", "status"),
    [("OPEN", Status.FIRING), ("open", Status.FIRING), ("RESOLVED", Status.RESOLVED),
     ("MERGED", Status.RESOLVED)],
)  # fmt: skip
def test_states(state: str, status: Status) -> None:
    (event,) = parse({"State": state, "PID": "1"})
    assert event.status is status


@pytest.mark.parametrize(
    ("severity", "level"),
    [("AVAILABILITY", "critical"), ("ERROR", "error"), ("PERFORMANCE", "warning"),
     ("RESOURCE_CONTENTION", "warning"), ("CUSTOM_ALERT", "warning"), ("INFO", "info"),
     ("SOMETHING_NEW", "info")],
)  # fmt: skip
def test_problem_severity(severity: str, level: str) -> None:
    (event,) = parse({"State": "OPEN", "ProblemSeverity": severity})
    assert event.severity == level


def test_several_entities_of_a_type_are_listed_and_the_first_is_the_target() -> None:
    entities = [{"type": "HOST", "name": "web-1"}, {"type": "HOST", "name": "web-2"},
                {"type": "PROCESS_GROUP_INSTANCE", "name": "nginx"},
                {"type": "HOST", "entity": "HOST-0A1B"}, {"type": "", "name": "nameless"}]  # fmt: skip
    (event,) = parse(render_dynatrace(DYNATRACE_TEMPLATE, ImpactedEntities=json.dumps(entities)))
    assert event.labels == {"host": "web-1,web-2,HOST-0A1B", "process_group_instance": "nginx"}
    assert (event.host, event.resource) == ("web-1", "nginx")


def test_the_problem_id_identifies_it_when_there_is_no_pid() -> None:
    (event,) = parse({"State": "OPEN", "ProblemID": "P-2401123"})
    assert event.fingerprint == "dynatrace:P-2401123"


@pytest.mark.parametrize(
    ("body", "message"),
    [([], "body: expected an object, got list"),
     ({"PID": "1"}, "State: missing"),
     ({"State": "CLOSED"}, "State: expected one of open, resolved, merged, got 'CLOSED'"),
     ({"State": "OPEN", "ImpactedEntities": '[{"type":"HOST","name":"web-1"}]'},
      "ImpactedEntities: expected a list, got string"
      " (leave {ImpactedEntities} unquoted in the template)"),
     ({"State": "OPEN", "ImpactedEntities": {"type": "HOST"}},
      "ImpactedEntities: expected a list, got object"),
     ({"State": "OPEN", "ImpactedEntities": [{"type": "HOST", "name": "a"}, "web-2"]},
      "ImpactedEntities[1]: expected an object, got string"),
     ({"State": "OPEN", "ImpactedEntities": [{"type": "HOST", "name": ["a"]}]},
      "ImpactedEntities[0].name: expected text, got list"),
     ({"State": "OPEN", "Tags": {"env": "prod"}}, "Tags: expected a list, got object")],
)  # fmt: skip
def test_bad_shapes_name_where(body: Any, message: str) -> None:
    with pytest.raises(WebhookError) as caught:
        parse(body)
    assert str(caught.value) == message
