"""The http_request action: one HTTP call with httpx; the status decides, transient errors retry."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsmedic.actions.http_exchange import RETRY_STATUS, ExchangeFailed, exchange
from opsmedic.config.types import HttpMethod, HttpUrlText, PositiveDuration, Secret
from opsmedic.errors import RetryableError
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec
from opsmedic.urls import URL_CONFINED


class Params(BaseModel):
    """One request; `json` and `body` are exclusive; `secret_headers` read from env or file."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    method: HttpMethod = "GET"
    url: Annotated[HttpUrlText, URL_CONFINED]
    headers: dict[str, str] = Field(default_factory=dict)
    secret_headers: dict[str, Secret] = Field(
        default_factory=dict, description="headers carrying a token, e.g. Authorization"
    )
    # `json` would shadow BaseModel.json, so the field has another name and the alias.
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    timeout: PositiveDuration | None = None
    ok_status: list[int] | None = Field(None, min_length=1, description="default: any 2xx")
    verify_tls: bool = True

    @model_validator(mode="after")
    def _one_body(self) -> Params:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give json or body, not both")
        return self


async def run(params: Params, ctx: ActionContext) -> Outcome:
    shown = _without_userinfo(params.url)
    details: dict[str, Any] = {"method": params.method, "url": shown}
    what = f"{params.method} {shown}"
    if ctx.dry_run:
        details["dry_run"] = True
        return Outcome(ok=True, message=f"dry-run: would send {what}", details=details)
    headers = dict(params.headers)
    for name, secret in params.secret_headers.items():
        try:
            headers[name] = secret.reveal()
        except (ValueError, OSError) as exc:
            return Outcome(ok=False, message=f"secret header {name}: {exc}", details=details)
    try:
        reply = await exchange(
            params.method,
            params.url,
            what=what,
            clock=ctx.clock,
            time_limit=params.timeout if params.timeout is not None else ctx.default_timeout,
            output_limit=ctx.output_limit,
            headers=headers,
            json_body=params.json_body,
            content=params.body.encode() if params.body is not None else None,
            verify_tls=params.verify_tls,
        )
    except ExchangeFailed as exc:
        if exc.maybe_applied:
            details["maybe_applied"] = True
        return Outcome(ok=False, message=str(exc), details=details)
    details.update(
        status=reply.status, elapsed_ms=reply.elapsed_ms, response_bytes=reply.body.total
    )
    if reply.status in RETRY_STATUS and (
        params.ok_status is None or reply.status not in params.ok_status
    ):
        raise RetryableError(f"{what}: {reply.status_line}")
    ok = 200 <= reply.status < 300 if params.ok_status is None else reply.status in params.ok_status
    message = f"{what}: {reply.status_line}"
    return Outcome(ok=ok, message=message, details=details, output=reply.body.text())


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


ACTION = ActionSpec(
    name="http_request",
    params=Params,
    run=run,
    summary="send one HTTP request; 2xx (or ok_status) is success, 502/503/504 are retried",
)
