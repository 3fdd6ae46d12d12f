"""Dynatrace's custom integration → Events: the documented templates rendered as Dynatrace does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from webhook_payloads import DYNATRACE_TEMPLATE, render_dynatrace

from opsmedic.errors import WebhookError
from opsmedic.model import Status
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


# Dynatrace's own example of a custom integration payload, placeholders as documented
# (https://docs.dynatrace.com/docs/analyze-explore-automate/notifications-and-alerting/
# problem-notifications/webhook-integration): {ProblemDetailsJSON} is the problem's details
# as JSON (the Problems API v1 shape, with `severityLevel`), unquoted like {ImpactedEntities}.
DOCUMENTED_EXAMPLE = r"""
{"ImpactedEntities": {ImpactedEntities},"ImpactedEntity": "{ImpactedEntity}","PID": "{PID}",
 "ProblemDetailsHTML": "{ProblemDetailsHTML}","ProblemDetailsJSON": {ProblemDetailsJSON},
 "ProblemID": "{ProblemID}","ProblemImpact": "{ProblemImpact}","ProblemTitle": "{ProblemTitle}",
 "Problem URL": "https://example.com","State": "{State}","Tags": "{Tags}"}
"""
DETAILS = {
    "id": "-5281474176838153521_1706790000000V2", "startTime": 1706790000000, "endTime": -1,
    "displayName": "P-2401123", "impactLevel": "SERVICE", "status": "OPEN",
    "severityLevel": "AVAILABILITY", "commentCount": 0, "tagsOfAffectedEntities": [],
    "hasRootCause": False,
}  # fmt: skip
EXAMPLE_VALUES = {"ImpactedEntity": "checkout", "ProblemDetailsHTML": "<p>down</p>",
                  "ProblemDetailsJSON": json.dumps(DETAILS)}  # fmt: skip


def test_without_problem_severity_the_details_severity_level_is_read() -> None:
    (event,) = parse(render_dynatrace(DOCUMENTED_EXAMPLE, **EXAMPLE_VALUES))
    assert event.severity == "critical"  # AVAILABILITY
    assert event.labels["severity"] == "AVAILABILITY"
    body = render_dynatrace(DOCUMENTED_EXAMPLE, **EXAMPLE_VALUES)
    body["ProblemDetails"] = body.pop("ProblemDetailsJSON")  # a template may name it so
    assert parse(body)[0].severity == "critical"
    body["ProblemSeverity"] = "PERFORMANCE"  # present: it wins
    assert parse(body)[0].severity == "warning"


def unfilled(template: str, *names: str, **values: str) -> Any:
    """The template rendered with `names` left as Dynatrace leaves an unknown placeholder."""
    left = {n: "{" + n + "}" for n in names}
    return render_dynatrace(template, **{**EXAMPLE_VALUES, **values, **left})


def test_an_unfilled_placeholder_is_missing_never_an_identity() -> None:
    a, b = (parse(unfilled(recommended_template(), "PID", "Tags", "ProblemSeverity",
                           "ProblemImpact", ProblemTitle=t))[0] for t in ("One", "Two"))  # fmt: skip
    # "{PID}" would have made every such problem one alert; ProblemID is the identity now.
    assert a.fingerprint == b.fingerprint == "dynatrace:P-2401123"
    assert "{Tags}" not in a.labels and "impact" not in a.labels and "severity" not in a.labels
    assert a.severity == "info"
    (none,) = parse(unfilled(recommended_template(), "PID", "ProblemID"))
    assert not none.fingerprint.startswith("dynatrace:")  # computed, not "dynatrace:{PID}"
    quoted = DOCUMENTED_EXAMPLE.replace("{ProblemDetailsJSON}", '"{ProblemDetailsJSON}"')
    (details,) = parse(unfilled(quoted, "ProblemDetailsJSON"))
    assert details.severity == "info"


def test_an_unfilled_state_is_refused_as_missing() -> None:
    with pytest.raises(WebhookError, match=r"^State: missing$"):
        parse(unfilled(recommended_template(), "State"))


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
