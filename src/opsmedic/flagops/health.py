"""What opsmedic knows of its own Redis connection: up or since when down, and why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FlagStoreHealth:
    """Kept by the writer (FlagService): each write, sync and periodic check updates it.
    `up` is None until the first contact."""

    url: str  # password masked
    up: bool | None = None
    down_since: float | None = None  # epoch seconds; None while up
    checked_at: float | None = None
    last_error: str = ""

    def ok(self, now: float) -> None:
        self.up, self.down_since, self.checked_at = True, None, now

    def down(self, now: float, error: str) -> None:
        if self.down_since is None:
            self.down_since = now
        self.up, self.checked_at, self.last_error = False, now, error

    def staleness_s(self, now: float) -> float | None:
        """How long Redis has been away (its readers' copies possibly behind the store)."""
        return max(0.0, now - self.down_since) if self.down_since is not None else None
