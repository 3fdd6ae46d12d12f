"""What the API needs of the rules in force: the set, the last reload's problems, a reload."""

from __future__ import annotations

from typing import Protocol

from opsmedic.errors import Problem
from opsmedic.rules.ruleset import RuleSet


class LiveRules(Protocol):
    """The running service's rules (`Runtime` is one)."""

    @property
    def ruleset(self) -> RuleSet: ...

    @property
    def rule_errors(self) -> list[Problem]: ...

    async def reload_rules(self) -> tuple[RuleSet, list[Problem]]:
        """Load the rules again: (the rules in force, this reload's problems); a set with
        problems is rejected whole and the last good one stays in force."""
        ...
