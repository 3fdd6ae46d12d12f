"""An engine's owner id on the runs it claims, renewed while it lives (docs/engine.md)."""

from __future__ import annotations

import asyncio
from typing import Any

from opsmedic.clock import Clock
from opsmedic.config.schema import RunLease
from opsmedic.engine.journal import Journal
from opsmedic.store.run_owner import RunOwner
from opsmedic.store.store import Store


class Leases:
    """Gives the store this engine's owner (every run it moves to `running` carries it) and
    renews the lease on them every `renew_every`: another process's recovery takes a run only
    once its lease ran out, or at once when its owner is provably gone (store/run_owner.py)."""

    def __init__(
        self, store: Store, journal: Journal, clock: Clock, settings: RunLease, log: Any
    ) -> None:
        self._store, self._journal, self._log = store, journal, log
        self._settings, self._clock = settings, clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> RunOwner:
        """A new owner for this engine's runs from now on, and its renewals."""
        owner = RunOwner(self._clock.now, self._settings.duration)
        self._store.owner = owner
        self._task = asyncio.create_task(self._renew(), name="opsmedic-leases")
        return owner

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self._settings.renew_every)
            try:
                await self._journal.call(self._store.renew_leases)
            except Exception as exc:  # the store is down: the next renewal tries again
                self._log.error("engine.lease_renewal_failed", error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
