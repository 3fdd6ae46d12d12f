"""The contract every DNS failover backend keeps: switch one way or the other, idempotently."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Direction(StrEnum):
    FAILOVER = "failover"  # clients to the secondary
    FAILBACK = "failback"  # clients back to the primary


@dataclass(frozen=True, slots=True)
class Switched:
    """A backend's report: `changed` is False when it already was that way (nothing written)."""

    changed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class SwitchFailed(Exception):
    """The switch was not made; the message says why. A backend never leaves it half made."""


class Backend(Protocol):
    """One way of pointing clients at a DNS server: a resolv.conf, a record, a provider's API.

    `switch` must be idempotent (a repeat reports `changed=False`), must change nothing
    unless the current state is the one it expects (compare-and-swap), and must finish or
    give up by `deadline` (a `time.monotonic()` value), raising SwitchFailed with the reason.
    A passing failure (a timeout, a refused connection) raises opsmedic.errors.RetryableError
    instead, which the engine retries with backoff. Once the switch is made it is reported as
    made (`changed=True`), with a `warning` in details and message if confirming it failed.
    """

    @property
    def subject(self) -> str:
        """What is switched, for humans and as the announced events' resource."""
        ...

    async def switch(self, direction: Direction, deadline: float) -> Switched: ...
