"""The http_request action: one HTTP call with httpx; the status decides, transient errors retry."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsmedic.actions.output import OutputBuffer
from opsmedic.config.types import HttpMethod, PositiveDuration, Secret
from opsmedic.errors import RetryableError
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext, ActionSpec

# RFC 9110 §9.2.2: repeating these has the effect of sending once, so a request that may
# have reached the server can still be retried. POST and PATCH cannot.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Gateway and overload answers: the request was not processed, so any method may retry.
_RETRY_STATUS = frozenset({502, 503, 504})


class Params(BaseModel):
    """One request; `json` and `body` are exclusive; `secret_headers` read from env or file."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    method: HttpMethod = "GET"
    url: str
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

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        if parts.password:
            raise ValueError("no password in the URL: use secret_headers (e.g. Authorization)")
        return url

    @model_validator(mode="after")
    def _one_body(self) -> Params:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give json or body, not both")
        return self


async def run(params: Params, ctx: ActionContext) -> Outcome:
    import httpx  # imported here: only a request that really goes out needs it

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
    timeout = params.timeout if params.timeout is not None else ctx.config.actions.timeout
    body = OutputBuffer(ctx.config.actions.output_limit)
    started = ctx.clock.monotonic()
    try:
        # httpx's timeout bounds each phase; the outer one bounds the whole exchange.
        async with (
            asyncio.timeout(timeout),
            httpx.AsyncClient(timeout=timeout, verify=params.verify_tls) as client,
        ):
            request = client.build_request(
                params.method,
                params.url,
                headers=headers,
                json=params.json_body,
                content=params.body.encode() if params.body is not None else None,
            )
            response = await client.send(request, stream=True)
            try:
                async for chunk in response.aiter_bytes():
                    body.feed(chunk)
            finally:
                await response.aclose()
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        if _tls_refused(exc):
            return Outcome(
                ok=False, message=f"{what}: TLS verification failed: {exc}", details=details
            )
        raise RetryableError(f"{what}: cannot connect: {exc or type(exc).__name__}") from None
    except httpx.UnsupportedProtocol as exc:
        return Outcome(ok=False, message=f"{what}: {exc}", details=details)
    except (httpx.TransportError, TimeoutError) as exc:
        reason = f"{type(exc).__name__} {exc}".strip()
        if params.method in _IDEMPOTENT:
            raise RetryableError(f"{what}: {reason}") from None
        # The request may have been applied: repeating a POST could apply it twice.
        details["maybe_applied"] = True
        return Outcome(ok=False, message=f"{what}: {reason}; not retried", details=details)
    details.update(
        status=response.status_code,
        elapsed_ms=round((ctx.clock.monotonic() - started) * 1000, 1),
        response_bytes=body.total,
    )
    status = f"{response.status_code} {response.reason_phrase}".strip()
    if response.status_code in _RETRY_STATUS and (
        params.ok_status is None or response.status_code not in params.ok_status
    ):
        raise RetryableError(f"{what}: {status}")
    if params.ok_status is None:
        ok = 200 <= response.status_code < 300
    else:
        ok = response.status_code in params.ok_status
    return Outcome(ok=ok, message=f"{what}: {status}", details=details, output=body.text())


def _tls_refused(exc: BaseException) -> bool:
    """True when a certificate failed verification: a retry would fail the same way."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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
