"""The loaded rule set: an index on source, kind and exact labels so an event meets few rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from opsmedic.model import Event
from opsmedic.rules.conditions import Check
from opsmedic.rules.model import Rule

_CACHE_MAX = 4096  # distinct (source, kind) pairs remembered; cleared when exceeded


class RuleSet:
    """Rules in file order; `match` returns the rules an event fires, in that order."""

    def __init__(self, rules: list[Rule], files: list[str] | None = None) -> None:
        self.rules = rules
        self.files = files or []
        self._by_name = {r.name: r for r in rules}
        self._buckets: dict[tuple[str | None, str | None], list[Rule]] = defaultdict(list)
        self._by_label: dict[tuple[str, str], list[Rule]] = defaultdict(list)
        for rule in rules:
            exact = rule.condition.exact
            source, kind = exact.get("source"), exact.get("kind")
            labels = [(k[7:], v) for k, v in exact.items() if k.startswith("labels.")]
            if source is None and kind is None and labels:
                # Index on one exact label only: the rule's full condition checks the rest.
                self._by_label[labels[0]].append(rule)
            else:
                self._buckets[(source, kind)].append(rule)
        self._label_names = sorted({name for name, _ in self._by_label})
        self._cache: dict[tuple[str, str], list[Rule]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def get(self, name: str) -> Rule | None:
        return self._by_name.get(name)

    def candidates(self, event: Event) -> list[Rule]:
        """Rules whose indexed fields agree with the event; each still needs its full check."""
        key = (event.source, event.kind)
        found = self._cache.get(key)
        if found is None:
            b = self._buckets
            found = sorted(
                [*b.get(key, ()), *b.get((key[0], None), ()), *b.get((None, key[1]), ()),
                 *b.get((None, None), ())],
                key=lambda r: r.index,
            )  # fmt: skip
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = found
        if self._label_names:
            extra = [
                rule
                for name in self._label_names
                if (value := event.labels.get(name)) is not None
                for rule in self._by_label.get((name, value), ())
            ]
            if extra:
                found = sorted([*found, *extra], key=lambda r: r.index)
        return found

    def match(self, event: Event) -> list[Rule]:
        return [rule for rule in self.candidates(event) if rule.condition(event)]

    def explain(self, event: Event) -> list[tuple[Rule, Check | None]]:
        """Every rule with the first check that failed for this event (None: it matches)."""
        return [(rule, rule.condition.first_failure(event)) for rule in self.rules]
