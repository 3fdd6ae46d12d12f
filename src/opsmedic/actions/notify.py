"""The notify action: a message to named targets from config, sent through Apprise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsmedic.actions.notify_targets import SETTINGS, NotifyTarget
from opsmedic.config.located import unknown_name
from opsmedic.config.refs import ConfigRef
from opsmedic.errors import RetryableError
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec
from opsmedic.urls import TemplatedUrl

# Loggers that may print a URL while Apprise sends: Apprise's own, and urllib3 under the
# requests that most Apprise services use (it logs request paths, where tokens often sit).
_LOGGERS = ("apprise", "urllib3.connectionpool")
_MASK = "***"
_SHORTEST_MASKED = 4  # shorter URL parts (ports, "yes") say nothing and are everywhere


class Params(BaseModel):
    """`to` names targets in config `notify`; `urls` adds Apprise URLs that hold no secret."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    to: Annotated[list[str], ConfigRef("notify")] = Field(default_factory=list)
    title: str = ""
    body: str = ""
    urls: list[TemplatedUrl] = Field(default_factory=list)
    type: Literal["info", "success", "warning", "failure"] = "info"

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("urls")
    @classmethod
    def _no_inline_password(cls, urls: list[str]) -> list[str]:
        for i, url in enumerate(urls):
            if "://" not in url:
                raise ValueError(f"urls[{i}] is not an Apprise URL (scheme://...)")
            if urlsplit(url).password:
                raise ValueError(
                    f"urls[{i}] carries a password: put it in config notify.<name>.url_secrets"
                )
        return urls

    @model_validator(mode="after")
    def _has_recipient_and_text(self) -> Params:
        if not self.to and not self.urls:
            raise ValueError("give to: (a target from config notify) or urls:")
        if not self.title and not self.body:
            raise ValueError("give a title or a body")
        return self


class Redactor(logging.Filter):
    """Masks secret URLs, and each of their parts, in log records and in our own messages."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        fragments = {part for url in secrets for part in _url_parts(url)}
        # Longest first, so a whole URL is masked before its pieces.
        self._fragments = sorted(fragments, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for fragment in self._fragments:
            text = text.replace(fragment, _MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._fragments:
            return True
        message = record.getMessage()
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True

    @contextlib.contextmanager
    def attached(self) -> Iterator[Redactor]:
        """Filter the send-time loggers for as long as the block runs."""
        loggers = [logging.getLogger(name) for name in _LOGGERS]
        for logger in loggers:
            logger.addFilter(self)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeFilter(self)


def _url_parts(url: str) -> set[str]:
    parts = {url}
    try:
        split = urlsplit(url)
        pieces = [split.username, split.password, split.hostname, split.fragment]
        pieces += split.path.split("/")
        pieces += [value for _, value in parse_qsl(split.query)]
    except ValueError:  # a URL too broken to split is masked whole, which is enough
        return parts
    for piece in pieces:
        if piece and len(piece) >= _SHORTEST_MASKED:
            parts.update({piece, unquote(piece)})
    return parts


def _scheme(url: str) -> str:
    return url.partition("://")[0]


async def run(params: Params, ctx: ActionContext) -> Outcome:
    known: dict[str, NotifyTarget] = ctx.settings.root
    unknown = [name for name in params.to if name not in known]
    if unknown:
        why = [unknown_name("notify target", n, known) for n in unknown] if known else []
        message = "; ".join(why) or "no notify targets configured"
        return Outcome(ok=False, message=message, details={"targets": params.to})
    targets = [known[name] for name in params.to]
    public = [url for target in targets for url in target.urls] + params.urls
    hidden = [(name, secret) for name in params.to for secret in known[name].url_secrets]
    details: dict[str, Any] = {"targets": params.to, "urls": len(public) + len(hidden)}
    if ctx.dry_run:
        details["dry_run"] = True
        return Outcome(
            ok=True, message=f"dry-run: would notify {details['urls']} URLs", details=details
        )
    secret_urls: list[str] = []
    for name, secret in hidden:
        try:
            secret_urls.append(secret.reveal())
        except (ValueError, OSError) as exc:  # the message names the variable, not a value
            return Outcome(ok=False, message=f"notify target {name}: {exc}", details=details)
    details["services"] = sorted({_scheme(url) for url in public + secret_urls})
    redactor = Redactor(secret_urls)
    with redactor.attached():
        try:
            return await _send(params, public, secret_urls, details)
        except RetryableError:
            raise
        except Exception as exc:  # Apprise raises little, but its text could hold a URL
            message = redactor.redact(f"notify failed: {type(exc).__name__}: {exc}")
            return Outcome(ok=False, message=message, details=details)


async def _send(
    params: Params, public: list[str], secret_urls: list[str], details: dict[str, Any]
) -> Outcome:
    import apprise  # imported here: only a notify that really sends needs it (≈40 ms, 3 MiB)

    sender = apprise.Apprise(asset=apprise.AppriseAsset(app_id="opsmedic", app_desc="opsmedic"))
    invalid = [f"{url!r}" for url in public if not sender.add(url)]
    invalid += [f"secret URL #{i + 1}" for i, url in enumerate(secret_urls) if not sender.add(url)]
    if invalid:
        message = f"not a valid Apprise URL: {', '.join(invalid)}"
        return Outcome(ok=False, message=message, details=details)
    kwargs: dict[str, Any] = {
        "body": params.body or params.title,
        "title": params.title,
        "notify_type": params.type,
        "body_format": apprise.NotifyFormat.TEXT,
    }
    notify_async = getattr(sender, "async_notify", None)
    if notify_async is not None:
        result = await notify_async(**kwargs)
    else:  # older Apprise: its blocking notify() goes to a thread, not onto the event loop
        result = await asyncio.to_thread(sender.notify, **kwargs)
    total = len(public) + len(secret_urls)
    # Apprise ≥ 2 returns a result with counts; older versions a bare bool.
    sent = getattr(result, "success_count", total if result else 0)
    details.update(sent=sent, failed=total - sent)
    if result:
        return Outcome(ok=True, message=f"notified {sent} of {total} URLs", details=details)
    if sent == 0:
        # Nothing went out, so nobody gets it twice: worth a retry (server down, 5xx).
        raise RetryableError(f"notify: all {total} URLs failed")
    return Outcome(
        ok=False, message=f"notify: {total - sent} of {total} URLs failed", details=details
    )


ACTION = ActionSpec(
    name="notify",
    params=Params,
    run=run,
    summary="send a title and body to notify targets (Apprise URLs: mail, chat, pager, …)",
    settings=SETTINGS,
)
