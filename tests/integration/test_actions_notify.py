"""notify through Apprise to a real SMTP server: delivery, secret URLs kept secret, failures."""

from __future__ import annotations

import logging
import uuid
from email.message import Message
from typing import Any

import pytest
import structlog

from opsmedic.actions import notify, notify_targets
from opsmedic.clock import SystemClock
from opsmedic.errors import RetryableError
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext
from services import SMTPServer, free_port

SECRET_ENV = "OPSMEDIC_TEST_NOTIFY_URL"

# Apprise's e-mail plugin imports the standard imghdr module, deprecated on Python 3.11+.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


def mail_url(smtp: SMTPServer, to: str = "oncall@example.com", port: int | None = None) -> str:
    """An Apprise mailto:// URL (plain SMTP, no TLS) for the test server."""
    return f"mailto://{smtp.host}:{port or smtp.port}?from=opsmedic@example.com&to={to}"


def make_ctx(targets: dict[str, Any], dry_run: bool = False) -> ActionContext:
    return ActionContext(
        clock=SystemClock(),
        log=structlog.get_logger(),
        settings=notify_targets.NotifyTargets.model_validate(targets),
        dry_run=dry_run,
        run_id="run-1",
        rule="rule-1",
    )


async def send(ctx: ActionContext, **raw: Any) -> Outcome:
    return await notify.run(notify.Params.model_validate(raw), ctx)


def delivered(smtp: SMTPServer, subject: str) -> list[Message]:
    return [m for m in smtp.messages() if m["Subject"] == subject]


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


@pytest.fixture
def apprise_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything Apprise and urllib3 log, down to Apprise's TRACE level."""
    caplog.set_level(1, logger="apprise")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    return caplog


async def test_a_notification_arrives_with_its_title_and_body(smtp_server: SMTPServer) -> None:
    """Sent to a named target, the mail is in the server's mailbox with subject and text."""
    subject = f"disk full on web-1 {uuid.uuid4().hex[:8]}"
    ctx = make_ctx({"oncall": {"urls": [mail_url(smtp_server)]}})
    outcome = await send(ctx, to="oncall", title=subject, body="/var/log/app at 91%\nsecond line")
    assert outcome.ok, outcome.message
    assert outcome.details == {
        "targets": ["oncall"],
        "urls": 1,
        "services": ["mailto"],
        "sent": 1,
        "failed": 0,
    }
    [message] = delivered(smtp_server, subject)
    assert message["To"] == "oncall@example.com"
    assert "/var/log/app at 91%\nsecond line" in text_of(message)


async def test_inline_urls_are_used_alongside_targets(smtp_server: SMTPServer) -> None:
    """urls: adds recipients that need no secret, with or without named targets."""
    subject = f"inline {uuid.uuid4().hex[:8]}"
    ctx = make_ctx({"oncall": {"urls": [mail_url(smtp_server)]}})
    extra = mail_url(smtp_server, to="team@example.com")
    outcome = await send(ctx, to=["oncall"], urls=[extra], title=subject, body="b")
    assert outcome.ok
    assert outcome.details["sent"] == 2
    assert sorted(m["To"] for m in delivered(smtp_server, subject)) == [
        "oncall@example.com",
        "team@example.com",
    ]


async def test_a_secret_url_is_read_from_the_environment_and_never_shown(
    smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch, apprise_logs: pytest.LogCaptureFixture
) -> None:
    """url_secrets are revealed only to send: the mail arrives, and neither the outcome nor
    any log line holds the URL or its private parts."""
    private = f"private-{uuid.uuid4().hex[:8]}@example.com"
    monkeypatch.setenv(SECRET_ENV, mail_url(smtp_server, to=private))
    subject = f"secret {uuid.uuid4().hex[:8]}"
    ctx = make_ctx({"pager": {"url_secrets": [{"env": SECRET_ENV}]}})
    outcome = await send(ctx, to="pager", title=subject, body="b")
    assert outcome.ok, outcome.message
    [message] = delivered(smtp_server, subject)
    assert message["To"] == private
    assert private not in repr(outcome)
    assert apprise_logs.records, "Apprise logged nothing: the check below would prove nothing"
    assert private not in apprise_logs.text


async def test_a_secret_password_is_masked_even_when_sending_fails(
    smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch, apprise_logs: pytest.LogCaptureFixture
) -> None:
    """The test server offers no login, so this fails: the error, the outcome and Apprise's
    own trace logs (which print the password) must not show it."""
    password = f"Sup3r-{uuid.uuid4().hex[:8]}"
    url = f"mailto://bob:{password}@{smtp_server.host}:{smtp_server.port}?from=a@example.com&to=b@example.com"
    monkeypatch.setenv(SECRET_ENV, url)
    ctx = make_ctx({"pager": {"url_secrets": [{"env": SECRET_ENV}]}})
    with pytest.raises(RetryableError) as info:
        await send(ctx, to="pager", title="t", body="b")
    assert password not in str(info.value)
    # Apprise's trace logs print the parsed URL, password included: masked, so "***".
    assert any("***" in r.getMessage() for r in apprise_logs.records)
    assert password not in apprise_logs.text
    assert not [f for f in logging.getLogger("apprise").filters if isinstance(f, notify.Redactor)]


async def test_an_unset_secret_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A url_secret whose variable is missing: failed, naming target and variable."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    ctx = make_ctx({"pager": {"url_secrets": [{"env": SECRET_ENV}]}})
    outcome = await send(ctx, to="pager", title="t")
    assert not outcome.ok
    assert outcome.message == f"notify target pager: environment variable {SECRET_ENV} is not set"


async def test_an_unknown_target_fails_with_close_matches(smtp_server: SMTPServer) -> None:
    """A misspelt target name fails, suggesting the configured one."""
    ctx = make_ctx({"oncall": {"urls": [mail_url(smtp_server)]}, "chat": {"urls": []}})
    outcome = await send(ctx, to=["on-call"], title="t")
    assert not outcome.ok
    assert outcome.message == "unknown notify target 'on-call' (did you mean oncall?)"
    nothing = await send(make_ctx({}), to="oncall", title="t")
    assert nothing.message == "no notify targets configured"


async def test_a_down_smtp_server_is_retryable(smtp_server: SMTPServer) -> None:
    """Every URL failed, so nobody got it: RetryableError (a retry sends no duplicate)."""
    ctx = make_ctx({"oncall": {"urls": [mail_url(smtp_server, port=free_port())]}})
    with pytest.raises(RetryableError, match="all 1 URLs failed"):
        await send(ctx, to="oncall", title="t", body="b")


async def test_a_partial_failure_is_failed_but_not_retried(smtp_server: SMTPServer) -> None:
    """One URL delivered, one failed: failed outcome, no retry (it would duplicate the first)."""
    subject = f"partial {uuid.uuid4().hex[:8]}"
    urls = [mail_url(smtp_server), mail_url(smtp_server, port=free_port())]
    outcome = await send(make_ctx({"oncall": {"urls": urls}}), to="oncall", title=subject, body="b")
    assert not outcome.ok
    assert outcome.message == "notify: 1 of 2 URLs failed"
    assert outcome.details["sent"] == 1
    assert len(delivered(smtp_server, subject)) == 1


async def test_an_invalid_secret_url_is_reported_without_its_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A url_secret Apprise cannot parse is named by position, never by content."""
    monkeypatch.setenv(SECRET_ENV, "nosuchscheme://t0ps3cret-value/x")
    ctx = make_ctx({"pager": {"url_secrets": [{"env": SECRET_ENV}]}})
    outcome = await send(ctx, to="pager", title="t")
    assert not outcome.ok
    assert outcome.message == "not a valid Apprise URL: secret URL #1"
    assert "t0ps3cret" not in repr(outcome)


async def test_dry_run_sends_nothing(smtp_server: SMTPServer) -> None:
    """In dry-run the outcome counts the URLs and no mail is sent."""
    subject = f"dry {uuid.uuid4().hex[:8]}"
    ctx = make_ctx({"oncall": {"urls": [mail_url(smtp_server)]}}, dry_run=True)
    outcome = await send(ctx, to="oncall", title=subject)
    assert outcome.ok
    assert outcome.message == "dry-run: would notify 1 URLs"
    assert delivered(smtp_server, subject) == []
