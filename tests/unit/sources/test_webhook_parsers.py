"""Every webhook parser: the registry, and fuzzing that proves WebhookError is all that escapes."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from webhook_payloads import VALID

from opsmedic.errors import PluginError, WebhookError
from opsmedic.model import Event, Status
from opsmedic.runtime import build_registry

REGISTRY = build_registry(load_entry_points=False)

SOURCES = ["alertmanager", "grafana", "datadog", "opsgenie", "pagerduty", "dynatrace"]


def _walk(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) inside a JSON value, nested ones included."""
    members = value.items() if isinstance(value, dict) else enumerate(value)
    for key, member in list(members):
        yield value, key
        if isinstance(member, dict | list):
            yield from _walk(member)


# The documented payloads' own keys and words, so random bodies reach past the first check.
def _keys(bodies: list[Any]) -> list[str]:
    return sorted({k for b in bodies for c, k in _walk(b) if isinstance(c, dict)})


WORDS = sorted({c[k] for bodies in VALID.values() for b in bodies for c, k in _walk(b)
                if isinstance(c[k], str)} | {"resolved", "ok", "no_data", "Close", "Delete",
                "Acknowledge", "resolve", "acknowledge", "incident.resolved", "RESOLVED",
                "[Recovered] x", "Recovered", "HOST", "SERVICE", "web-1:9100", "a:b,c"})  # fmt: skip
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
           | st.sampled_from(WORDS))  # fmt: skip


def json_values(keys: list[str], max_leaves: int) -> st.SearchStrategy[Any]:
    """Any JSON value; object keys are mostly the tool's own."""
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), inner, max_size=5)
        ),
        max_leaves=max_leaves,
    )


ANY_JSON = json_values(_keys([b for bodies in VALID.values() for b in bodies]), 12)
# Mostly objects at the top, as every tool sends; a list or a number fails at the first check.
BODIES = {
    source: st.dictionaries(st.sampled_from(_keys(VALID[source])),
                            json_values(_keys(VALID[source]), 6), max_size=6) | ANY_JSON
    for source in VALID
}  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, source: str) -> Any:
    """A documented body of `source` with one member replaced by any JSON value, or removed."""
    body = copy.deepcopy(draw(st.sampled_from(VALID[source])))
    container, key = draw(st.sampled_from(list(_walk(body))))
    if isinstance(container, dict) and draw(st.booleans()):
        del container[key]
    else:
        container[key] = draw(ANY_JSON)
    return body


def check(source: str, body: Any) -> None:
    """Events that keep every promise of the Event vocabulary, or a located WebhookError."""
    error: WebhookError | None = None
    events: list[Event] = []
    try:
        events = REGISTRY.webhook(source).parse(body)
    except WebhookError as exc:
        error = exc
    if error is not None:
        assert error.problem and str(error).startswith(f"{error.where or 'body'}: ")
        return
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, Event)
        assert event.source == source
        assert event.status in (Status.FIRING, Status.RESOLVED)
        assert all(isinstance(f, str) for f in (event.kind, event.resource, event.host))
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in event.labels.items())
        assert event.severity in ("critical", "error", "warning", "info")
        assert isinstance(event.fingerprint, str) and event.fingerprint
        assert isinstance(event.time, float) and math.isfinite(event.time) and event.time > 0
        assert event.value is None or (
            isinstance(event.value, float) and math.isfinite(event.value)
        )
        assert isinstance(event.payload, dict)


def test_the_registry_holds_the_six_tools() -> None:
    assert sorted(REGISTRY.webhooks) == sorted(SOURCES)


@pytest.mark.parametrize("source", SOURCES)
def test_each_documented_body_gives_events_of_its_source(source: str) -> None:
    for body in VALID[source]:
        events = REGISTRY.webhook(source).parse(copy.deepcopy(body))
        assert events
        check(source, body)


KNOWN = "(known: alertmanager, datadog, dynatrace, grafana, opsgenie, pagerduty)"


@pytest.mark.parametrize(
    ("source", "message"),
    [("prometheus", f"unknown webhook 'prometheus' {KNOWN}"),
     ("pagerdutty", "unknown webhook 'pagerdutty' (did you mean pagerduty?)"),
     ("", f"unknown webhook '' {KNOWN}")],
)  # fmt: skip
def test_an_unknown_source_names_the_close_matches(source: str, message: str) -> None:
    with pytest.raises(PluginError) as caught:
        REGISTRY.webhook(source)
    assert str(caught.value) == message


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=1000, deadline=None)
@given(data=st.data())
def test_any_json_value_gives_events_or_a_webhook_error(source: str, data: st.DataObject) -> None:
    check(source, data.draw(BODIES[source]))


@pytest.mark.parametrize("source", SOURCES)
@settings(max_examples=1000, deadline=None)
@given(data=st.data())
def test_a_documented_body_with_one_member_changed_gives_events_or_a_webhook_error(
    source: str, data: st.DataObject
) -> None:
    check(source, data.draw(mutated(source)))
