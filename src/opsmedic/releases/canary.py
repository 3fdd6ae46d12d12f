"""The canary strategy: weight steps through a router, each judged on the real traffic."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from opsmedic.config.canary import AnalysisConfig, CanaryConfig
from opsmedic.config.located import unknown_name
from opsmedic.errors import UnknownRelease
from opsmedic.releases.access_log import BackendStats, Traffic, tally
from opsmedic.releases.judge import ErrorCounts, Judgement, Metric, early_abort, judge, load_stats
from opsmedic.releases.router import Router, RouterError
from opsmedic.releases.routers import Routers
from opsmedic.releases.verify import Result

TICK_S = 0.25  # how often the step's record is refreshed, the heartbeat beaten, the judge run
# The log is read and the early abort decided this often in between: at 0.25 s a canary
# answering 500 to a third of 200 requests/s got ~17 requests before the first decision.
READ_S = 0.05
Beat = Callable[[dict[str, Any]], Awaitable[bool]]


def backend_of(canary: CanaryConfig, service: str, version: str) -> str:
    """The address serving `version`; UnknownRelease when `backends` does not name it."""
    try:
        return canary.backends[version]
    except KeyError:
        known = list(canary.backends)
        raise UnknownRelease(
            f"{service}: canary.backends " + unknown_name("version", version, known)
        ) from None


@dataclass(slots=True)
class Canaries:
    """The canary strategy's traffic moves, through each service's router."""

    routers: Routers = field(default_factory=Routers)

    def router(self, service: str, canary: CanaryConfig) -> Router:
        return self.routers.get(service, canary.router, canary.sticky)

    async def route_all(self, service: str, canary: CanaryConfig, version: str) -> str | None:
        """Every request to `version`'s backend, nothing else in the upstream; None or the
        problem. (Another version's backend that nginx refuses cannot block a rollback.)"""
        weights = {backend_of(canary, service, version): 1}
        try:
            await self.router(service, canary).set_weights(canary.router.nginx.upstream, weights)
        except RouterError as exc:
            return str(exc)
        return None

    async def analyse(
        self, service: str, canary: CanaryConfig, stable: str, new: str, *,
        hold: float, beat: Beat,
    ) -> Result:  # fmt: skip
        """Each weight step in turn, analysed over the interval; stops at the first failure.
        The result's `checks` is the record of the steps, for the deployment."""
        upstream, steps = canary.router.nginx.upstream, list[dict[str, Any]]()
        record: dict[str, Any] = {"steps": steps}
        traffic, why = Traffic(canary.router.nginx.access_log), ""
        # The judge's scipy takes most of a second to import: done off the loop now, not by
        # the first early abort, which would hold the loop while the canary has traffic.
        await asyncio.to_thread(load_stats)
        try:
            for percent in canary.steps:
                step: dict[str, Any] = {"canary_percent": percent}
                steps.append(step)
                weights = {stable: 100 - percent, new: percent}
                try:
                    await self.router(service, canary).set_weights(upstream, weights)
                except RouterError as exc:
                    return Result(False, f"canary step {percent} %: {exc}", record)
                step["weights"] = weights
                passed, aborted, why = await _step(
                    traffic, canary.analysis, stable, new, step, hold=hold, beat=beat
                )
                if aborted or not passed:
                    return Result(False, f"canary step {percent} %: {why}", record, aborted)
            return Result(True, f"canary passed {len(canary.steps)} step(s): {why}", record)
        finally:
            traffic.follower.close()


async def _step(
    traffic: Traffic, analysis: AnalysisConfig, stable: str, new: str, step: dict[str, Any], *,
    hold: float, beat: Beat,
) -> tuple[bool, bool, str]:  # fmt: skip
    """(passed, taken over, why) for one step: early abort on every read, the judge at the end
    of the interval (and on each tick after it while `on_no_data: hold` waits for data)."""
    start, began = time.time(), time.monotonic()
    counts: dict[str, ErrorCounts] = {}
    while True:
        for _ in range(round(TICK_S / READ_S)):
            await asyncio.sleep(READ_S)
            if clearly_worse(traffic, start, counts, new, stable):
                break  # the full tick below records the abort and returns
        window = traffic.window(start)
        ours, theirs = window.get(new, BackendStats()), window.get(stable, BackendStats())
        step["canary"], step["stable"] = traffic_summary(ours), traffic_summary(theirs)
        step["malformed_lines"] = traffic.malformed
        decision = early_abort(ErrorCounts(ours.requests, ours.errors),
                               ErrorCounts(theirs.requests, theirs.errors))  # fmt: skip
        step["early_abort"] = decision.reason
        if decision.abort:
            return False, False, f"aborted early: {decision.reason}"
        if not await beat({"canary_step": step}):
            return False, True, "taken over by another process"
        elapsed = time.monotonic() - began
        if elapsed < analysis.interval:
            continue
        judgement = judge(request_metrics(analysis, ours, theirs))
        step["judgement"] = judgement_json(judgement)
        verdict = step_verdict(judgement, analysis, traffic, holding_over=elapsed >= hold)
        if verdict is not None:
            return verdict


def clearly_worse(
    traffic: Traffic, start: float, counts: dict[str, ErrorCounts], new: str, stable: str
) -> bool:
    """Read what nginx wrote since the last read into `counts` (per backend, the step's
    attempts since `start`, as `traffic.window(start)` counts them); would the early abort
    stop the canary now? Only the new lines are tallied, so reading often stays cheap."""
    added = traffic.poll()
    fresh = islice(traffic.requests, max(0, len(traffic.requests) - added), None)
    for backend, stats in tally(fresh, start=start).items():
        seen = counts.get(backend, ErrorCounts(0, 0))
        counts[backend] = ErrorCounts(seen.requests + stats.requests, seen.errors + stats.errors)
    none = ErrorCounts(0, 0)
    return early_abort(counts.get(new, none), counts.get(stable, none)).abort


def step_verdict(
    judgement: Judgement, analysis: AnalysisConfig, traffic: Traffic, *, holding_over: bool
) -> tuple[bool, bool, str] | None:
    """The step's end, or None to hold for more data. A log or lines that could not be read
    are a measurement error: with too little data they fail the step whatever `on_no_data`
    says."""
    missing = judgement.no_data
    if missing:
        first = next(m for m in judgement.metrics if m.classification == "NoData")
        why = f"no data for {', '.join(missing)} ({first.reason})"
        # Not having read the traffic is a failed measurement, never a lack of it: a
        # canary judged on a log nobody writes would pass with `on_no_data: pass`.
        if problem := traffic.unreadable():
            return False, False, f"{why}; {problem}"
        if traffic.malformed:
            error = traffic.last_error or "over-long line"
            return False, False, f"{why}; {traffic.malformed} unreadable log line(s): {error}"
        if analysis.on_no_data == "fail":
            return False, False, f"{why}, on_no_data: fail"
        if analysis.on_no_data == "hold":
            if not holding_over:
                return None
            return False, False, f"{why}, held past verify_timeout (on_no_data: hold)"
        if judgement.verdict == "nodata":
            return True, False, f"passed without data: {why} (on_no_data: pass)"
    if judgement.verdict == "pass":
        return True, False, f"judged pass: {judgement.reason}"
    return False, False, f"judged {judgement.verdict}: {judgement.reason}"


def request_metrics(
    analysis: AnalysisConfig, canary: BackendStats, stable: BackendStats
) -> list[Metric]:
    """Per request: failed (1) or not (0), and the latency of the answered ones."""

    def values(stats: BackendStats, check: str) -> list[float]:
        return [float(f) for f in stats.failed] if check == "error_ratio" else stats.latencies

    return [
        Metric(check, values(canary, check), values(stable, check),
               critical=check in analysis.critical, min_samples=analysis.min_samples)
        for check in analysis.checks
    ]  # fmt: skip


def traffic_summary(stats: BackendStats) -> dict[str, Any]:
    return {"requests": stats.requests, "errors": stats.errors,
            "error_ratio": stats.error_ratio, "latency_p95_s": stats.p95()}  # fmt: skip


def judgement_json(judgement: Judgement) -> dict[str, Any]:
    """The judge's scores as JSON (an unbounded interval is null)."""

    def number(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    return {
        "score": judgement.score, "verdict": judgement.verdict, "reason": judgement.reason,
        "metrics": {m.name: {
            "classification": m.classification, "reason": m.reason,
            "canary": m.canary_count, "stable": m.stable_count, "p_value": number(m.p_value),
            "shift": number(m.shift), "lower": number(m.lower), "upper": number(m.upper),
        } for m in judgement.metrics},
    }  # fmt: skip
