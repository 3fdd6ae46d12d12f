"""annotate against fake Opsgenie, PagerDuty and Dynatrace APIs and a webhook receiver, over
real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from action_context import make_action_context
from opsmedic.actions import annotate
from opsmedic.actions.annotate_accounts import AnnotateConfig
from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config
from opsmedic.engine.loop import Engine
from opsmedic.errors import RetryableError
from opsmedic.model import Event, Outcome, Run, RunState
from opsmedic.plugins import ActionContext
from opsmedic.rules.loader import load_rules
from opsmedic.runtime import build_registry
from opsmedic.sources.webhooks import dynatrace as dynatrace_webhook
from opsmedic.store import Store
from saas_fakes import FakeDynatrace, FakeOpsgenie, FakePagerDuty, FakeWebhook, serving
from services import free_port

OG_ENV, PD_ENV, HOOK_ENV = "OPSMEDIC_TEST_OG_KEY", "OPSMEDIC_TEST_PD_TOKEN", "OPSMEDIC_TEST_HOOK"
DT_ENV = "OPSMEDIC_TEST_DT_TOKEN"
PID = "-5281474176838153521_1706790000000V2"  # a problem id as Dynatrace's {PID} gives it


@pytest.fixture(scope="module")
def opsgenie() -> Iterator[FakeOpsgenie]:
    with serving(FakeOpsgenie()) as fake:
        fake.add_alert("7ec3b1d2-0c4f-4e5a", alias="checkout-5xx", tiny_id="42")
        yield fake


@pytest.fixture(scope="module")
def pagerduty() -> Iterator[FakePagerDuty]:
    with serving(FakePagerDuty()) as fake:
        fake.add_incident("Q2LGK8PLB8Z9TF")
        yield fake


@pytest.fixture(scope="module")
def dynatrace() -> Iterator[FakeDynatrace]:
    with serving(FakeDynatrace()) as fake:
        fake.add_problem(PID)
        yield fake


@pytest.fixture(scope="module")
def webhook() -> Iterator[FakeWebhook]:
    with serving(FakeWebhook(token="hook-t0ken")) as fake:
        yield fake


@pytest.fixture
def annotate_config(
    opsgenie: FakeOpsgenie,
    pagerduty: FakePagerDuty,
    dynatrace: FakeDynatrace,
    webhook: FakeWebhook,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """The `annotate` config section pointing at the fakes, keys in the environment."""
    monkeypatch.setenv(OG_ENV, opsgenie.api_key)
    monkeypatch.setenv(PD_ENV, pagerduty.token)
    monkeypatch.setenv(HOOK_ENV, "Bearer hook-t0ken")
    monkeypatch.setenv(DT_ENV, dynatrace.token)
    return {
        "opsgenie": {"api_url": opsgenie.url, "api_key": {"env": OG_ENV}},
        "pagerduty": {
            "api_url": pagerduty.url + "/",
            "token": {"env": PD_ENV},
            "from_email": "oncall@example.com",
        },
        "dynatrace": {"api_url": dynatrace.url, "token": {"env": DT_ENV}},
        "webhooks": {
            "tracker": {
                "url": webhook.url + "/notes",
                "secret_headers": {"Authorization": {"env": HOOK_ENV}},
            }
        },
    }


@pytest.fixture
def ctx(annotate_config: dict[str, Any]) -> ActionContext:
    return make_action_context("annotate", annotate=annotate_config)


async def call(ctx: ActionContext, **raw: Any) -> Outcome:
    params = annotate.Params.model_validate(raw)
    return await annotate.run(params, ctx)


def notes_of(fake: FakeOpsgenie, alias: str) -> list[str]:
    return [n["note"] for a in fake.alerts if a.alias == alias for n in a.notes]


@pytest.mark.parametrize(
    ("identifier", "kind"),
    [("7ec3b1d2-0c4f-4e5a", "id"), ("checkout-5xx", "alias"), ("42", "tiny")],
)
async def test_an_opsgenie_note_is_posted_by_id_alias_or_tiny_id(
    ctx: ActionContext, opsgenie: FakeOpsgenie, identifier: str, kind: str
) -> None:
    """The documented call: GenieKey auth, identifierType, {note, user, source}; 202 is ok."""
    text = f"opsmedic rule-1 ran via {kind}"
    outcome = await call(ctx, opsgenie={"alert": identifier, "identifier_type": kind}, note=text)
    assert outcome.ok, outcome.message
    assert outcome.message == f"note posted to opsgenie alert {identifier!r}: 202 Accepted"
    sent = opsgenie.requests[-1]
    assert sent.query == {"identifierType": [kind]}
    assert sent.json() == {"note": text, "user": "opsmedic", "source": "opsmedic"}
    assert notes_of(opsgenie, "checkout-5xx")[-1] == text
    assert outcome.details["destination"] == "opsgenie"
    assert outcome.details["alert"] == identifier
    assert outcome.details["status"] == 202
    assert outcome.details["remote_id"] in outcome.output  # the reply's requestId


async def test_a_pagerduty_note_is_posted_on_the_incident(
    ctx: ActionContext, pagerduty: FakePagerDuty
) -> None:
    """Token auth, From and Accept headers, {"note": {"content"}}; 201 gives the note's id."""
    outcome = await call(ctx, pagerduty={"incident": "Q2LGK8PLB8Z9TF"}, note="restarted worker")
    assert outcome.ok, outcome.message
    (note,) = pagerduty.incidents["Q2LGK8PLB8Z9TF"]
    assert note["content"] == "restarted worker"
    assert outcome.details["remote_id"] == note["id"]
    assert outcome.details["status"] == 201
    assert pagerduty.requests[-1].path == "/incidents/Q2LGK8PLB8Z9TF/notes"


async def test_a_dynatrace_comment_is_posted_on_the_problem(
    ctx: ActionContext, dynatrace: FakeDynatrace
) -> None:
    """Problems API v2: Api-Token auth, {"message", "context"}; 201 gives the comment's id."""
    outcome = await call(ctx, dynatrace={"problem": PID}, note="restarted checkout")
    assert outcome.ok, outcome.message
    assert outcome.message == f"note posted to dynatrace problem {PID!r}: 201 Created"
    sent = dynatrace.requests[-1]
    assert sent.path == f"/api/v2/problems/{PID}/comments"
    assert sent.headers["authorization"] == f"Api-Token {dynatrace.token}"
    assert sent.json() == {"message": "restarted checkout", "context": "opsmedic"}
    comment = dynatrace.problems[PID][-1]
    assert comment["content"] == "restarted checkout"
    assert outcome.details["remote_id"] == comment["id"]
    assert (outcome.details["destination"], outcome.details["problem"]) == ("dynatrace", PID)
    assert dynatrace.token not in repr(outcome)


async def test_dynatrace_refusals_fail_with_its_reason(
    annotate_config: dict[str, Any], dynatrace: FakeDynatrace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown problem (404) and a wrong token (401), in Dynatrace's ErrorEnvelope."""
    ctx = make_action_context("annotate", annotate=annotate_config)
    outcome = await call(ctx, dynatrace={"problem": "-1_1V2"}, note="x")
    assert not outcome.ok
    assert outcome.message.endswith("404 Not Found: The problem -1_1V2 could not be found.")
    monkeypatch.setenv(DT_ENV, "dt0c01.WRONG")
    outcome = await call(make_action_context("annotate", annotate=annotate_config),
                         dynatrace={"problem": PID}, note="x")  # fmt: skip
    assert not outcome.ok
    assert outcome.message.endswith("401 Unauthorized: Missing authorization parameter.")
    assert "dt0c01.WRONG" not in repr(outcome)


async def test_a_dynatrace_problem_id_stays_one_path_segment(
    ctx: ActionContext, dynatrace: FakeDynatrace
) -> None:
    comments = dynatrace.add_problem("../../v1/x")
    outcome = await call(ctx, dynatrace={"problem": "../../v1/x"}, note="contained")
    assert outcome.ok, outcome.message
    assert dynatrace.requests[-1].path == "/api/v2/problems/..%2F..%2Fv1%2Fx/comments"
    assert [c["content"] for c in comments] == ["contained"]


async def test_a_plain_url_gets_the_note_with_the_run_it_came_from(
    ctx: ActionContext, webhook: FakeWebhook
) -> None:
    """Generic: POST JSON {source, run_id, rule, target, note}; any 2xx is ok."""
    open_hook = FakeWebhook()
    with serving(open_hook):
        outcome = await call(ctx, url=f"{open_hook.url}/hook", note="archived 3 files")
    assert outcome.ok, outcome.message
    assert open_hook.requests[-1].json() == {
        "source": "opsmedic", "run_id": "run-1", "rule": "rule-1", "target": "web-1",
        "note": "archived 3 files",
    }  # fmt: skip
    assert outcome.details["remote_id"] == "hook-1"


async def test_a_named_webhook_sends_its_secret_header(
    ctx: ActionContext, webhook: FakeWebhook
) -> None:
    """A receiver that needs a token is named in config; the token never shows."""
    outcome = await call(ctx, webhook="tracker", note="done")
    assert outcome.ok, outcome.message
    assert webhook.requests[-1].headers["authorization"] == "Bearer hook-t0ken"
    assert webhook.requests[-1].path == "/notes"
    assert "hook-t0ken" not in repr(outcome)


async def test_an_unknown_webhook_name_fails_with_close_matches(ctx: ActionContext) -> None:
    outcome = await call(ctx, webhook="trackr", note="done")
    assert not outcome.ok
    assert outcome.message == "unknown annotate webhook 'trackr' (did you mean tracker?)"


async def test_a_wrong_key_fails_with_the_reason_and_no_key(
    annotate_config: dict[str, Any], opsgenie: FakeOpsgenie, monkeypatch: pytest.MonkeyPatch
) -> None:
    """401 is a failed step (not retried) that says why; neither key appears anywhere."""
    monkeypatch.setenv(OG_ENV, "wrong-k3y-value")
    outcome = await call(make_action_context("annotate", annotate=annotate_config),
                         opsgenie={"alert": "checkout-5xx", "identifier_type": "alias"},
                         note="x")  # fmt: skip
    assert not outcome.ok
    assert outcome.message == (
        "opsgenie alert 'checkout-5xx' refused the note: 401 Unauthorized: Could not authenticate"
    )
    assert opsgenie.requests[-1].headers["authorization"] == "GenieKey wrong-k3y-value"
    assert "wrong-k3y-value" not in repr(outcome)
    assert opsgenie.api_key not in repr(outcome)


async def test_a_wrong_pagerduty_token_and_an_unknown_user_fail_with_the_reason(
    annotate_config: dict[str, Any], pagerduty: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PD_ENV, "not-the-t0ken")
    outcome = await call(make_action_context("annotate", annotate=annotate_config),
                         pagerduty={"incident": "Q2LGK8PLB8Z9TF"}, note="x")  # fmt: skip
    assert not outcome.ok
    assert outcome.message.endswith("401 Unauthorized: Authentication failed")
    monkeypatch.setenv(PD_ENV, pagerduty.token)
    annotate_config["pagerduty"]["from_email"] = "stranger@example.com"
    outcome = await call(make_action_context("annotate", annotate=annotate_config),
                         pagerduty={"incident": "Q2LGK8PLB8Z9TF"}, note="x")  # fmt: skip
    assert not outcome.ok
    assert "400 Bad Request: Invalid Input Provided; You must specify the email" in outcome.message


async def test_an_unknown_alert_or_incident_is_a_failure_not_a_retry(ctx: ActionContext) -> None:
    """404: the alert is not there; retrying would not make it appear."""
    outcome = await call(ctx, opsgenie={"alert": "no-such-alert"}, note="x")
    assert not outcome.ok
    assert outcome.details["status"] == 404
    assert outcome.message.endswith("404 Not Found: Alert with id [no-such-alert] does not exist")
    outcome = await call(ctx, pagerduty={"incident": "PNOSUCH"}, note="x")
    assert not outcome.ok
    assert outcome.message.endswith("404 Not Found: Not Found")


async def test_a_503_is_retryable_and_the_retry_posts_one_note(
    ctx: ActionContext, pagerduty: FakePagerDuty
) -> None:
    """503: the service did not take it, so the engine may retry; one note in the end."""
    notes = pagerduty.add_incident("PRETRY1")
    pagerduty.fail_next(503)
    with pytest.raises(RetryableError, match="503 Service Unavailable"):
        await call(ctx, pagerduty={"incident": "PRETRY1"}, note="once")
    outcome = await call(ctx, pagerduty={"incident": "PRETRY1"}, note="once")
    assert outcome.ok
    assert [n["content"] for n in notes] == ["once"]


async def test_a_429_is_retried_after_the_wait_it_asks_for(
    ctx: ActionContext, opsgenie: FakeOpsgenie, pagerduty: FakePagerDuty
) -> None:
    """Retry-After (Opsgenie, any API) or ratelimit-reset (PagerDuty) inside the budget."""
    opsgenie.fail_next(429, headers={"Retry-After": "0", "X-RateLimit-State": "THROTTLED"})
    with pytest.raises(RetryableError, match=r"429 Too Many Requests \(waited 0s as asked\)"):
        await call(ctx, opsgenie={"alert": "42", "identifier_type": "tiny"}, note="x")
    pagerduty.fail_next(429, headers={"ratelimit-reset": "0", "ratelimit-remaining": "0"})
    with pytest.raises(RetryableError, match="429"):
        await call(ctx, pagerduty={"incident": "Q2LGK8PLB8Z9TF"}, note="x")


async def test_a_429_asking_longer_than_the_step_budget_fails_at_once(
    ctx: ActionContext, opsgenie: FakeOpsgenie
) -> None:
    """An hour's wait does not fit a 60 s step: a failed step that says so, no sleeping."""
    opsgenie.fail_next(429, headers={"Retry-After": "3600"})
    outcome = await call(ctx, opsgenie={"alert": "42", "identifier_type": "tiny"}, note="x")
    assert not outcome.ok
    assert "asked to wait 3600s, more than the" in outcome.message
    assert outcome.details["retry_after"] == 3600


async def test_nothing_listening_is_retryable(annotate_config: dict[str, Any]) -> None:
    annotate_config["opsgenie"]["api_url"] = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RetryableError, match="cannot connect"):
        await call(make_action_context("annotate", annotate=annotate_config),
                   opsgenie={"alert": "42"}, note="x")  # fmt: skip


async def test_dry_run_posts_nothing_and_shows_the_note(
    annotate_config: dict[str, Any], opsgenie: FakeOpsgenie, pagerduty: FakePagerDuty
) -> None:
    ctx = make_action_context("annotate", dry_run=True, annotate=annotate_config)
    before = len(opsgenie.requests), len(pagerduty.requests)
    outcome = await call(ctx, opsgenie={"alert": "checkout-5xx", "identifier_type": "alias"},
                         note="would be posted")  # fmt: skip
    assert outcome.ok
    assert outcome.message == (
        "dry-run: would post a 15-character note to opsgenie alert 'checkout-5xx'"
    )
    assert outcome.output == "would be posted"
    assert outcome.details["dry_run"] is True
    assert (len(opsgenie.requests), len(pagerduty.requests)) == before


@pytest.mark.parametrize(
    ("alert_id", "raw_segment"),
    [
        ("..", "%2E%2E"),
        ("../../v1/x", "..%2F..%2Fv1%2Fx"),
        ("a/b?identifierType=alias#frag", "a%2Fb%3FidentifierType%3Dalias%23frag"),
    ],
)
async def test_an_identifier_cannot_change_the_path(
    ctx: ActionContext, opsgenie: FakeOpsgenie, alert_id: str, raw_segment: str
) -> None:
    """Slashes, dot segments, ? and # are encoded: the id stays one segment of the same path."""
    alert = opsgenie.add_alert(alert_id, alias=f"alias-{raw_segment}", tiny_id=raw_segment)
    outcome = await call(ctx, opsgenie={"alert": alert_id}, note="contained")
    assert outcome.ok, outcome.message
    sent = opsgenie.requests[-1]
    assert sent.path == f"/v2/alerts/{raw_segment}/notes"
    assert sent.query == {"identifierType": ["id"]}
    assert [n["note"] for n in alert.notes] == ["contained"]


async def test_a_huge_note_is_cut_to_the_limit_keeping_head_and_tail(
    ctx: ActionContext, opsgenie: FakeOpsgenie
) -> None:
    """Opsgenie takes at most 25,000 characters: the middle goes, with a marker saying so."""
    text = "HEAD" + "é" * 40_000 + "TAIL"
    outcome = await call(ctx, opsgenie={"alert": "checkout-5xx", "identifier_type": "alias"},
                         note=text)  # fmt: skip
    assert outcome.ok, outcome.message
    posted = notes_of(opsgenie, "checkout-5xx")[-1]
    assert len(posted) <= annotate.NOTE_LIMIT
    assert posted.startswith("HEAD") and posted.endswith("TAIL")
    cut = outcome.details["note_cut_chars"]
    assert f"…[{cut} characters cut]…" in posted
    assert len(posted) - len(f"…[{cut} characters cut]…") + cut == len(text)


async def test_an_unset_key_fails_naming_the_config_entry_and_sends_nothing(
    annotate_config: dict[str, Any], opsgenie: FakeOpsgenie, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OG_ENV)
    before = len(opsgenie.requests)
    outcome = await call(make_action_context("annotate", annotate=annotate_config),
                         opsgenie={"alert": "42"}, note="x")  # fmt: skip
    assert not outcome.ok
    assert outcome.message == f"annotate.opsgenie.api_key: environment variable {OG_ENV} is not set"
    assert len(opsgenie.requests) == before


async def test_a_destination_missing_from_config_fails_clearly() -> None:
    outcome = await call(make_action_context("annotate"), pagerduty={"incident": "P1"}, note="x")
    assert not outcome.ok
    assert outcome.message == (
        "annotate.pagerduty is not configured (token, from_email) in opsmedic.yaml"
    )
    outcome = await call(make_action_context("annotate"), dynatrace={"problem": PID}, note="x")
    assert (
        outcome.message == "annotate.dynatrace is not configured (api_url, token) in opsmedic.yaml"
    )


async def test_keys_never_reach_the_logs(
    ctx: ActionContext,
    opsgenie: FakeOpsgenie,
    pagerduty: FakePagerDuty,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpx and httpcore log requests at DEBUG: URLs and methods, never our headers."""
    caplog.set_level(logging.DEBUG)
    assert (await call(ctx, opsgenie={"alert": "42", "identifier_type": "tiny"}, note="x")).ok
    assert (await call(ctx, pagerduty={"incident": "Q2LGK8PLB8Z9TF"}, note="x")).ok
    assert "/v2/alerts/42/notes" in caplog.text  # the logs were captured
    assert opsgenie.api_key not in caplog.text
    assert pagerduty.token not in caplog.text


RESTART_AND_ANNOTATE = """
- name: restart-checkout
  when: {source: SOURCE}
  do:
    - run_command: {argv: [echo, restarted]}
    - annotate:
        DESTINATION
        note: "opsmedic {{ rule }}: {{ steps[0].message }} (run {{ run_id }})"
"""


async def run_rule(tmp_path: Path, annotate_config: dict[str, Any], source: str,
                   destination: str, event: Event) -> Run:  # fmt: skip
    """The rule above for `source`, annotating `destination`, run by an engine on `event`."""
    rules = RESTART_AND_ANNOTATE.replace("SOURCE", source).replace("DESTINATION", destination)
    (tmp_path / "rules.yaml").write_text(rules)
    registry = build_registry(load_entry_points=False)
    settings = {"annotate": AnnotateConfig.model_validate(annotate_config)}
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    store.migrate()
    engine = Engine(ruleset=load_rules(tmp_path / "rules.yaml", registry), registry=registry,
                    config=Config(), settings=settings, probe_once=None, store=store,
                    clock=SystemClock())  # fmt: skip
    await engine.start()
    try:
        (accepted,) = await engine.submit([event])
        await engine.drain()
        return store.get_run(accepted.run_ids[0])
    finally:
        await engine.close()
        store.close()


async def test_a_rule_posts_its_first_steps_message_next_to_the_alert(
    tmp_path: Path, annotate_config: dict[str, Any], opsgenie: FakeOpsgenie
) -> None:
    """End to end: an Opsgenie event, a run_command step, then annotate with its message."""
    payload = {"action": "Create", "alert": {"alertId": "7ec3b1d2-0c4f-4e5a"}}
    run = await run_rule(tmp_path, annotate_config, "opsgenie",
                         'opsgenie: {alert: "{{ event.payload.alert.alertId }}"}',
                         Event(source="opsgenie", payload=payload))  # fmt: skip
    assert run.state is RunState.SUCCEEDED, run.message
    assert notes_of(opsgenie, "checkout-5xx")[-1] == (
        f"opsmedic restart-checkout: exit 0 (run {run.id})"
    )
    assert run.steps[1].details["remote_id"]


async def test_a_rule_posts_status_back_to_the_dynatrace_problem(
    tmp_path: Path, annotate_config: dict[str, Any], dynatrace: FakeDynatrace
) -> None:
    """End to end from Dynatrace's documented custom-integration payload: the problem's
    {PID} comes in with the webhook, and the run's outcome goes back as a comment on it."""
    body = {"PID": PID, "ProblemID": "P-2401123", "ProblemTitle": "Response time degradation",
            "ImpactedEntities": [{"type": "SERVICE", "name": "checkout",
                                  "entity": "SERVICE-F5D7459A6CD9842B"}],
            "Problem URL": "https://abc123.live.dynatrace.com/#problems", "State": "OPEN"}  # fmt: skip
    (event,) = dynatrace_webhook.parse(body)
    run = await run_rule(tmp_path, annotate_config, "dynatrace",
                         'dynatrace: {problem: "{{ event.payload.PID }}"}', event)  # fmt: skip
    assert run.state is RunState.SUCCEEDED, run.message
    assert dynatrace.problems[PID][-1]["content"] == (
        f"opsmedic restart-checkout: exit 0 (run {run.id})"
    )
