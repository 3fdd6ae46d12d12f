"""The loaded rule set: exact-match fields hashed, so an event meets only rules it could fire."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from operator import attrgetter

from opsmedic.model import Event
from opsmedic.rules.conditions import Check, Getter
from opsmedic.rules.model import Rule

_by_index = attrgetter("index")


class _Group:
    """Rules sharing one set of exact fields, hashed on those fields' values.

    Rules usually pin a few fields (source, kind, a label or two): grouping them by *which*
    fields they pin turns matching 100 rules into one dict lookup per distinct set.
    """

    __slots__ = ("key", "table")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.key = _key_function(fields)
        self.table: dict[tuple[object, ...], list[Rule]] = {}

    def lookup(self, event: Event) -> list[Rule] | None:
        return self.table.get(self.key(event))


def _key_function(fields: tuple[str, ...]) -> Getter:
    """The tuple of `fields` read from an event; plain attributes in one C-level attrgetter."""
    attrs = [f for f in fields if not f.startswith("labels.")]
    labels = [f[7:] for f in fields if f.startswith("labels.")]
    get_attrs: Getter
    if len(attrs) > 1:
        get_attrs = attrgetter(*attrs)  # returns the tuple itself
    elif attrs:
        single = attrgetter(attrs[0])
        get_attrs = lambda e: (single(e),)  # noqa: E731 - a closure on a hot path
    else:
        get_attrs = lambda e: ()  # noqa: E731
    if not labels:
        return get_attrs
    # Labels come after attributes, in the order RuleSet builds its table keys.
    return lambda e: (*get_attrs(e), *[e.labels.get(n) for n in labels])


class RuleSet:
    """Rules in file order; `match` returns the rules an event fires, in that order."""

    def __init__(
        self, rules: list[Rule], files: list[str] | None = None, *, disabled: Sequence[Rule] = ()
    ) -> None:
        self.rules = rules
        self.files = files or []
        self._by_name = {r.name: r for r in rules}
        # `enabled: false` rules: never matched, only found by name for a forced run by hand.
        self.disabled = {r.name: r for r in reversed(disabled)}  # the first of a name wins
        # Matched only to say so (a `disabled` decision, engine/decisions.py), never to run.
        self._off = RuleSet(list(self.disabled.values())) if self.disabled else None
        groups: dict[tuple[str, ...], _Group] = {}
        for rule in rules:
            exact = rule.condition.exact
            fields = tuple(sorted(exact, key=lambda f: (f.startswith("labels."), f)))
            group = groups.get(fields) or groups.setdefault(fields, _Group(fields))
            group.table.setdefault(tuple(exact[f] for f in fields), []).append(rule)
        self._groups = list(groups.values())

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def get(self, name: str) -> Rule | None:
        return self._by_name.get(name)

    def candidates(self, event: Event) -> list[Rule]:
        """Rules whose exact fields all agree with the event, in file order."""
        found: list[Rule] = []
        hits = 0
        for group in self._groups:
            rules = group.lookup(event)
            if rules:
                found.extend(rules)
                hits += 1
        if hits > 1:
            found.sort(key=_by_index)
        return found

    def match(self, event: Event) -> list[Rule]:
        return [rule for rule in self.candidates(event) if rule.condition.rest_holds(event)]

    def match_disabled(self, event: Event) -> list[Rule]:
        """The `enabled: false` rules the event would fire, were they enabled."""
        return self._off.match(event) if self._off is not None else []

    def explain(self, event: Event) -> list[tuple[Rule, Check | None]]:
        """Every rule with the first check that failed for this event (None: it matches)."""
        return [(rule, rule.condition.first_failure(event)) for rule in self.rules]
