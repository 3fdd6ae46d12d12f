"""One sample of a verification check: a request opsmedic sends, or a Prometheus instant query."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from opsmedic.config.services import HttpCheck, PrometheusCheck, VerifyCheck
from opsmedic.transport.http import http_client
from opsmedic.transport.prometheus import QueryFailed, instant_values

if TYPE_CHECKING:
    import httpx


class Verdict(StrEnum):
    GOOD = "good"
    BAD = "bad"
    # The measurement itself failed (the query could not be run or read): never a pass.
    ERRORED = "errored"
    NO_DATA = "no_data"  # the measurement worked and found nothing to judge


# Characters of a bad answer's body kept, from its end (a traceback's last frames).
BODY_KEPT = 4096


@dataclass(frozen=True, slots=True)
class Sample:
    verdict: Verdict
    value: float | None
    message: str
    # The tail of a bad answer's body: where a traceback shows what broke (changes.py).
    body: str = ""


Sampler = Callable[[VerifyCheck], Awaitable[Sample]]


async def sample(check: VerifyCheck) -> Sample:
    """One sample of `check`, with a client of the one factory (transport/http.py)."""
    # A client per sample: samples are seconds apart, and a connection kept between them
    # would hide a reload that breaks new connections.
    async with http_client(verify_tls=True, timeout=5.0) as client:
        if check.http is not None:
            return await _http(check.http, client)
        if check.prometheus is not None:
            return await _prometheus(check.prometheus, client)
    raise ValueError(f"check {check.name!r} has no source")  # the config refuses this


async def _http(check: HttpCheck, client: httpx.AsyncClient) -> Sample:
    import httpx

    t0 = time.perf_counter()
    try:
        response = await client.request(check.method, check.url, timeout=check.timeout)
    except httpx.HTTPError as exc:
        # The service did not answer: what its users get too, so a bad sample, not a
        # failed measurement (that would let a dead service pass on `on_no_data: pass`).
        return Sample(Verdict.BAD, None, f"no answer: {type(exc).__name__}: {exc}"[:300])
    latency = time.perf_counter() - t0
    if response.status_code not in check.expect_status:
        body = response.text[-BODY_KEPT:]
        return Sample(Verdict.BAD, latency, f"status {response.status_code}", body)
    if check.max_latency is not None and latency > check.max_latency:
        return Sample(Verdict.BAD, latency, f"{latency * 1000:.0f} ms > {check.max_latency:g}s")
    return Sample(Verdict.GOOD, latency, f"status {response.status_code}")


async def _prometheus(check: PrometheusCheck, client: httpx.AsyncClient) -> Sample:
    """The worst series of the query's instant vector (or its scalar) against the thresholds."""
    try:
        found = await instant_values(client, check.url, check.query, wait=check.timeout)
    except QueryFailed as exc:
        return Sample(Verdict.ERRORED, None, str(exc))
    values = [v for v in found if not math.isnan(v)]
    if not values:
        return Sample(Verdict.NO_DATA, None, "the query returned no series")
    high, low = max(values), min(values)
    if check.max is not None and high > check.max:
        return Sample(Verdict.BAD, high, f"{high:g} > max {check.max:g}")
    if check.min is not None and low < check.min:
        return Sample(Verdict.BAD, low, f"{low:g} < min {check.min:g}")
    return Sample(Verdict.GOOD, high, "within thresholds")
