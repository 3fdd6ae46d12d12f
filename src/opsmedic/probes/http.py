"""The `http` probe: one request; OK when status, body and latency meet expectations."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from opsmedic.config.types import Duration, HttpMethod, Strict
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext, ProbeSpec
from opsmedic.transport.http import http_client

if TYPE_CHECKING:
    import httpx

# Enough body for any health page or JSON status document; a probe must not buffer a
# download just because someone pointed it at a large file.
BODY_LIMIT = 1024 * 1024
EXCERPT = 512


class Params(Strict):
    url: str = Field(description="http:// or https:// URL to request")
    method: HttpMethod = "GET"
    expect_status: list[int] | None = Field(
        None, min_length=1, description="status codes that count as OK; omitted: any 2xx"
    )
    body_match: str | None = Field(None, description="regex that must match (search) the body")
    headers: dict[str, str] = Field(default_factory=dict)
    verify_tls: bool = True
    follow_redirects: bool = False
    max_latency: Duration | None = Field(None, description="slower responses count as failing")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        import httpx  # imported here, as in check: only configs with an http probe need it

        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: list[int] | None) -> list[int] | None:
        for code in value or ():
            if not 100 <= code <= 599:
                raise ValueError(f"not an HTTP status code: {code}")
        return value

    @field_validator("body_match")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return value


async def check(params: Params, ctx: ProbeContext) -> list[Observation]:
    """Request the URL once; the value is the latency in ms up to the end of the (capped) body."""
    import httpx

    # The runner owns the deadline (it cancels us); httpx's own limit sits just past it, a
    # backstop for callers without a runner that never races the runner's report.
    async with http_client(
        verify_tls=params.verify_tls,
        follow_redirects=params.follow_redirects,
        timeout=ctx.timeout + 1.0,
    ) as client:
        # Timed after the client exists: setting it up is our cost, not the service's.
        started = ctx.clock.monotonic()
        try:
            async with client.stream(params.method, params.url, headers=params.headers) as resp:
                body = await _read_capped(resp)
        except httpx.HTTPError as exc:
            return [_unreachable(params, exc)]
    latency_ms = round((ctx.clock.monotonic() - started) * 1000, 3)
    text = body.decode(resp.charset_encoding or "utf-8", errors="replace")

    problems: list[str] = []
    if not _status_ok(resp.status_code, params.expect_status):
        expected = ", ".join(map(str, params.expect_status or [])) or "2xx"
        problems.append(f"status {resp.status_code} (expected {expected})")
    if params.body_match is not None and not re.search(params.body_match, text):
        problems.append(f"body does not match {params.body_match!r}")
    if params.max_latency is not None and latency_ms > params.max_latency * 1000:
        problems.append(f"latency {latency_ms:.0f} ms over {params.max_latency * 1000:.0f} ms")

    details: dict[str, Any] = {
        "status_code": resp.status_code,
        "latency_ms": latency_ms,
        "method": params.method,
        "url": str(resp.url),
    }
    if problems:
        # The start of the body is what an on-call person wants to see first in a post-mortem.
        details["body_excerpt"] = text[:EXCERPT]
    message = "; ".join(problems) or f"{resp.status_code} in {latency_ms:.0f} ms"
    return [
        Observation(
            ok=not problems,
            value=latency_ms,
            message=message,
            resource=params.url,
            labels={"status_code": str(resp.status_code)},
            details=details,
        )
    ]


async def _read_capped(resp: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= BODY_LIMIT:
            break
    return b"".join(chunks)[:BODY_LIMIT]


def _status_ok(code: int, expected: list[int] | None) -> bool:
    return code in expected if expected else 200 <= code <= 299


def _unreachable(params: Params, exc: httpx.HTTPError) -> Observation:
    # No response at all (refused, DNS, TLS, reset): the service is down from where we stand —
    # a failing reading, not a broken probe.
    reason = str(exc) or type(exc).__name__
    return Observation(
        ok=False,
        value=None,
        message=f"request failed: {reason}",
        resource=params.url,
        labels={"error": type(exc).__name__},
        details={"method": params.method, "url": params.url, "error": reason},
    )


PROBE: ProbeSpec[Params] = ProbeSpec(
    name="http",
    params=Params,
    check=check,
    summary="request a URL; OK on expected status, matching body and latency under a bound",
)
