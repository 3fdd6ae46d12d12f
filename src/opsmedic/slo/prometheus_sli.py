"""Prometheus SLIs: each minute's bad and total requests read from Prometheus (the queries'
`{{.window}}` made `1m`, at the minute's end) and stored as that minute's samples; a query
refused, answering nothing, NaN, infinity or more than a count may be leaves the minute a gap,
never a good one."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from opsmedic.config.slos import WINDOW, PrometheusSli, SloConfig
from opsmedic.store.slo_rows import SloSampleTable
from opsmedic.transport.http import http_client
from opsmedic.transport.prometheus import QueryFailed, Unreachable, instant_values

if TYPE_CHECKING:
    import httpx

# A minute is read this long after it ended, so that its last scrape has landed; at start the
# last CATCH_UP_MIN minutes are read (Prometheus kept them; minutes stored stay as they are).
LAG_S = 30.0
CATCH_UP_MIN = 60
# The most requests a minute may count: the counts are 64-bit integers in the store, and the
# longest window (400 days, 576,000 minutes) of such minutes still sums within them.
MAX_COUNT = 10**12


def minute_query(query: str) -> str:
    """The query as evaluated at the end of each minute: its range is that minute."""
    return query.replace(WINDOW, "1m")


async def read_minute(
    client: httpx.AsyncClient, sli: PrometheusSli, minute: int
) -> tuple[int, int]:
    """(good, total) of the minute; QueryFailed when it is a gap (Unreachable: ask again).
    Prometheus extrapolates increase() to the range's edges, so counts are rounded to whole
    requests, and the bad (or good) ones kept within the total."""
    at = (minute + 1) * 60.0
    total = await _one(client, sli, sli.total, at)
    side = await _one(client, sli, sli.bad or sli.good or "", at)
    t = round(total)
    s = min(round(side), t)
    return (t - s, t) if sli.bad is not None else (s, t)


async def _one(client: httpx.AsyncClient, sli: PrometheusSli, query: str, at: float) -> float:
    values = await instant_values(client, sli.url, minute_query(query), wait=sli.timeout, at=at)
    if not values:
        raise QueryFailed(f"{query!r}: no series (empty vector)")
    if len(values) > 1:
        raise QueryFailed(f"{query!r}: {len(values)} series, sum() them into one")
    (value,) = values
    if math.isnan(value) or value < 0 or value == math.inf:
        raise QueryFailed(f"{query!r}: {value:g}, not a count")
    if value > MAX_COUNT:
        raise QueryFailed(f"{query!r}: {value:g}, more than a minute's count may be "
                          f"({MAX_COUNT:.0e})")  # fmt: skip
    return value


class PrometheusSlis:
    """The SLOs with a Prometheus SLI, read minute by minute; `gaps` counts, per SLO, the
    minutes that could not be read (each logged with its reason). While Prometheus is away
    (no answer, or 5xx) a minute is asked again at the next poll, up to CATCH_UP_MIN minutes
    back: older ones are gaps too."""

    def __init__(self, slos: Sequence[SloConfig], samples: SloSampleTable, log: Any) -> None:
        self.slos = [s for s in slos if s.sli.prometheus is not None]
        self._samples, self._log = samples, log
        self._next: dict[str, int] = {}  # the next minute to read, per SLO
        self.gaps: dict[str, int] = {s.name: 0 for s in self.slos}

    async def poll(self, now: float, call: Callable[..., Awaitable[Any]]) -> None:
        """Read the minutes that ended since the last poll (LAG_S ago at least) and store
        them through `call` (the store's thread)."""
        last = int((now - LAG_S) // 60) - 1
        oldest = last - CATCH_UP_MIN + 1
        before = dict(self._next)
        found: dict[tuple[str, int], list[int]] = {}
        for slo in self.slos:
            first = self._next.get(slo.name, oldest)
            if first < oldest:  # Prometheus was away longer than the catch-up reads back
                self._gap(slo.name, range(first, oldest), "not read within an hour")
                first = oldest
            if first <= last:
                self._next[slo.name] = await self._read(slo, range(first, last + 1), found)
        if not found:
            return
        try:
            await call(self._samples.put, found)
        except Exception:  # read again next time: a minute stored twice is kept once
            self._next = before
            raise

    async def _read(
        self, slo: SloConfig, minutes: range, found: dict[tuple[str, int], list[int]]
    ) -> int:
        """Read `minutes` into `found`; the next minute to read (where Prometheus was away)."""
        sli = slo.sli.prometheus
        assert sli is not None
        async with http_client(verify_tls=True, timeout=sli.timeout) as client:
            for minute in minutes:
                try:
                    good, total = await read_minute(client, sli, minute)
                except Unreachable as exc:
                    self._log.warning("slo.prometheus_away", slo=slo.name, minute=minute * 60,
                                      error=str(exc))  # fmt: skip
                    return minute
                except QueryFailed as exc:
                    self._gap(slo.name, range(minute, minute + 1), str(exc))
                    continue
                if total:
                    found[(slo.name, minute)] = [good, total, 0]
        return minutes.stop

    def _gap(self, slo: str, minutes: range, why: str) -> None:
        self.gaps[slo] += len(minutes)
        self._log.warning("slo.prometheus_gap", slo=slo, minute=minutes.start * 60,
                          minutes=len(minutes), error=why)  # fmt: skip
