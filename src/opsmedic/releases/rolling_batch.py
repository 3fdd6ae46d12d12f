"""One batch of a rolling deployment, analysed once back in: its instances' real traffic against
the instances not yet replaced, and the service's http checks sent to each of its instances."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opsmedic.config.rolling import RollingAnalysis
from opsmedic.config.services import VerifyCheck
from opsmedic.releases.access_log import BackendStats, Traffic

# The canary's judging helpers: a batch's instance is judged exactly as a canary step is.
from opsmedic.releases.canary import (
    TICK_S,
    judgement_json,
    request_metrics,
    step_verdict,
    traffic_summary,
)
from opsmedic.releases.judge import ErrorCounts, early_abort, judge
from opsmedic.releases.measure import Sampler
from opsmedic.releases.verify import Result, verify

Tick = Callable[[], Awaitable[bool]]  # beats the heartbeat; False once taken over


@dataclass(slots=True)
class Batch:
    """A batch under analysis: its instances, the old ones still serving beside them, and
    `baseline`, the old version's traffic of the last window that had old instances (the last
    batch has none beside it, so it is judged against that)."""

    instances: list[str]
    old: list[str]
    record: dict[str, Any]
    baseline: BackendStats = field(default_factory=BackendStats)


def retarget(check: VerifyCheck, instance: str) -> VerifyCheck | None:
    """An http check sent straight to `instance` (its URL's host:port replaced), named
    `check@instance`; None for a check that is no request (a Prometheus query)."""
    if check.http is None:
        return None
    url = urlsplit(check.http.url)._replace(netloc=instance).geturl()
    return check.model_copy(update={
        "name": f"{check.name}@{instance}", "http": check.http.model_copy(update={"url": url}),
    })  # fmt: skip


def pooled(window: Mapping[str, BackendStats], addresses: Sequence[str]) -> BackendStats:
    """The attempts of several backends as one."""
    found = BackendStats()
    for stats in (window[a] for a in addresses if a in window):
        found.requests += stats.requests
        found.errors += stats.errors
        found.latencies += stats.latencies
        found.times += stats.times
        found.failed += stats.failed
    return found


async def analyse(
    batch: Batch, traffic: Traffic, analysis: RollingAnalysis, checks: Sequence[VerifyCheck],
    sample: Sampler, *, hold: float, tick: Tick,
) -> Result:  # fmt: skip
    """Until the batch is judged: the checks sampled through `interval` (verify.py), the real
    traffic read every tick (early abort, max_error_ratio), the judge once `interval` passed
    (and each tick after it while `on_no_data: hold` waits, up to `hold` seconds)."""
    record = batch.record

    async def keep(progress: dict[str, Any]) -> bool:
        record["verify"] = progress
        return True

    verifying = asyncio.create_task(
        verify(checks, sample, bake=analysis.interval, longest=hold, beat=keep)
    )
    start, began = time.time(), time.monotonic()
    try:
        while True:
            await asyncio.sleep(TICK_S)
            traffic.poll()
            window = traffic.window(start)
            theirs = pooled(window, batch.old) if batch.old else batch.baseline
            ours = {i: window.get(i, BackendStats()) for i in batch.instances}
            record["traffic"] = {i: traffic_summary(stats) for i, stats in ours.items()}
            record["old"] = traffic_summary(theirs)
            record["malformed_lines"] = traffic.malformed
            failing = _failing(ours, theirs, analysis, record)
            if verifying.done():
                record["verify"] = verifying.result().checks
                if failing is None and not verifying.result().passed:
                    failing = verifying.result().reason
            if failing is not None:
                return Result(False, failing, record)
            if not await tick():
                return Result(False, "taken over by another process", record, aborted=True)
            elapsed = time.monotonic() - began
            if elapsed < analysis.interval:
                continue
            ended = _judged(ours, theirs, analysis, traffic, record, holding_over=elapsed >= hold)
            if ended is not None and not ended.passed:
                return ended
            if ended is not None and verifying.done():
                if batch.old:
                    batch.baseline = theirs
                return Result(True, f"{ended.reason}; {verifying.result().reason}", record)
    finally:
        verifying.cancel()
        await asyncio.gather(verifying, return_exceptions=True)


def _failing(
    ours: dict[str, BackendStats], theirs: BackendStats, analysis: RollingAnalysis,
    record: dict[str, Any],
) -> str | None:  # fmt: skip
    """What fails the batch before its interval ends: an instance clearly worse than the old
    ones (the canary's early abort), or over `max_error_ratio` with min_samples requests."""
    record["early_abort"] = aborts = {}
    for instance, stats in ours.items():
        decision = early_abort(ErrorCounts(stats.requests, stats.errors),
                               ErrorCounts(theirs.requests, theirs.errors))  # fmt: skip
        aborts[instance] = decision.reason
        if decision.abort:
            return f"{instance}: aborted early: {decision.reason}"
        ceiling, ratio = analysis.max_error_ratio, stats.error_ratio
        enough = stats.requests >= analysis.min_samples
        if ceiling is not None and ratio is not None and enough and ratio > ceiling:
            return (f"{instance}: {stats.errors} of {stats.requests} requests failed, "
                    f"over max_error_ratio {ceiling:g}")  # fmt: skip
    return None


def _judged(
    ours: dict[str, BackendStats], theirs: BackendStats, analysis: RollingAnalysis,
    traffic: Traffic, record: dict[str, Any], *, holding_over: bool,
) -> Result | None:  # fmt: skip
    """Each instance of the batch judged against the old ones; None while one holds for data."""
    record["judgement"] = judgements = {}
    verdicts = {}
    for instance, stats in ours.items():
        judgement = judge(request_metrics(analysis, stats, theirs))
        judgements[instance] = judgement_json(judgement)
        verdicts[instance] = step_verdict(judgement, analysis, traffic, holding_over=holding_over)
    for instance, verdict in verdicts.items():
        if verdict is not None and not verdict[0]:
            return Result(False, f"{instance}: {verdict[2]}", record)
    if any(verdict is None for verdict in verdicts.values()):
        return None
    reasons = [f"{i} {v[2]}" for i, v in verdicts.items() if v is not None]
    return Result(True, "; ".join(reasons), record)
