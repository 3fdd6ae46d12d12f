"""Prometheus SLIs against a real Prometheus (Debian's), its TSDB backfilled by promtool with
per-minute counters: each minute's counts stored exactly; a missing scrape, an empty vector,
NaN and an unreachable server are gaps (logged, counted, seen in the coverage), never good."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from opsmedic.config.slos import SloConfig
from opsmedic.slo.prometheus_sli import CATCH_UP_MIN, LAG_S, PrometheusSlis
from opsmedic.slo.watch import SloWatch, statuses
from opsmedic.store.store import Store
from services_prometheus import openmetrics, running_prometheus
from slo_helpers import Log, call

REQUESTS = "sum(increase(slo_requests_total[{{.window}}]))"
ERRORS = "sum(increase(slo_errors_total[{{.window}}]))"


def slo(name: str, url: str, **queries: str) -> SloConfig:
    sli = {"prometheus": {"url": url, "total": REQUESTS, **queries}}
    return SloConfig.model_validate({"name": name, "objective": 99, "window": "1d", "sli": sli})


async def test_minutes_read_from_a_real_prometheus_and_gaps_never_good(tmp_path: Path) -> None:
    # 90 minutes ending a day ago (backfilled blocks stay out of Prometheus' head); the scrape
    # of minute `missing` is lost: increase() over it, and over the next minute, has one
    # sample, an empty vector.
    last = int(time.time() // 60) - 1440
    rows = {m: (50 + m % 7 - m % 3, 50 + m % 7) for m in range(last - 89, last + 1)}
    missing = last - 20
    del rows[missing]
    metrics = tmp_path / "samples.om"
    openmetrics(rows, metrics)
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    store.migrate()
    log = Log()
    with running_prometheus(tmp_path / "prometheus", metrics) as url:
        slos = [
            slo("api", url, bad=ERRORS),
            slo("api-good", url, good=f"{REQUESTS} - {ERRORS}"),
            slo("empty", url, total="sum(increase(nope_total[{{.window}}]))", bad=ERRORS),
            slo("nan", url, total=f"{REQUESTS} * 0 / 0", bad=ERRORS),
            slo("inf", url, total=f"{REQUESTS} / 0", bad=ERRORS),
            slo("huge", url, total=f"{REQUESTS} * 1e300", bad=ERRORS),
            slo("away", "http://127.0.0.1:9", bad=ERRORS),
            slo("broken", url, total="sum(increase(slo_requests_total[{{.window}}])", bad=ERRORS),
        ]
        reader = PrometheusSlis(slos, store.slo_samples, log)
        now = (last + 1) * 60 + LAG_S
        await reader.poll(now, call)
        await reader.poll(now + 20, call)  # nothing new ended: nothing read
        assert reader.gaps["away"] == 0  # away: asked again next time, within the hour
        await reader.poll(now + 7200, call)  # two hours later, still away: gaps
        assert reader.gaps["away"] == 120
        # A restart reads the last hour again: minutes stored are kept, never counted twice.
        await PrometheusSlis(slos, store.slo_samples, Log()).poll(now, call)
    read = range(last - CATCH_UP_MIN + 1, last + 1)
    expected = {m: rows[m] for m in read if m not in (missing, missing + 1)}
    assert store.slo_samples.minutes("api", read[0] - 30, last + 5) == expected
    assert store.slo_samples.minutes("api-good", read[0] - 30, last + 5) == expected
    for name in ("empty", "nan", "inf", "huge", "away", "broken"):
        assert store.slo_samples.minutes(name, read[0], last) == {}
    # Two hours later every SLO read 120 more minutes, past the backfill: empty vectors.
    assert reader.gaps == {"api": 2 + 120, "api-good": 2 + 120, "empty": 180, "nan": 60 + 120,
                           "inf": 60 + 120, "huge": 60 + 120, "away": 120, "broken": 180}  # fmt: skip
    said = {(event, f["slo"], f["minute"] // 60): f["error"] for event, f in log.lines}
    assert "no series (empty vector)" in said[("slo.prometheus_gap", "api", missing)]
    assert "nan, not a count" in said[("slo.prometheus_gap", "nan", last)]
    assert "inf, not a count" in said[("slo.prometheus_gap", "inf", last)]
    assert "more than a minute's count may be (1e+12)" in said[("slo.prometheus_gap", "huge", last)]
    assert "query failed: 400 " in said[("slo.prometheus_gap", "broken", last)]
    first = read[0]
    assert said[("slo.prometheus_away", "away", first)].startswith("query failed: ConnectError")
    assert said[("slo.prometheus_gap", "away", first)] == "not read within an hour"
    shown = {s.slo.name: s.as_dict() for s in statuses(slos[:-1], store, now)}
    # The gap shows: 58 minutes of the 61 since the first (the current one not yet read).
    assert shown["api"]["coverage"] == 58 / 61
    assert shown["api"]["good"] == sum(rows[m][0] for m in expected)
    assert shown["empty"]["state"] == shown["away"]["state"] == "no data"  # never 100 %


async def test_opsmedic_runs_prometheus_slis_beside_the_event_ones(tmp_path: Path) -> None:
    """SloWatch (the SLOs' task in `opsmedic run`) reads a Prometheus SLI and leaves the
    event SLIs to the events; Prometheus away is a logged gap, not a failure of the task."""
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    store.migrate()
    events = SloConfig.model_validate({"name": "lb", "objective": 99, "sli": {
        "events": {"total": ["source=lb"], "bad": ["severity=critical"]}}})  # fmt: skip
    log = Log()
    watch = SloWatch([slo("away", "http://127.0.0.1:9", bad=ERRORS), events], [], store,
                     now=lambda: 1_700_000_000.0, call=call, emit=call, log=log)  # fmt: skip
    running = asyncio.create_task(watch.run())
    for _ in range(200):
        if log.lines:
            break
        await asyncio.sleep(0.05)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    assert [(event, f["slo"]) for event, f in log.lines] == [("slo.prometheus_away", "away")]
    assert watch.prometheus.gaps == {"away": 0}  # asked again at the next poll
    assert watch.evaluations == 1  # and the evaluation went on beside it
