"""Verification: sample every check at its interval through the bake time, judge each one.

A check fails as soon as its bad samples pass `max_error_ratio` with `min_samples` taken; at
the end of bake each check needs `min_samples` good-or-bad samples, or `on_no_data` decides.
A measurement that errored is never a sample: errors with too few samples fail the check,
whatever `on_no_data` says, so a verification whose every measurement errored fails."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsmedic.config.services import VerifyCheck
from opsmedic.releases.measure import Sample, Sampler, Verdict
from opsmedic.releases.traffic_check import TrafficSampler

RECENT = 10  # samples of each check kept on the deployment for people to read
TICK_S = 0.5  # how often the verification judges and beats its heartbeat, at most


@dataclass(slots=True)
class Tally:
    """What one check measured so far."""

    check: VerifyCheck
    counts: Counter[str] = field(default_factory=Counter)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    verdict: str = "pending"  # pending, passed, failed
    reason: str = ""
    last_bad: str = ""
    last_bad_body: str = ""

    @property
    def samples(self) -> int:
        return self.counts[Verdict.GOOD] + self.counts[Verdict.BAD]

    def add(self, sample: Sample, at: float) -> None:
        self.counts[sample.verdict] += 1
        self.recent.append({"at": at, "verdict": str(sample.verdict), "value": sample.value,
                            "message": sample.message})  # fmt: skip
        if sample.verdict is Verdict.BAD:
            self.last_bad = sample.message
            self.last_bad_body = sample.body or self.last_bad_body
        check = self.check
        bad = self.counts[Verdict.BAD]
        if self.samples >= check.min_samples and bad / self.samples > check.max_error_ratio:
            self._set("failed", f"{bad} of {self.samples} samples bad (last: {self.last_bad})")

    def close(self, holding_over: bool) -> None:
        """Judge at the end of bake; `holding_over`: the verify timeout has passed."""
        if self.verdict != "pending":
            return
        check, errored = self.check, self.counts[Verdict.ERRORED]
        if self.samples >= check.min_samples:
            self._set("passed", f"{self.samples} samples, {self.counts[Verdict.BAD]} bad")
        elif errored:
            self._set("failed", f"{errored} measurement(s) errored and only {self.samples} of "
                      f"{check.min_samples} samples; an error is never a pass")  # fmt: skip
        elif check.on_no_data == "fail":
            self._set("failed", f"no data: {self.samples} of {check.min_samples} samples "
                      "(on_no_data: fail)")  # fmt: skip
        elif check.on_no_data == "pass":
            self._set("passed", f"passed without data: {self.samples} of {check.min_samples} "
                      "samples (on_no_data: pass)")  # fmt: skip
        elif holding_over:
            self._set("failed", f"held for data past verify_timeout: {self.samples} of "
                      f"{check.min_samples} samples (on_no_data: hold)")  # fmt: skip

    def _set(self, verdict: str, reason: str) -> None:
        self.verdict, self.reason = verdict, f"{self.check.name}: {reason}"

    def as_json(self) -> dict[str, Any]:
        found = {"verdict": self.verdict, "reason": self.reason, "counts": dict(self.counts),
                 "on_no_data": self.check.on_no_data, "recent": list(self.recent)}  # fmt: skip
        return found | ({"last_bad_body": self.last_bad_body} if self.last_bad_body else {})


@dataclass(frozen=True, slots=True)
class Result:
    passed: bool
    reason: str
    checks: dict[str, Any]
    aborted: bool = False  # someone else took the deployment over


async def verify(
    checks: Sequence[VerifyCheck], sample: Sampler, *, bake: float, longest: float,
    beat: Callable[[dict[str, Any]], Awaitable[bool]],
) -> Result:  # fmt: skip
    """Sample `checks` until each is judged; `beat(progress)` is called every tick and
    returns False when the deployment is no longer ours (then nothing more is judged)."""
    tallies = [Tally(check) for check in checks]
    # `traffic` checks follow their access log from now: this version's requests only.
    traffic = TrafficSampler.around(list(checks), sample)
    tasks = [asyncio.create_task(_sampling(t, traffic), name=f"verify-{t.check.name}")
             for t in tallies]  # fmt: skip
    start = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - start
            if elapsed >= bake:
                for tally in tallies:
                    tally.close(holding_over=elapsed >= longest)
            progress = {t.check.name: t.as_json() for t in tallies}
            failed = [t.reason for t in tallies if t.verdict == "failed"]
            if failed:
                return Result(False, "verification failed: " + "; ".join(failed), progress)
            if all(t.verdict == "passed" for t in tallies) and elapsed >= bake:
                reasons = "; ".join(t.reason for t in tallies) or "no checks configured"
                return Result(True, f"verified and baked {bake:g}s: {reasons}", progress)
            if not await beat(progress):
                return Result(False, "taken over by another process", progress, aborted=True)
            await asyncio.sleep(min(TICK_S, max(bake - elapsed, 0.05)))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        traffic.close()


async def _sampling(tally: Tally, sample: Sampler) -> None:
    """Sample one check at its interval until cancelled or judged failed."""
    while tally.verdict != "failed":
        t0 = time.monotonic()
        try:
            found = await sample(tally.check)
        except Exception as exc:  # a sampler's bug is an errored measurement, not a pass
            found = Sample(Verdict.ERRORED, None, f"{type(exc).__name__}: {exc}"[:300])
        tally.add(found, time.time())
        await asyncio.sleep(max(tally.check.interval - (time.monotonic() - t0), 0.0))
