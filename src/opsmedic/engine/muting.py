"""Silences, maintenance windows and inhibit rules: which hold, if any, keeps an event's runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import regex

from opsmedic.config.matchers import (
    REGEX_TIMEOUT_S,
    Matcher,
    Silence,
    matches_all,
    parse_matchers,
    value_of,
)
from opsmedic.config.muting import Cron, InhibitRule, MaintenanceWindow, dated
from opsmedic.config.schema import Config
from opsmedic.engine.holds import Hold
from opsmedic.engine.inhibitor import Inhibition, Inhibitor
from opsmedic.logs import get_logger
from opsmedic.model import OWN_SOURCE, Event
from opsmedic.store.store import Store

# Silences that ended longer ago than this are not read back: a replay of the last day still
# sees the silences of its event times, and the index does not grow with old ones.
SILENCE_HORIZON = 86400.0
# How often the engine asks the store whether silences changed (one count and sum()): a
# silence the CLI writes from another process takes effect within this wall-clock time. The
# API, in the engine's process, says so at once (`Muting.changed`).
REFRESH_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class Mute:
    """A silence or a maintenance window, as the index holds it."""

    matchers: tuple[Matcher, ...]
    active: Callable[[float], bool]
    hold: Hold
    # A cron window's start of the opening last found active: each night's opening is a cause
    # of its own, so it gets its own timeline line.
    opening: Callable[[], float] | None = None


_NEST = 8  # mutes sharing one exact value past which they get an index of their own
# An entry of the index: the matchers left to check (those the index did not decide), and its mute.
_Entry = tuple[tuple[Matcher, ...], Mute]


class MuteIndex:
    """Mutes by one of their `=` matchers (field → value → mutes), so that an event is checked
    only against the mutes whose exact matcher it meets: with 1,000 silences, one dict lookup
    per indexed field. Mutes without one are grouped by a `=~` matcher, whose patterns are
    joined into one regex per field: one call tells that none of them can match, the usual
    answer (a `(?i)` keeps to its own pattern there, and groups are kept unless referred to
    by number or name). Many mutes under one value (a hundred silences on `kind=DiskFull`)
    get an index of their own over their other matchers. Only mutes with neither kind are
    checked one by one."""

    def __init__(self, mutes: Sequence[Mute]) -> None:
        self.size = len(mutes)
        self._build([(m.matchers, m) for m in mutes])

    @classmethod
    def _nested(cls, entries: list[_Entry]) -> MuteIndex:
        index = cls.__new__(cls)
        index.size = len(entries)
        index._build(entries)
        return index

    def _build(self, entries: list[_Entry]) -> None:
        by_value: dict[str, dict[str, list[_Entry]]] = {}
        by_regex: dict[str, list[_Entry]] = {}
        self._scan: list[_Entry] = []
        for left, mute in entries:
            exact = next((m for m in left if m.op == "="), None)
            if exact is not None:
                rest = tuple(m for m in left if m is not exact)
                values = by_value.setdefault(exact.name, {})
                values.setdefault(exact.value, []).append((rest, mute))
                continue
            first = next((m for m in left if m.op == "=~"), None)
            if first is not None and first.regex is not None and _joinable(first.regex):
                by_regex.setdefault(first.name, []).append((left, mute))
            else:
                self._scan.append((left, mute))
        self._by_field: dict[str, dict[str, list[_Entry] | MuteIndex]] = {
            name: {v: MuteIndex._nested(e) if len(e) > _NEST else e for v, e in values.items()}
            for name, values in by_value.items()
        }
        self._by_regex: list[tuple[str, regex.Pattern[str], list[_Entry]]] = []
        for name, group in by_regex.items():
            try:
                # A flag such as (?i) stays within its group in the `regex` module's join.
                joined = regex.compile("|".join(f"(?:{_first_regex(e, name)})" for e in group))
            except regex.error:  # a join the module refuses (too large): one by one
                self._scan.extend(group)
            else:
                self._by_regex.append((name, joined, group))

    def find(self, event: Event, at: float) -> Hold | None:
        """The hold of the first mute that matches the event and is active at `at`."""
        mute = self._find(event, at)
        if mute is None or mute.opening is None:
            return mute.hold if mute is not None else None
        return replace(mute.hold, cause=f"{mute.hold.cause} opened {mute.opening():.0f}")

    def _find(self, event: Event, at: float) -> Mute | None:
        for name, values in self._by_field.items():
            found = values.get(value_of(event, name))
            if found is not None:
                if isinstance(found, MuteIndex):
                    mute = found._find(event, at)
                else:
                    mute = _first(found, event, at)
                if mute is not None:
                    return mute
        for name, joined, group in self._by_regex:
            try:
                hit = joined.fullmatch(value_of(event, name), timeout=REGEX_TIMEOUT_S) is not None
            except TimeoutError:  # one of them backtracks: each is tried (and logged) alone
                hit = True
            if hit:
                mute = _first(group, event, at)
                if mute is not None:
                    return mute
        return _first(self._scan, event, at) if self._scan else None


# What refers to a group by number or name, which the join shifts (the second pattern's
# group 1 becomes group 2) or shares: backreferences (\1, \g<1>, \k<n>, (?P=n)), recursion
# ((?R), (?1), (?&n), (?P>n)), conditionals ((?(1)…)). Found in the pattern's text, erring
# on the side of not joining (an escaped backslash before a digit counts too).
_BY_GROUP = regex.compile(r"\\(?:[1-9]|g|k)|\(\?(?:P[=>]|&|R|[-+]?\d|\()")


def _joinable(pattern: regex.Pattern[str]) -> bool:
    """Whether the pattern can go into a field's joined regex unchanged in meaning: one
    without groups, or whose groups (`(?i)(web|api)-.+`) nothing refers to."""
    return not pattern.groups or _BY_GROUP.search(pattern.pattern) is None


def _first_regex(entry: _Entry, name: str) -> str:
    """The pattern the entry was grouped by: its first `=~` matcher (on field `name`)."""
    return next(m.value for m in entry[0] if m.op == "=~" and m.name == name)


def _first(entries: list[_Entry], event: Event, at: float) -> Mute | None:
    for left, mute in entries:
        if mute.active(at) and matches_all(left, event):
            return mute
    return None


def silence_mute(silence: Silence) -> Mute:
    by = f", by {silence.created_by}" if silence.created_by else ""
    why = f": {silence.comment}" if silence.comment else ""
    until = datetime.fromtimestamp(silence.ends_at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    reason = f"silenced by silence {silence.id}{why} (until {until}{by})"
    hold = Hold("silence", f"silence {silence.id}", reason, "silenced")
    return Mute(silence.matchers, silence.active, hold)


def window_mute(window: MaintenanceWindow) -> Mute:
    why = f": {window.comment}" if window.comment else ""
    hold = Hold("maintenance", f"maintenance {window.name}",
                f"silenced by maintenance window {window.name}{why}", "silenced")  # fmt: skip
    matchers = parse_matchers(window.matcher_texts())
    if window.start is not None and window.end is not None:
        start, end = dated(window.start, window.timezone), dated(window.end, window.timezone)
        return Mute(matchers, lambda t: start <= t < end, hold)
    assert window.schedule is not None
    assert window.duration is not None
    schedule = Schedule(window.schedule, window.duration, window.timezone)
    return Mute(matchers, schedule, hold, opening=schedule.opened)


class Schedule:
    """Whether a cron window is open at a time: some start of it within `duration` before.
    Found by looking back minute by minute, once per minute of event time (cached)."""

    def __init__(self, cron: str, duration: float, zone: str) -> None:
        self._cron, self._duration, self._zone = Cron(cron), duration, ZoneInfo(zone)
        self._minute = -1
        self._opened = -1.0  # the start of the window last found open, in epoch seconds

    def __call__(self, at: float) -> bool:
        if self._opened <= at < self._opened + self._duration:
            return True
        minute = int(at // 60)
        if minute != self._minute:
            self._minute, self._opened = minute, self._last_start(minute)
        return self._opened <= at < self._opened + self._duration

    def opened(self) -> float:
        """The start of the opening the last call found (epoch seconds)."""
        return self._opened

    def _last_start(self, minute: int) -> float:
        local = datetime.fromtimestamp(minute * 60, self._zone)
        for back in range(int(self._duration // 60) + 1):
            # Through UTC: a local minute that DST skips is never visited, one repeated twice is.
            when = (local.astimezone(UTC) - timedelta(minutes=back)).astimezone(self._zone)
            if self._cron.matches(when):
                return when.timestamp()
        return -1.0 - self._duration


def inhibit_rules(rules: Sequence[InhibitRule]) -> list[Inhibition]:
    """The config's `inhibit:` rules for the Inhibitor (engine/inhibitor.py)."""
    return [_inhibition(r, r.name or f"#{i + 1}") for i, r in enumerate(rules)]


def _inhibition(rule: InhibitRule, name: str) -> Inhibition:
    def hold(what: str, fingerprint: str) -> Hold:
        reason = f"inhibited by {what} (inhibit rule {name})"
        return Hold("inhibit", f"inhibit {name} {fingerprint}", reason, "inhibited")

    source, target = parse_matchers(rule.source_matchers), parse_matchers(rule.target_matchers)
    return Inhibition(source, target, tuple(rule.equal), hold, name, rule.resolve_timeout)


class Muting:
    """The holds besides dependencies: inhibit rules, maintenance windows, silences, in
    Alertmanager's order. Silences are read from the store; `refresh` re-reads them when their
    count or newest change differs (checked at most every REFRESH_EVERY seconds)."""

    def __init__(self, config: Config, on_lift: Callable[[], None] | None = None) -> None:
        """`on_lift` is told when an inhibit rule's source stops firing (Inhibitor)."""
        rules = inhibit_rules(config.inhibit)
        self._inhibitor = Inhibitor(rules, on_lift=on_lift) if rules else None
        self._windows = MuteIndex([window_mute(w) for w in config.maintenance])
        self._silences = MuteIndex([])
        self._version: tuple[int, float] | None = None
        self._checked = float("-inf")

    def check(self, event: Event, at: float | None = None) -> Hold | None:
        """The hold on the event, silences, windows and inhibit sources' freshness judged at
        `at`: live, the moment the
        engine received it (an alert's repeats keep its old time, and a sender chooses its
        time); a replay leaves it out, judging at the event's time as the live engine did."""
        when = event.time if at is None else at
        if event.source == OWN_SOURCE and event.kind == "approval_requested":
            # Never held: the request is how a person hears a run waits for them. Held, it
            # would reach nobody, and `on_timeout: run` would run the step with nobody asked.
            return None
        hold = self._inhibitor.observe(event, when) if self._inhibitor is not None else None
        if hold is None and self._windows.size:
            hold = self._windows.find(event, when)
        if hold is None and self._silences.size:
            hold = self._silences.find(event, when)
        return hold

    def ended(self, incident_id: str, at: float) -> None:
        """An incident was resolved or closed at `at`: its source alerts stop inhibiting."""
        if self._inhibitor is not None:
            self._inhibitor.ended(incident_id, at)

    def evicted(self) -> dict[str, int]:
        """Inhibit sources dropped at the cap, by rule (the metrics)."""
        return self._inhibitor.evicted() if self._inhibitor is not None else {}

    def changed(self) -> None:
        """Silences changed in this process: the next batch re-reads them first."""
        self._checked = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self._checked >= REFRESH_EVERY

    def refresh(self, store: Store, now: float) -> int:
        """Re-read the silences if they changed (in the journal's thread); how many are held."""
        self._checked = time.monotonic()
        version = store.silences.version()
        if version != self._version:
            found = store.silences.list(ending_after=now - SILENCE_HORIZON)
            self._silences, self._version = MuteIndex(_usable(found)), version
        return self._silences.size


def _usable(silences: Sequence[Silence]) -> list[Mute]:
    """The silences' mutes, without those the engine cannot use (a row written before starts
    and ends were bounded, ending past what a datetime shows): one such row must not keep
    every other silence from holding."""
    mutes = []
    for silence in silences:
        try:
            mutes.append(silence_mute(silence))
        except (OverflowError, ValueError, OSError) as exc:
            get_logger(component="engine").error(
                "engine.silence_skipped", silence_id=silence.id, error=str(exc)
            )
    return mutes
