"""The running evaluation: recent minutes kept in memory and topped up from the store, budgets
re-summed now and then, alerts turned into slo_burn events when they start and stop."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from opsmedic.config.slos import SloConfig
from opsmedic.model import OWN_SOURCE, Event, Status
from opsmedic.slo.burn import LONGEST_MIN, TIERS, Tier, minutes_label
from opsmedic.slo.samples import LATE_S
from opsmedic.slo.status import SloStatus, slice_minutes, status_of, window_of
from opsmedic.store.slo_rows import SloSampleTable, WindowSums

KIND = "slo_burn"
# The budget window (a month of minutes) is summed in the store at most this often: 10 SLOs
# over 30 days of minutes cost ~0.3 s of CPU to sum on SQLite (bench/_slo_eval.py), too much
# every 30 s; the alert windows (3 days at most) are kept in memory and only their last hour
# re-read each time (~15 ms for the ten).
BUDGET_EVERY_S = 300.0
_REREAD_MIN = int(LATE_S // 60) + 1


class Evaluator:
    """One per `opsmedic run`: `refresh` reads the store (on the DB thread), `evaluate` is pure."""

    def __init__(self, slos: Sequence[SloConfig], samples: SloSampleTable) -> None:
        self.slos = list(slos)
        self._samples = samples
        self._recent: dict[str, dict[int, tuple[int, int]]] = {s.name: {} for s in self.slos}
        self._sums: dict[str, WindowSums] = {}
        self._ahead: dict[str, int] = {}
        self._loaded: int | None = None  # the last minute read, for the next read's start
        self._summed_at: float | None = None
        self._firing: set[tuple[str, int]] = set()  # (slo, tier's long window)
        self._changed: set[tuple[str, int]] = set()  # the alerts the last evaluate turned
        self.statuses: dict[str, SloStatus] = {}
        self.failures: dict[str, str] = {}  # SLO → why its last evaluation failed

    def refresh(self, now: float, sums_every_s: float = BUDGET_EVERY_S) -> None:
        """Read what changed: the last hour's minutes (late samples still land there), all of
        the alert windows the first time, and the budget sums when they are due (every
        `sums_every_s`)."""
        last = int(now // 60)
        start = last - LONGEST_MIN + 1
        if self._loaded is not None:
            start = max(start, min(self._loaded, last) - _REREAD_MIN)
        for slo in self.slos:
            recent = self._recent[slo.name]
            recent.update(self._samples.minutes(slo.name, start, last))
            for minute in [m for m in recent if m <= last - LONGEST_MIN]:
                del recent[minute]
        self._loaded = last
        due = self._summed_at is None or not 0 <= now - self._summed_at < sums_every_s
        for slo in self.slos:
            known = self._sums.get(slo.name)
            # One without samples yet is cheap to sum, and its first ones must not wait.
            if due or known is None or known.total == 0:
                window = window_of(slo, now)
                ratio = slo.timeslices.good_ratio if slo.timeslices else 1.0
                self._sums[slo.name] = self._samples.window(
                    slo.name, window.first, window.last, slice_minutes(slo), ratio
                )
                self._ahead[slo.name] = self._samples.ahead(slo.name, last)
        if due:
            self._summed_at = now

    def evaluate(self, now: float) -> list[Event]:
        """Every SLO's status at `now`; an event for each alert that started or stopped. An
        SLO whose evaluation fails is left out (its error in `failures`), the others go on."""
        events: list[Event] = []
        self.failures, self._changed = {}, set()
        for slo in self.slos:
            try:
                events += self._evaluate(slo, now)
            except Exception as exc:  # one SLO's bad arithmetic must not silence the others
                self.failures[slo.name] = f"{type(exc).__name__}: {exc}"
        return events

    def unsent(self) -> None:
        """The last `evaluate`'s events were not stored: their alerts go back to their state
        before it, so that the next evaluation announces them again."""
        self._firing.symmetric_difference_update(self._changed)
        self._changed = set()

    def _evaluate(self, slo: SloConfig, now: float) -> list[Event]:
        status = status_of(slo, now, self._recent[slo.name], self._sums[slo.name],
                           self._ahead.get(slo.name, 0))  # fmt: skip
        self.statuses[slo.name] = status
        if not slo.alerts:  # shown burning, never announced
            return []
        events = []
        firing = {t.long_min for t in status.firing}
        for tier in TIERS:
            key = (slo.name, tier.long_min)
            if (tier.long_min in firing) != (key in self._firing):
                events.append(burn_event(status, tier, tier.long_min in firing))
                self._firing.symmetric_difference_update({key})
                self._changed.add(key)
        return events


def burn_event(status: SloStatus, tier: Tier, firing: bool) -> Event:
    """An slo_burn event: severity page or ticket, labels slo, service and window."""
    slo = status.slo
    long, short = status.burn[tier.long_min], status.burn[tier.short_min]
    rates = f"{_x(long)} over {tier.window}, {_x(short)} over {minutes_label(tier.short_min)}"
    verb = "burning" if firing else "no longer burning"
    message = f"SLO {slo.name} {verb} its error budget at ≥ {float(tier.burn):g}x: {rates}"
    shown = status.as_dict()
    return Event(
        source=OWN_SOURCE, kind=KIND, resource=slo.name,
        labels={"slo": slo.name, "service": slo.service, "window": tier.window},
        value=None if long is None else float(long), severity=tier.severity,
        status=Status.FIRING if firing else Status.RESOLVED, time=status.at,
        payload={"message": message, "objective": slo.objective,
                 "short_window": minutes_label(tier.short_min), "threshold": float(tier.burn),
                 "budget_remaining": shown["budget_remaining"], "burn_rates": shown["burn_rates"]},
    )  # fmt: skip


def _x(rate: Fraction | None) -> str:
    return "no data" if rate is None else f"{float(rate):.2f}x"
