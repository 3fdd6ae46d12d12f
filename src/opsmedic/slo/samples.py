"""SLI samples gathered from committed events into per-minute counts, until the next flush."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opsmedic.model import Event
from opsmedic.slo.sli import CompiledSli

# A sample is binned at its own time when that is near the clock. Further off (a sender's
# clock, ours jumping, an alert re-sent with the time it started) it is counted in the minute
# it arrived, and as skewed there, which `opsmedic slo` shows. Late: older than the
# evaluator re-reads (a minute it has summed must not change behind its back).
AHEAD_S = 60.0
LATE_S = 3600.0

Taken = dict[tuple[str, int], list[int]]  # (slo, minute) → [good, total, skewed]


class SampleBuffer:
    """Counts per SLO and minute since the last `take`: a flood of events is a few rows."""

    def __init__(self, slis: Sequence[CompiledSli]) -> None:
        self._slis = {True: [s for s in slis if s.probed], False: [s for s in slis if not s.probed]}
        self._counts: Taken = {}

    def observe(self, events: Iterable[Event], now: float, *, probed: bool = False) -> None:
        """Committed events (the events SLIs), or the probe runner's readings (`probed`: the
        probe SLIs)."""
        slis = self._slis[probed]
        if not slis:
            return
        for event in events:
            for sli in slis:
                good = sli.judge(event)
                if good is None:
                    continue
                near = now - LATE_S <= event.time <= now + AHEAD_S
                row = self._row(sli.slo, int((event.time if near else now) // 60))
                row[0] += good
                row[1] += 1
                row[2] += not near

    def _row(self, slo: str, minute: int) -> list[int]:
        row = self._counts.get((slo, minute))
        if row is None:
            row = self._counts[(slo, minute)] = [0, 0, 0]
        return row

    def take(self) -> Taken:
        """The counts so far; the buffer starts again empty."""
        taken, self._counts = self._counts, {}
        return taken

    def put_back(self, taken: Taken) -> None:
        """Counts a flush could not store: added to those gathered since, for the next one."""
        for key, (g, t, s) in taken.items():
            row = self._row(*key)
            row[0] += g
            row[1] += t
            row[2] += s
