"""Prometheus SLIs: each minute's bad and total requests read from Prometheus (the queries'
`{{.window}}` made `1m`, at the minute's end) and stored as that minute's samples; a query
that fails, answers nothing or NaN leaves the minute a gap, never a good one."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from opsmedic.config.slos import WINDOW, PrometheusSli, SloConfig
from opsmedic.store.slo_rows import SloSampleTable
from opsmedic.transport.http import http_client
from opsmedic.transport.prometheus import QueryFailed, instant_values

if TYPE_CHECKING:
    import httpx

# A minute is read this long after it ended, so that its last scrape has landed; at start the
# last CATCH_UP_MIN minutes are read (Prometheus kept them; minutes stored stay as they are).
LAG_S = 30.0
CATCH_UP_MIN = 60


def minute_query(query: str) -> str:
    """The query as evaluated at the end of each minute: its range is that minute."""
    return query.replace(WINDOW, "1m")


async def read_minute(
    client: httpx.AsyncClient, sli: PrometheusSli, minute: int
) -> tuple[int, int] | str:
    """(good, total) of the minute, or why it is a gap. Prometheus extrapolates increase() to
    the range's edges, so counts are rounded to whole requests, and the bad (or good) ones
    kept within the total."""
    at = (minute + 1) * 60.0
    try:
        total = await _one(client, sli, sli.total, at)
        side = await _one(client, sli, sli.bad or sli.good or "", at)
    except QueryFailed as exc:
        return str(exc)
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
    if math.isnan(value) or value < 0:
        raise QueryFailed(f"{query!r}: {value:g}, not a count")
    return value


class PrometheusSlis:
    """The SLOs with a Prometheus SLI, read minute by minute; `gaps` counts, per SLO, the
    minutes that could not be read (each also logged with its reason)."""

    def __init__(self, slos: Sequence[SloConfig], samples: SloSampleTable, log: Any) -> None:
        self.slos = [s for s in slos if s.sli.prometheus is not None]
        self._samples, self._log = samples, log
        self._next: dict[str, int] = {}  # the next minute to read, per SLO
        self.gaps: dict[str, int] = {s.name: 0 for s in self.slos}

    async def poll(self, now: float, call: Callable[..., Awaitable[Any]]) -> None:
        """Read the minutes that ended since the last poll (LAG_S ago at least) and store
        them through `call` (the store's thread)."""
        last = int((now - LAG_S) // 60) - 1
        before = dict(self._next)
        found: dict[tuple[str, int], list[int]] = {}
        for slo in self.slos:
            sli = slo.sli.prometheus
            assert sli is not None
            first = self._next.get(slo.name, last - CATCH_UP_MIN + 1)
            if first > last:
                continue
            async with http_client(verify_tls=True, timeout=sli.timeout) as client:
                for minute in range(first, last + 1):
                    read = await read_minute(client, sli, minute)
                    if isinstance(read, str):
                        self.gaps[slo.name] += 1
                        self._log.warning("slo.prometheus_gap", slo=slo.name,
                                          minute=minute * 60, error=read)  # fmt: skip
                    elif read[1]:
                        found[(slo.name, minute)] = [read[0], read[1], 0]
            self._next[slo.name] = last + 1
        try:
            await call(self._samples.put, found)
        except Exception:  # read again next time: a minute stored twice is kept once
            self._next = before
            raise
