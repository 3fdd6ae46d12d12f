"""Burn rates and error budgets, exact: the SRE Workbook's multi-window, multi-burn-rate alerts
over per-minute samples (docs/slo.md), as pure functions of counts."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


def exact(value: float) -> Fraction:
    """A config number as the decimal it was written as (repr gives its shortest spelling):
    99.9 is 999/10, not 99.900000000000006, so a burn of exactly 14.4 fires."""
    return Fraction(repr(value))


@dataclass(frozen=True, slots=True)
class Counts:
    """Samples in a window: good ones and all of them."""

    good: int = 0
    total: int = 0

    @property
    def bad(self) -> int:
        return self.total - self.good


@dataclass(frozen=True, slots=True)
class Tier:
    """One alert: both windows must burn at least `burn` times the sustainable rate."""

    severity: str  # page | ticket
    burn: Fraction
    long_min: int
    short_min: int

    @property
    def window(self) -> str:
        """The label of its alerts: the long window (1h, 6h, 3d)."""
        return minutes_label(self.long_min)


# The SRE Workbook, ch. 5, for a 30-day objective: 2 % of the budget in 1 h, 5 % in 6 h,
# 10 % in 3 d; each short window is 1/12 of its long one.
TIERS = (
    Tier("page", Fraction(144, 10), 60, 5),
    Tier("page", Fraction(6), 360, 30),
    Tier("ticket", Fraction(1), 4320, 360),
)
# Every window a tier reads, shortest first: what `opsmedic slo` and /metrics show.
WINDOWS = tuple(sorted({m for t in TIERS for m in (t.long_min, t.short_min)}))
LONGEST_MIN = max(WINDOWS)


def minutes_label(minutes: int) -> str:
    """60 → '1h', 4320 → '3d', 30 → '30m'."""
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def burn_rate(counts: Counts, target: Fraction) -> Fraction | None:
    """How many times faster than sustainable the budget burns: the error ratio over the
    allowed one (1 - target). None without samples: no data is not a zero burn."""
    if counts.total == 0:
        return None
    return Fraction(counts.bad, counts.total) / (1 - target)


def fires(tier: Tier, long: Counts, short: Counts, target: Fraction, min_requests: int) -> bool:
    """Both windows burn at `tier.burn` or faster, and the long one has enough samples that a
    single failure is not a page (at 99.997 % the 14.4x page is a 0.043 % error ratio)."""
    if long.total < min_requests:
        return False
    long_burn, short_burn = burn_rate(long, target), burn_rate(short, target)
    if long_burn is None or short_burn is None:
        return False
    return long_burn >= tier.burn and short_burn >= tier.burn


def occurrences_left(counts: Counts, target: Fraction) -> Fraction | None:
    """Budget remaining by requests: 1 - bad / allowed bad, allowed = (1 - target) x total;
    negative once overspent. None without samples (never a 100 % that means nothing)."""
    rate = burn_rate(counts, target)
    return None if rate is None else 1 - rate


@dataclass(frozen=True, slots=True)
class SliceCounts:
    """Time slices of a window: those with samples, the bad among them, and the empty ones
    that had elapsed since the SLO's first sample."""

    with_data: int
    bad: int
    empty: int
    in_window: int  # every slice of the whole window: the budget's denominator


def slices_left(slices: SliceCounts, target: Fraction, empty_policy: str) -> Fraction | None:
    """Budget remaining by time slices: 1 - bad / ((1 - target) x slices in the window). An
    empty slice is bad, good, or (skip) out of the window's count, as the policy says.
    None when no slice has samples and the policy does not make empty ones bad."""
    if slices.with_data == 0 and not (empty_policy == "bad" and slices.empty):
        return None
    bad = slices.bad + (slices.empty if empty_policy == "bad" else 0)
    counted = slices.in_window - (slices.empty if empty_policy == "skip" else 0)
    return 1 - Fraction(bad) / ((1 - target) * counted)
