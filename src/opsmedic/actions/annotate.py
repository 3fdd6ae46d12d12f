"""Action `annotate`: post a note next to the alert (Opsgenie alert, PagerDuty incident,
Dynatrace problem, a URL)."""

from __future__ import annotations

import asyncio
import email.utils
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from opsmedic.actions import annotate_accounts
from opsmedic.actions.annotate_accounts import AnnotateConfig, NoCredentialsUrl
from opsmedic.actions.http_exchange import RETRY_STATUS, ExchangeFailed, Reply, exchange
from opsmedic.config.located import unknown_name
from opsmedic.config.refs import ConfigRef
from opsmedic.config.types import Secret, Strict
from opsmedic.errors import RetryableError
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec
from opsmedic.urls import URL_CONFINED

# Opsgenie's documented maximum for a note; PagerDuty documents none, so the same cap holds
# there and for webhooks: a note is a summary, the full output stays on the run.
NOTE_LIMIT = 25_000
_MASK = "***"
_PAGERDUTY_ACCEPT = "application/vnd.pagerduty+json;version=2"
A = TypeVar("A")  # an account section of the config


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty (did its template render an empty value?)")
    return value


# An alert or incident id as rendered from the event: one URL path segment once encoded.
Identifier = Annotated[str, Field(max_length=512), AfterValidator(_not_blank)]


class _Target(Strict):
    # A rendered number (PagerDuty's incident number, Opsgenie's tinyId) is its text.
    model_config = ConfigDict(coerce_numbers_to_str=True)


class OpsgenieTarget(_Target):
    alert: Identifier
    identifier_type: Literal["id", "alias", "tiny"] = "id"


class PagerDutyTarget(_Target):
    incident: Identifier


class DynatraceTarget(_Target):
    problem: Identifier = Field(description="the problem's id: `{{ event.payload.PID }}`")


class Params(_Target):
    """Exactly one destination, and the note; accounts and keys come from config `annotate`."""

    opsgenie: OpsgenieTarget | None = None
    pagerduty: PagerDutyTarget | None = None
    dynatrace: DynatraceTarget | None = None
    url: Annotated[NoCredentialsUrl, URL_CONFINED] | None = Field(
        None, description="a receiver that needs no credentials"
    )
    webhook: Annotated[str | None, ConfigRef("annotate.webhooks")] = Field(
        None, description="a receiver named in config annotate.webhooks"
    )
    note: Annotated[str, AfterValidator(_not_blank)]

    @model_validator(mode="after")
    def _one_destination(self) -> Params:
        given = [self.opsgenie, self.pagerduty, self.dynatrace, self.url, self.webhook]
        if sum(d is not None for d in given) != 1:
            raise ValueError("give exactly one of opsgenie, pagerduty, dynatrace, url and webhook")
        return self


@dataclass(slots=True)
class _Post:
    """One note as it will be sent; secrets are named here and only revealed to send."""

    where: str  # for messages: "opsgenie alert 'abc'"
    url: str
    body: dict[str, Any]
    details: dict[str, Any]
    # What in a 2xx reply identifies the note (or the request that will make it).
    remote_id: Callable[[Any], Any]
    headers: dict[str, str] = field(default_factory=dict)
    # header name → (value prefix, the secret, the config path that names it)
    secret_headers: dict[str, tuple[str, Secret, str]] = field(default_factory=dict)


class _Unusable(Exception):
    """The rule names a destination the config does not provide."""


async def run(params: Params, ctx: ActionContext) -> Outcome:
    note, cut = truncate(params.note, NOTE_LIMIT)
    try:
        post = _plan(params, note, ctx)
    except _Unusable as exc:
        return Outcome(ok=False, message=str(exc))
    post.details.update(url=post.url, note_chars=len(note), note_cut_chars=cut)
    if ctx.dry_run:
        post.details["dry_run"] = True
        message = f"dry-run: would post a {len(note)}-character note to {post.where}"
        return Outcome(ok=True, message=message, details=post.details, output=note)
    headers = dict(post.headers)
    revealed: list[str] = []
    for name, (prefix, secret, path) in post.secret_headers.items():
        try:
            value = secret.reveal()
        except (ValueError, OSError) as exc:  # the message names the variable or file only
            return Outcome(ok=False, message=f"{path}: {exc}", details=post.details)
        headers[name] = prefix + value
        revealed.append(value)
    outcome = await _send(post, headers, ctx)
    # Nothing here should echo a key, but an error body is the remote's text: mask anyway.
    outcome.message = _redact(outcome.message, revealed)
    outcome.output = _redact(outcome.output, revealed)
    return outcome


def _plan(params: Params, note: str, ctx: ActionContext) -> _Post:
    config: AnnotateConfig = ctx.settings
    if params.opsgenie is not None:
        return _opsgenie(params.opsgenie, note, config)
    if params.pagerduty is not None:
        return _pagerduty(params.pagerduty, note, config)
    if params.dynatrace is not None:
        return _dynatrace(params.dynatrace, note, config)
    body = {"source": "opsmedic", "run_id": ctx.run_id, "rule": ctx.rule,
            "target": ctx.target, "note": note}  # fmt: skip
    if params.url is not None:
        return _Post(params.url, params.url, body, {"destination": "url"}, _field("id"))
    assert params.webhook is not None
    hook = config.webhooks.get(params.webhook)
    if hook is None:
        raise _Unusable(unknown_name("annotate webhook", params.webhook, config.webhooks))
    secrets = {
        name: ("", secret, f"annotate.webhooks.{params.webhook}.secret_headers.{name}")
        for name, secret in hook.secret_headers.items()
    }
    details = {"destination": "webhook", "webhook": params.webhook}
    where = f"webhook {params.webhook}"
    return _Post(where, hook.url, body, details, _field("id"), secret_headers=secrets)


def _configured(account: A | None, name: str, needs: str) -> A:
    if account is None:
        raise _Unusable(f"annotate.{name} is not configured ({needs}) in opsmedic.yaml")
    return account


def _opsgenie(target: OpsgenieTarget, note: str, config: AnnotateConfig) -> _Post:
    account = _configured(config.opsgenie, "opsgenie", "api_key")
    path = f"/v2/alerts/{path_segment(target.alert)}/notes"
    return _Post(
        where=f"opsgenie alert {target.alert!r}",
        url=f"{account.api_url}{path}?identifierType={target.identifier_type}",
        body={"note": note, "user": account.user, "source": account.source},
        details={
            "destination": "opsgenie",
            "alert": target.alert,
            "identifier_type": target.identifier_type,
        },
        secret_headers={
            "Authorization": ("GenieKey ", account.api_key, "annotate.opsgenie.api_key")
        },
        # 202: accepted for processing; the request id is what Opsgenie's status API knows.
        remote_id=_field("requestId"),
    )


def _pagerduty(target: PagerDutyTarget, note: str, config: AnnotateConfig) -> _Post:
    account = _configured(config.pagerduty, "pagerduty", "token, from_email")
    return _Post(
        where=f"pagerduty incident {target.incident!r}",
        url=f"{account.api_url}/incidents/{path_segment(target.incident)}/notes",
        body={"note": {"content": note}},
        details={"destination": "pagerduty", "incident": target.incident},
        headers={"Accept": _PAGERDUTY_ACCEPT, "From": account.from_email},
        secret_headers={
            "Authorization": ("Token token=", account.token, "annotate.pagerduty.token")
        },
        remote_id=_pagerduty_note_id,
    )


def _dynatrace(target: DynatraceTarget, note: str, config: AnnotateConfig) -> _Post:
    """Problems API v2, "POST a comment": {message, context} → 201 with the comment."""
    account = _configured(config.dynatrace, "dynatrace", "api_url, token")
    return _Post(
        where=f"dynatrace problem {target.problem!r}",
        url=f"{account.api_url}/api/v2/problems/{path_segment(target.problem)}/comments",
        body={"message": note, "context": account.context},
        details={"destination": "dynatrace", "problem": target.problem},
        secret_headers={"Authorization": ("Api-Token ", account.token, "annotate.dynatrace.token")},
        remote_id=_field("id"),
    )


async def _send(post: _Post, headers: dict[str, str], ctx: ActionContext) -> Outcome:
    what = f"POST {post.url}"
    started = ctx.clock.monotonic()
    try:
        reply = await exchange("POST", post.url, what=what, clock=ctx.clock,
                               time_limit=ctx.timeout, headers=headers, json_body=post.body,
                               output_limit=ctx.output_limit)  # fmt: skip
    except ExchangeFailed as exc:
        if exc.maybe_applied:  # a second note is better than none, but not silently
            post.details["maybe_applied"] = True
        return Outcome(ok=False, message=str(exc), details=post.details)
    post.details.update(status=reply.status, elapsed_ms=reply.elapsed_ms)
    answer = _json(reply)
    output = reply.body.text()
    if 200 <= reply.status < 300:
        remote = post.remote_id(answer)
        if remote is not None:
            post.details["remote_id"] = remote
        message = f"note posted to {post.where}: {reply.status_line}"
        return Outcome(ok=True, message=message, details=post.details, output=output)
    if reply.status in RETRY_STATUS:
        raise RetryableError(f"{what}: {reply.status_line}")
    if reply.status == 429:
        wait = retry_after(reply, ctx.clock.now())
        left = ctx.timeout - (ctx.clock.monotonic() - started)
        if wait <= left:
            await asyncio.sleep(wait)
            raise RetryableError(f"{what}: {reply.status_line} (waited {wait:g}s as asked)")
        post.details["retry_after"] = wait
        message = (f"{post.where}: {reply.status_line}: asked to wait {wait:g}s, more than "
                   f"the {left:.0f}s left of the step's time budget")  # fmt: skip
        return Outcome(ok=False, message=message, details=post.details, output=output)
    message = f"{post.where} refused the note: {reply.status_line}"
    reason = _remote_reason(answer)
    if reason:
        message += f": {reason}"
    return Outcome(ok=False, message=message, details=post.details, output=output)


def truncate(note: str, limit: int) -> tuple[str, int]:
    """`note` within `limit` characters, head and tail kept around a marker; and how many cut."""
    if len(note) <= limit:
        return note, 0
    # The marker counts the whole note's length: never shorter than the count it will show.
    keep = limit - len(f"…[{len(note)} characters cut]…")
    head, tail = keep - keep // 2, keep // 2
    cut = len(note) - head - tail
    return f"{note[:head]}…[{cut} characters cut]…{note[len(note) - tail :]}", cut


def path_segment(identifier: str) -> str:
    """`identifier` as one URL path segment: `/`, `?`, `#` encoded; `.` and `..` too."""
    segment = quote(identifier, safe="")
    # Dot segments are unreserved, so quote() leaves them, and clients and servers resolve
    # them: `..` would climb out of /alerts/.
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def retry_after(reply: Reply, now: float) -> float:
    """Seconds a 429 asks to wait: Retry-After (seconds or a date), or PagerDuty's
    `ratelimit-reset`; 0 when the reply does not say."""
    for name in ("retry-after", "ratelimit-reset"):
        text = reply.headers.get(name, "").strip()
        if not text:
            continue
        if text.isdigit():
            return float(text)
        try:
            return max(0.0, email.utils.parsedate_to_datetime(text).timestamp() - now)
        except (TypeError, ValueError):
            continue
    return 0.0


def _json(reply: Reply) -> Any:
    if reply.body.cut:
        return None
    try:
        return json.loads(reply.body.text())
    except ValueError:
        return None


def _field(name: str) -> Callable[[Any], Any]:
    def get(reply: Any) -> Any:
        value = reply.get(name) if isinstance(reply, dict) else None
        return value if isinstance(value, str | int) and not isinstance(value, bool) else None

    return get


def _pagerduty_note_id(reply: Any) -> Any:
    return _field("id")(reply.get("note")) if isinstance(reply, dict) else None


def _remote_reason(answer: Any) -> str:
    """The error text of Opsgenie (`message`), PagerDuty (`error.message`, `error.errors`) or
    Dynatrace (`error.message`, `error.constraintViolations[].message`)."""
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error")
    if isinstance(error, dict):
        more = error.get("errors")
        violations = error.get("constraintViolations")
        parts = [error.get("message"), *(more if isinstance(more, list) else [])]
        if isinstance(violations, list):
            parts += [f"{v.get('path')}: {v.get('message')}" for v in violations
                      if isinstance(v, dict)]  # fmt: skip
        return "; ".join(str(p) for p in parts if p)[:500]
    message = answer.get("message")
    return str(message)[:500] if message else ""


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


ACTION: ActionSpec[Params] = ActionSpec(
    name="annotate",
    params=Params,
    run=run,
    summary="post a note on the alert: an Opsgenie alert, a PagerDuty incident, a Dynatrace "
    "problem or a URL",
    settings=annotate_accounts.SETTINGS,
)
