"""Verification on the real traffic: the requests nginx routed, read from its access log."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from opsmedic.config.services import TrafficCheck, VerifyCheck
from opsmedic.releases.access_log import BackendStats, LogFollower, MalformedLine, parse_line, tally
from opsmedic.releases.measure import Sample, Sampler, Verdict


@dataclass(slots=True)
class _Window:
    """One traffic check's follower, and when its current interval began."""

    follower: LogFollower
    since: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class TrafficSampler:
    """A sampler that answers `traffic` checks itself and hands every other check on.

    Each log is followed from the moment the verification starts (what was logged before is
    not this version's traffic); a sample is every request logged during one interval, so no
    request is counted twice or missed between two samples."""

    inner: Sampler
    windows: dict[str, _Window] = field(default_factory=dict)

    @classmethod
    def around(cls, checks: list[VerifyCheck], inner: Sampler) -> TrafficSampler:
        sampler = cls(inner)
        for check in checks:
            if check.traffic is not None:
                sampler.windows[check.name] = _Window(LogFollower(check.traffic.access_log))
        return sampler

    def close(self) -> None:
        for window in self.windows.values():
            window.follower.close()

    async def __call__(self, check: VerifyCheck) -> Sample:
        if check.traffic is None:
            return await self.inner(check)
        window = self.windows[check.name]
        await asyncio.sleep(max(0.0, window.since + check.interval - time.monotonic()))
        window.since = time.monotonic()
        return interval_sample(check.traffic, window.follower)


def interval_sample(check: TrafficCheck, follower: LogFollower) -> Sample:
    """The requests logged since the last read, judged as one sample."""
    if not Path(check.access_log).exists():
        return Sample(Verdict.ERRORED, None, f"access log {check.access_log} does not exist")
    over_long = follower.malformed
    requests, last_error = [], ""
    for line in follower.read():
        try:
            requests.append(parse_line(line))
        except MalformedLine as exc:
            last_error = str(exc)
    if follower.malformed > over_long:
        last_error = "a line over 64 KiB"
    seen = _combined(tally(requests), check.backends)
    if seen.requests < check.min_requests:
        if last_error:
            # Lines we could not read may be the traffic we are missing: never a pass.
            return Sample(Verdict.ERRORED, None, f"unreadable access log lines ({last_error})")
        return Sample(Verdict.NO_DATA, None,
                      f"{seen.requests} request(s), min_requests {check.min_requests}")  # fmt: skip
    ratio, p95 = seen.errors / seen.requests, seen.p95()
    summary = (f"{seen.errors} of {seen.requests} requests failed"
               + (f", p95 {p95 * 1000:.0f} ms" if p95 is not None else ""))  # fmt: skip
    if ratio > check.max_error_ratio:
        return Sample(Verdict.BAD, ratio, f"{summary} (max_error_ratio {check.max_error_ratio:g})")
    if check.max_p95 is not None and p95 is not None and p95 > check.max_p95:
        return Sample(Verdict.BAD, ratio, f"{summary} (max_p95 {check.max_p95:g}s)")
    return Sample(Verdict.GOOD, ratio, summary)


def _combined(stats: dict[str, BackendStats], backends: list[str]) -> BackendStats:
    """The attempts of the named backends (every backend when none is named) as one."""
    total = BackendStats()
    for address, found in stats.items():
        if backends and address not in backends:
            continue
        total.requests += found.requests
        total.errors += found.errors
        total.latencies += found.latencies
    return total
