"""One HTTP exchange for actions (httpx): a bounded body, each failure sorted into retry or not."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsmedic.clock import Clock
from opsmedic.errors import RetryableError
from opsmedic.transport.http import http_client
from opsmedic.transport.output import OutputBuffer

# RFC 9110 §9.2.2: repeating these has the effect of sending once, so a request that may
# have reached the server can still be retried. POST and PATCH cannot.
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Gateway and overload answers: the request was not processed, so any method may retry.
RETRY_STATUS = frozenset({502, 503, 504})


class ExchangeFailed(Exception):
    """A failure a retry would not mend, or one where a retry could apply a request twice."""

    def __init__(self, message: str, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer: status, headers, the body (head and tail kept), and the time taken."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: OutputBuffer
    elapsed_ms: float

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}".strip()


async def exchange(
    method: str,
    url: str,
    *,
    what: str,
    clock: Clock,
    time_limit: float,
    output_limit: int,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    verify_tls: bool = True,
) -> Reply:
    """Send one request and read the reply within `time_limit` seconds; `what` starts errors.

    Raises RetryableError when the request was not sent (cannot connect) or, for an
    idempotent method, when it got no answer; raises ExchangeFailed otherwise. The status
    is the caller's to judge.
    """
    import httpx  # imported here: only a request that really goes out needs it

    body = OutputBuffer(output_limit)
    started = clock.monotonic()
    try:
        # httpx's timeout bounds each phase; the outer one bounds the whole exchange.
        async with (
            asyncio.timeout(time_limit),
            http_client(verify_tls=verify_tls, timeout=time_limit) as client,
        ):
            request = client.build_request(
                method, url, headers=dict(headers or {}), json=json_body, content=content
            )
            response = await client.send(request, stream=True)
            try:
                async for chunk in response.aiter_bytes():
                    body.feed(chunk)
            finally:
                await response.aclose()
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        if _tls_refused(exc):
            raise ExchangeFailed(f"{what}: TLS verification failed: {exc}") from None
        raise RetryableError(f"{what}: cannot connect: {exc or type(exc).__name__}") from None
    except httpx.UnsupportedProtocol as exc:
        raise ExchangeFailed(f"{what}: {exc}") from None
    except (httpx.TransportError, TimeoutError) as exc:
        reason = f"{type(exc).__name__} {exc}".strip()
        if method in IDEMPOTENT:
            raise RetryableError(f"{what}: {reason}") from None
        # The request may have been applied: repeating a POST could apply it twice.
        raise ExchangeFailed(f"{what}: {reason}; not retried", maybe_applied=True) from None
    return Reply(
        status=response.status_code,
        reason=response.reason_phrase,
        headers=response.headers,
        body=body,
        elapsed_ms=round((clock.monotonic() - started) * 1000, 1),
    )


def _tls_refused(exc: BaseException) -> bool:
    """True when a certificate failed verification: a retry would fail the same way."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
