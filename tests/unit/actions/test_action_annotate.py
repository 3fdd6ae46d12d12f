"""Tests of annotate's parameters, config section and pure helpers (no network)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from opsmedic.actions import annotate
from opsmedic.actions.annotate_accounts import AnnotateConfig
from opsmedic.actions.http_exchange import Reply
from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.engine.executor import Executor
from opsmedic.errors import ConfigError
from opsmedic.model import Event, Run, RunState
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.transport.output import OutputBuffer


def _error(model: Any, raw: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(raw)
    return str(info.value)


def test_it_is_registered_and_not_idempotent() -> None:
    """A re-run after a crash would add a second note, so the engine must not re-run it."""
    spec = build_registry(load_entry_points=False).action("annotate")
    assert spec is annotate.ACTION
    assert not spec.idempotent and not spec.destructive
    assert spec.params.model_config.get("extra") == "forbid"


def test_it_accepts_each_destination_and_reads_numbers_as_text() -> None:
    """A rendered tinyId or incident number is an int; it is used as its text."""
    params = annotate.Params.model_validate({"opsgenie": {"alert": 42}, "note": "n"})
    assert params.opsgenie is not None
    assert (params.opsgenie.alert, params.opsgenie.identifier_type) == ("42", "id")
    pd = annotate.Params.model_validate({"pagerduty": {"incident": "PX1"}, "note": "n"})
    assert pd.pagerduty is not None and pd.pagerduty.incident == "PX1"
    dt = annotate.Params.model_validate({"dynatrace": {"problem": "-52_17V2"}, "note": "n"})
    assert dt.dynatrace is not None and dt.dynatrace.problem == "-52_17V2"
    assert annotate.Params.model_validate({"url": "https://h.example/x", "note": "n"}).url
    assert annotate.Params.model_validate({"webhook": "tracker", "note": "n"}).webhook


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"note": "n"}, "exactly one of opsgenie, pagerduty, dynatrace, url and webhook"),
        ({"opsgenie": {"alert": "a"}, "url": "https://h.example/", "note": "n"},
         "exactly one of opsgenie"),
        ({"opsgenie": {"alert": ""}, "note": "n"}, "opsgenie.alert\n  Value error, is empty"),
        ({"pagerduty": {"incident": "  "}, "note": "n"}, "pagerduty.incident\n  Value error"),
        ({"dynatrace": {"problem": ""}, "note": "n"}, "dynatrace.problem\n  Value error, is empty"),
        ({"dynatrace": {"problem": "p", "token": "t"}, "note": "n"}, "Extra inputs"),
        ({"opsgenie": {"alert": "x" * 513}, "note": "n"}, "at most 512 characters"),
        ({"opsgenie": {"alert": "a", "identifier_type": "name"}, "note": "n"},
         "identifier_type"),
        ({"opsgenie": {"alert": "a"}}, "note\n  Field required"),
        ({"opsgenie": {"alert": "a"}, "note": "\n"}, "note\n  Value error, is empty"),
        ({"url": "ftp://h.example/", "note": "n"}, "http:// or https://"),
        ({"url": "https://tok3n@h.example/", "note": "n"}, "no user or password in the URL"),
        ({"opsgenie": {"alert": "a", "api_key": "k"}, "note": "n"}, "Extra inputs"),
        ({"opsgenie": {"alert": "a"}, "note": "n", "api_url": "https://x/"}, "Extra inputs"),
    ],
)  # fmt: skip
def test_it_refuses_bad_params_naming_the_parameter(raw: dict[str, Any], why: str) -> None:
    """An empty rendered id, two destinations, a key in a rule: refused with the reason."""
    assert why in _error(annotate.Params, raw)


def test_the_config_section_validates_and_normalises() -> None:
    """Defaults are the public APIs; a trailing slash goes; keys are secrets, never text."""
    config = AnnotateConfig.model_validate(
        {
            "opsgenie": {"api_url": "https://api.eu.opsgenie.com/", "api_key": {"env": "OG"}},
            "pagerduty": {"token": {"file": "/run/pd"}, "from_email": "oncall@example.com"},
            "webhooks": {"t": {"url": "https://h.example/n", "secret_headers": {
                "Authorization": {"env": "HOOK"}}}},
            "dynatrace": {"api_url": "https://ag.example:9999/e/abc123/", "token": {"env": "DT"}},
        }
    )  # fmt: skip
    assert config.dynatrace is not None
    assert config.dynatrace.api_url == "https://ag.example:9999/e/abc123"
    assert config.opsgenie is not None and config.pagerduty is not None
    assert config.opsgenie.api_url == "https://api.eu.opsgenie.com"
    assert config.pagerduty.api_url == "https://api.pagerduty.com"
    assert AnnotateConfig().opsgenie is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"opsgenie": {"api_key": "inline-key"}}, "api_key"),
        ({"opsgenie": {"api_key": {"env": "K"}, "api_url": "https://x/?a=1"}}, "no query"),
        ({"opsgenie": {"api_key": {"env": "K"}, "api_url": "https://u:p@x/"}}, "no password"),
        ({"opsgenie": {"api_key": {"env": "K"}, "api_url": "https://u@x/"}}, "no user"),
        ({"opsgenie": {"api_key": {"env": "K"}, "user": "u" * 101}}, "at most 100"),
        ({"pagerduty": {"token": {"env": "T"}}}, "from_email\n  Field required"),
        ({"dynatrace": {"token": {"env": "T"}}}, "dynatrace.api_url\n  Field required"),
        ({"dynatrace": {"api_url": "https://x.live.dynatrace.com", "token": "dt0c01.x"}}, "token"),
        ({"pagerduty": {"token": {"env": "T"}, "from_email": "oncall"}}, "from_email"),
        ({"webhooks": {"t": {"url": "hooks.example/x"}}}, "http:// or https://"),
        ({"opsgenei": {}}, "Extra inputs"),
    ],
)
def test_the_config_section_refuses_bad_input(raw: dict[str, Any], why: str) -> None:
    assert why in _error(AnnotateConfig, raw)


def test_a_rule_with_two_destinations_fails_to_load_where_it_is(tmp_path: Path) -> None:
    """Checked when the rules load, with file and line; templates in ids are fine there."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- name: ok\n  when: {source: opsgenie}\n  do:\n"
        "    - annotate: {opsgenie: {alert: '{{ event.payload.alert.alertId }}'}, note: n}\n"
        "- name: bad\n  when: {source: opsgenie}\n  do:\n"
        "    - annotate: {opsgenie: {alert: a}, pagerduty: {incident: b}, note: n}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_rules(rules, build_registry(load_entry_points=False))
    (problem,) = info.value.problems
    assert problem.line == 8
    assert "exactly one of opsgenie" in problem.message


async def test_an_id_that_renders_empty_fails_the_step_naming_the_parameter(
    tmp_path: Path,
) -> None:
    """`alertId: ""` in the payload: the step fails before anything is sent, and says where."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- name: r\n  when: {source: opsgenie}\n  do:\n"
        "    - annotate: {opsgenie: {alert: '{{ event.payload.alert.alertId }}'}, note: n}\n"
    )
    registry = build_registry(load_entry_points=False)
    (rule,) = load_rules(rules, registry)
    event = Event(source="opsgenie", payload={"alert": {"alertId": ""}})
    run = Run(rule="r", event_id=event.id, target=event.target, fingerprint=event.fingerprint,
              actions=["annotate"])  # fmt: skip
    executor = Executor(registry, Config(), SystemClock(), structlog.get_logger(), settings={},
                        probe_once=None)  # fmt: skip
    await executor.execute(run, rule, event)
    (step,) = run.steps
    assert step.state is RunState.FAILED
    assert step.message == ("bad parameters: opsgenie.alert: Value error, is empty (did its "
                            "template render an empty value?)")  # fmt: skip


@pytest.mark.parametrize(
    ("identifier", "segment"),
    [
        ("7ec3b1d2-0c4f", "7ec3b1d2-0c4f"),
        ("checkout.5xx", "checkout.5xx"),
        ("a/b", "a%2Fb"),
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("../x", "..%2Fx"),
        ("q?x=1#f", "q%3Fx%3D1%23f"),
        ("sp ace%", "sp%20ace%25"),
    ],
)
def test_an_identifier_becomes_exactly_one_path_segment(identifier: str, segment: str) -> None:
    assert annotate.path_segment(identifier) == segment


def test_a_note_within_the_limit_is_kept_whole() -> None:
    assert annotate.truncate("x" * 100, 100) == ("x" * 100, 0)


@pytest.mark.parametrize("length", [101, 1_000, 123_456])
def test_a_long_note_is_cut_in_the_middle_to_the_limit(length: int) -> None:
    note = "H" + "m" * (length - 2) + "T"
    cut_note, cut = annotate.truncate(note, 100)
    assert len(cut_note) <= 100
    assert cut_note.startswith("Hmm") and cut_note.endswith("mmT")
    marker = f"…[{cut} characters cut]…"
    assert marker in cut_note
    assert len(cut_note) - len(marker) + cut == length


def _reply(**headers: str) -> Reply:
    return Reply(429, "Too Many Requests", headers, OutputBuffer(256), 1.0)


def test_the_wait_a_429_asks_for_is_read_from_its_headers() -> None:
    """Retry-After as seconds or as a date; PagerDuty's ratelimit-reset; nothing: no wait."""
    now = 1_800_000_000.0
    later = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert annotate.retry_after(_reply(**{"retry-after": "12"}), now) == 12
    assert annotate.retry_after(_reply(**{"retry-after": later}), now) == pytest.approx(30)
    assert annotate.retry_after(_reply(**{"ratelimit-reset": "20"}), now) == 20
    assert annotate.retry_after(_reply(**{"retry-after": "soon"}), now) == 0
    assert annotate.retry_after(_reply(**{"retry-after": "-5"}), now) == 0
    assert annotate.retry_after(_reply(), now) == 0
