"""Alertmanager's inhibition: firing source alerts, indexed by their `equal` values, hold the
target alerts that share them; a source not repeated within `resolve_timeout` has stopped."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsmedic.config.matchers import Matcher, matches_all, value_of
from opsmedic.config.muting import RESOLVE_TIMEOUT
from opsmedic.logs import get_logger
from opsmedic.model import Event, Status

if TYPE_CHECKING:
    from opsmedic.engine.holds import Hold

# Firing sources one rule keeps at most: an `ingest` token can send any number of distinct
# alerts, and each is kept until it resolves or expires. Past it the least recently
# refreshed is dropped (logged, counted in /metrics as opsmedic_inhibit_sources_evicted).
SOURCES_MAX = 10_000
_LOG_EVERY = 1000  # evictions of a rule logged: the first, then one in this many

# A source's place in a rule's index: its values of the `equal` fields, and whether it
# matches the target side too (an alert matching both is not held by those: Alertmanager).
_Key = tuple[tuple[str, ...], bool]


@dataclass(slots=True)
class _Source:
    fingerprint: str
    key: _Key
    what: str  # "incident <id>" or "alert <fingerprint>": what the hold's reason names
    incident_id: str
    seen: float  # when it last fired (Inhibitor time): it expires resolve_timeout after


@dataclass(slots=True)
class Inhibition:
    """One inhibit rule: while an alert matching `source` fires, alerts matching `target`
    with the same values of the `equal` fields are held, with the Hold `hold` makes of (the
    source's incident or alert, its fingerprint). `name` is for the logs and metrics."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]
    hold: Callable[[str, str], Hold]
    name: str = ""
    resolve_timeout: float = RESOLVE_TIMEOUT
    # Its firing sources, least recently fired first (what expires and what is evicted first).
    firing: OrderedDict[str, _Source] = field(default_factory=OrderedDict)
    # The same by _Key, most recently fired last: a target's lookup is one dict get.
    index: dict[_Key, OrderedDict[str, _Source]] = field(default_factory=dict)
    # Incident id → its sources' fingerprints: an incident resolved or closed lifts them.
    by_incident: dict[str, set[str]] = field(default_factory=dict)
    evicted: int = 0

    def add(self, source: _Source) -> None:
        self.firing[source.fingerprint] = source
        self.index.setdefault(source.key, OrderedDict())[source.fingerprint] = source
        if source.incident_id:
            self.by_incident.setdefault(source.incident_id, set()).add(source.fingerprint)

    def remove(self, fingerprint: str) -> _Source | None:
        source = self.firing.pop(fingerprint, None)
        if source is None:
            return None
        bucket = self.index[source.key]
        del bucket[fingerprint]
        if not bucket:
            del self.index[source.key]
        if source.incident_id:
            same = self.by_incident[source.incident_id]
            same.discard(fingerprint)
            if not same:
                del self.by_incident[source.incident_id]
        return source

    def holding(self, event: Event, exempt: bool) -> _Source | None:
        """The most recently fired source sharing the event's `equal` values, not the event
        itself; with `exempt` (the event matches both sides) only one matching the source
        side alone."""
        values = tuple(value_of(event, f) for f in self.equal)
        for both in (False,) if exempt else (False, True):
            bucket = self.index.get((values, both))
            for source in reversed(bucket.values()) if bucket else ():
                if source.fingerprint != event.fingerprint:
                    return source
        return None


class Inhibitor:
    """Alertmanager's inhibition: a firing source alert holds the target alerts that share its
    `equal` values (a missing label is empty). A source stops holding when it resolves, no
    longer matches (a severity dropping), is not repeated within its rule's resolve_timeout
    (a probe died, a resolve was lost), or when its incident is resolved or closed (`ended`).
    An alert never inhibits itself, and one matching both sides of a rule is not inhibited by
    others matching both. `on_lift` is told when a source stops (the next hold is news again).

    Time is the `at` given to `observe` (the engine's clock live, the event's time in a
    replay), never going back: sources stay in the order they last fired, so the expired ones
    are found at the front."""

    def __init__(
        self, rules: Sequence[Inhibition], on_lift: Callable[[], None] | None = None,
        cap: int = SOURCES_MAX,
    ) -> None:  # fmt: skip
        self._rules = list(rules)
        self._on_lift = on_lift
        self._cap = cap
        self._now = float("-inf")
        self._log = get_logger(component="engine")

    def evicted(self) -> dict[str, int]:
        """Sources dropped at the cap so far, by rule name (the metrics)."""
        return {rule.name: rule.evicted for rule in self._rules if rule.evicted}

    def observe(self, event: Event, at: float | None = None) -> Hold | None:
        """Learn whether `event` is a firing source; the hold of its runs, if it is a target
        (the first rule, in order, with a source holding it)."""
        now = self._now = max(self._now, event.time if at is None else at)
        firing = event.status is Status.FIRING
        lifted, found = False, None
        for rule in self._rules:
            lifted |= self._expire(rule, now)
            source = matches_all(rule.source, event)
            target: bool | None = None
            if firing and source:
                target = matches_all(rule.target, event)
                lifted |= self._fired(rule, event, now, target)
            else:
                lifted |= rule.remove(event.fingerprint) is not None
            if found is None and rule.firing:
                if target is None:
                    target = matches_all(rule.target, event)
                holding = rule.holding(event, source) if target else None
                if holding is not None:
                    found = rule.hold(holding.what, holding.fingerprint)
        if lifted and self._on_lift is not None:
            self._on_lift()
        return found

    def ended(self, incident_id: str, at: float) -> None:
        """The incident was resolved or closed at `at`: its sources that last fired by then
        stop holding (a later repeat fires again; after a close, into a new incident)."""
        lifted = 0
        for rule in self._rules:
            for fingerprint in list(rule.by_incident.get(incident_id, ())):
                if rule.firing[fingerprint].seen <= at:
                    rule.remove(fingerprint)
                    lifted += 1
        if lifted:
            self._log.info("inhibit.sources_ended", incident_id=incident_id, sources=lifted)
            if self._on_lift is not None:
                self._on_lift()

    def _expire(self, rule: Inhibition, now: float) -> bool:
        expired = 0
        while rule.firing:
            oldest = next(iter(rule.firing.values()))
            if now - oldest.seen < rule.resolve_timeout:
                break
            rule.remove(oldest.fingerprint)
            expired += 1
        if expired:
            self._log.info("inhibit.sources_expired", rule=rule.name, sources=expired,
                           resolve_timeout_s=rule.resolve_timeout)  # fmt: skip
        return expired > 0

    def _fired(self, rule: Inhibition, event: Event, now: float, target: bool) -> bool:
        """Keep (or refresh) a firing source; whether one was evicted to make room."""
        rule.remove(event.fingerprint)  # back to the end of both orders
        values = tuple(value_of(event, f) for f in rule.equal)
        fingerprint, incident_id = event.fingerprint, event.incident_id
        what = f"incident {incident_id}" if incident_id else f"alert {fingerprint}"
        rule.add(_Source(fingerprint, (values, target), what, incident_id, now))
        if len(rule.firing) <= self._cap:
            return False
        oldest = rule.remove(next(iter(rule.firing)))
        assert oldest is not None
        rule.evicted += 1
        if rule.evicted % _LOG_EVERY == 1:
            self._log.warning("inhibit.source_evicted", rule=rule.name, cap=self._cap,
                              fingerprint=oldest.fingerprint, evicted=rule.evicted)  # fmt: skip
        return True
