"""Where an SLO stands now: its window, budget left, burn rates and firing alerts (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from opsmedic.config.slos import SloConfig
from opsmedic.slo.burn import (
    LONGEST_MIN,
    TIERS,
    WINDOWS,
    Counts,
    SliceCounts,
    Tier,
    burn_rate,
    exact,
    fires,
    minutes_label,
    occurrences_left,
    slices_left,
)
from opsmedic.store.slo_rows import WindowSums

Recent = Mapping[int, tuple[int, int]]  # minute → (good, total), the last LONGEST_MIN at least


@dataclass(frozen=True, slots=True)
class Window:
    """The SLO's budget window in minutes (first ≤ m ≤ last) and its full length."""

    first: int
    last: int
    length: int  # minutes of the whole window: a calendar month counts all of its days


def window_of(slo: SloConfig, now: float) -> Window:
    last = int(now // 60)
    rolling = slo.rolling_s
    if rolling is not None:
        length = int(rolling // 60)
        return Window(last - length + 1, last, length)
    today = datetime.fromtimestamp(now, UTC)
    start = today.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    first = int(start.timestamp() // 60)
    return Window(first, last, int((following - start).total_seconds() // 60))


def slice_minutes(slo: SloConfig) -> int:
    return int(slo.timeslices.slice // 60) if slo.timeslices is not None else 1


def window_sums(recent: Recent, last: int) -> dict[int, Counts]:
    """Counts over each alert window (WINDOWS) ending at minute `last`, in one pass."""
    good = dict.fromkeys(WINDOWS, 0)
    total = dict.fromkeys(WINDOWS, 0)
    for minute, (g, t) in recent.items():
        age = last - minute
        if 0 <= age < LONGEST_MIN:
            for length in WINDOWS:
                if age < length:
                    good[length] += g
                    total[length] += t
    return {length: Counts(good[length], total[length]) for length in WINDOWS}


@dataclass(slots=True)
class SloStatus:
    """An SLO at one moment, for /metrics, the API and `opsmedic slo`."""

    slo: SloConfig
    at: float
    counts: Counts
    budget_left: Fraction | None
    burn: dict[int, Fraction | None]
    firing: list[Tier]
    sums: WindowSums
    slices: SliceCounts | None
    ahead: int = 0
    window: Window = field(default_factory=lambda: Window(0, 0, 0))

    @property
    def state(self) -> str:
        """no data | ok | burning (an alert fires) | exhausted (no budget left)."""
        if self.budget_left is None:
            return "no data"
        if self.budget_left <= 0:
            return "exhausted"
        return "burning" if self.firing else "ok"

    @property
    def coverage(self) -> float | None:
        """Minutes with samples over the minutes measured (since the first sample, in the
        window): a gap in probing shows here."""
        began = self.sums.first_minute
        if began is None:
            return None
        measured = self.window.last - max(self.window.first, began) + 1
        return min(1.0, self.sums.minutes_with_data / measured) if measured > 0 else None

    def notes(self) -> list[str]:
        """What makes the numbers less than plain: since when, skew, clock, empty slices (the
        notes `opsmedic slo` and the dashboard show)."""
        found = []
        if self.sums.first_minute is not None:
            since = datetime.fromtimestamp(self.sums.first_minute * 60, UTC)
            found.append(f"measured since {since:%Y-%m-%d %H:%M:%S} UTC")
        if self.sums.skewed:
            found.append(f"{self.sums.skewed} samples off the clock (counted at arrival)")
        if self.ahead:
            found.append(f"{self.ahead} samples stored ahead of now (clock jumped back?)")
        if self.slices is not None and self.slices.empty and self.slo.timeslices is not None:
            policy = self.slo.timeslices.empty
            found.append(f"{self.slices.empty} empty slices counted {policy}")
        return found

    def as_dict(self) -> dict[str, Any]:
        slo = self.slo
        return {
            "name": slo.name, "service": slo.service, "objective": slo.objective,
            "window": slo.window, "budgeting": slo.budgeting, "state": self.state,
            "at": self.at, "good": self.counts.good, "total": self.counts.total,
            "budget_remaining": _num(self.budget_left),
            "burn_rates": {minutes_label(m): _num(b) for m, b in self.burn.items()},
            "firing": [{"severity": t.severity, "window": t.window,
                        "short_window": minutes_label(t.short_min), "burn": float(t.burn)}
                       for t in self.firing],
            "coverage": self.coverage,
            "measured_since": None if self.sums.first_minute is None
            else self.sums.first_minute * 60.0,
            "skewed_samples": self.sums.skewed, "samples_ahead": self.ahead,
            "timeslices": None if self.slices is None else {
                "with_data": self.slices.with_data, "bad": self.slices.bad,
                "empty": self.slices.empty, "in_window": self.slices.in_window,
                "empty_policy": slo.timeslices.empty if slo.timeslices else None,
            },
        }  # fmt: skip


def _num(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def status_of(
    slo: SloConfig, now: float, recent: Recent, sums: WindowSums, ahead: int = 0
) -> SloStatus:
    """The SLO's status at `now` from its recent minutes (alert windows) and its window sums
    (the budget). Without samples the budget is None ("no data"), never 100 %."""
    window = window_of(slo, now)
    target = exact(slo.objective) / 100
    recent_sums = window_sums(recent, window.last)
    burn = {length: burn_rate(c, target) for length, c in recent_sums.items()}
    firing = [
        tier for tier in TIERS
        if fires(tier, recent_sums[tier.long_min], recent_sums[tier.short_min], target,
                 slo.min_requests)
    ]  # fmt: skip
    counts = Counts(sums.good, sums.total)
    slices = None
    if slo.timeslices is not None:
        slices = _slices(slo, window, sums)
        left = slices_left(slices, target, slo.timeslices.empty)
    else:
        left = occurrences_left(counts, target)
    return SloStatus(slo, now, counts, left, burn, firing, sums, slices, ahead, window)


def _slices(slo: SloConfig, window: Window, sums: WindowSums) -> SliceCounts:
    k = slice_minutes(slo)
    in_window = window.length // k
    if sums.first_minute is None:
        return SliceCounts(0, 0, 0, in_window)
    # Slices that ended since the SLO was first measured (and within the window): those with
    # no sample are the empty ones; the slice being filled now is not one yet.
    start = max(window.first, sums.first_minute) // k
    ended = max(0, window.last // k - start)
    ended_with_data = sums.slices_with_data - (1 if sums.current_slice_has_data else 0)
    return SliceCounts(sums.slices_with_data, sums.bad_slices, max(0, ended - ended_with_data),
                       in_window)  # fmt: skip
