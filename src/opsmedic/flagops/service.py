"""FlagService: every flag change goes to the store and to Redis together, then is announced."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from opsmedic.clock import Clock
from opsmedic.errors import FlagRefused, FlagStoreError, OpsmedicError
from opsmedic.flagops.events import flag_event
from opsmedic.flagops.health import FlagStoreHealth
from opsmedic.flagops.mirror import RedisMirror
from opsmedic.flags.changes import Author, FlagChange, FlagListing, FlagRecord
from opsmedic.flags.model import Flag, refusals
from opsmedic.logs import get_logger
from opsmedic.model import Event
from opsmedic.store.store import Store

Announce = Callable[[list[Event]], Awaitable[object]]


class FlagService:
    """List, read and change flags. The store is the source of truth; with a Redis, each
    change is put there inside the store's transaction, before its commit: Redis refusing or
    unreachable rolls the store's change back and raises FlagStoreError naming the URL, so
    the two never disagree about a change that was reported done. Every change is announced
    as an event (flagops/events.py)."""

    def __init__(
        self, store: Store, clock: Clock, *, redis: RedisMirror | None = None,
        announce: Announce | None = None, check_every: float = 5.0,
    ) -> None:  # fmt: skip
        self._store, self._clock, self._redis = store, clock, redis
        self.announce = announce
        self.check_every = check_every
        self._health = FlagStoreHealth(redis.url) if redis is not None else None
        self._epoch: str | None = None
        self._log = get_logger(component="flags")

    @property
    def redis_url(self) -> str | None:
        """The Redis flags are shared through (password masked); None: the store only."""
        return self._redis.url if self._redis is not None else None

    async def list(self) -> builtins.list[FlagRecord]:
        """The valid flags (listing() also gives the rows that are not)."""
        return await asyncio.to_thread(self._store.flags.list)

    async def listing(self) -> FlagListing:
        """Every flag row: the valid flags and, apart, those whose document is not one."""
        return await asyncio.to_thread(self._store.flags.listing)

    async def get(self, key: str) -> FlagRecord:
        """NotFoundError with close matches for an unknown key; FlagUnreadable for a row
        whose document is not a valid flag."""
        return await asyncio.to_thread(self._store.flags.get, key)

    async def history(self, key: str, limit: int = 100) -> builtins.list[FlagChange]:
        """Newest first."""
        return await asyncio.to_thread(self._store.flags.history, key, limit)

    async def set(self, flag: Flag, by: Author, expected_version: int | None = None) -> FlagRecord:
        """Write a whole flag (creating it, or as the next version of its key)."""
        now = self._clock.now()
        return await self._write(flag.key, lambda then: self._store.flags.set(
            flag, by, now, expected_version=expected_version, then=then))  # fmt: skip

    async def set_enabled(
        self, key: str, on: bool, by: Author, expected_version: int | None = None
    ) -> FlagRecord:
        """Switch the flag on or off (off serves its off variant to everyone)."""
        return await self._update(key, {"enabled": on}, by, expected_version)

    async def rollout(
        self, key: str, percentage: int, by: Author, expected_version: int | None = None,
        *, variant: str | None = None,
    ) -> FlagRecord:  # fmt: skip
        """Set the flag's rollout to `percentage` (0 to 100), keeping its stickiness and, unless
        `variant` names another, its variant; a flag without one gets one (boolean flags: `on`;
        others must name the variant)."""
        rollout: dict[str, Any] = {"percentage": percentage}
        if variant is not None:
            rollout["variant"] = variant
        return await self._update(key, {"rollout": rollout}, by, expected_version)

    async def set_default(
        self, key: str, variant: str, by: Author, expected_version: int | None = None
    ) -> FlagRecord:
        """Serve `variant` to everyone no rule or rollout serves another."""
        return await self._update(key, {"default": variant}, by, expected_version)

    async def undo(self, key: str, by: Author, expected_version: int | None = None) -> FlagRecord:
        """Back to the document before the latest change, as a new change."""
        now = self._clock.now()
        return await self._write(key, lambda then: self._store.flags.undo(
            key, by, now, expected_version=expected_version, then=then))  # fmt: skip

    async def _update(
        self, key: str, fields: dict[str, Any], by: Author, expected_version: int | None
    ) -> FlagRecord:
        now = self._clock.now()
        return await self._write(key, lambda then: self._store.flags.update(
            key, lambda flag: changed(flag, fields), by, now,
            expected_version=expected_version, then=then))  # fmt: skip

    async def _write(
        self, key: str, write: Callable[[Callable[[FlagChange], None]], FlagRecord]
    ) -> FlagRecord:
        """`write` on a worker thread (the store is synchronous) with the mirror it calls
        inside its transaction, then the change announced."""
        changes: builtins.list[FlagChange] = []
        redis = self._redis

        def mirror(change: FlagChange) -> None:
            if redis is not None:
                redis.put(change.key, change.after)
            changes.append(change)

        try:
            record = await asyncio.to_thread(write, mirror)
        except FlagStoreError as exc:
            self._down(exc)
            if exc.outcome_unknown:
                # Redis may hold the change the store just rolled back: put the store's back
                # (if Redis is still away, the next check's sync does it when it returns).
                await self._resend_quietly(key)
            raise
        if self._redis is not None:
            self._up()
        await self._announce(changes)
        return record

    async def _announce(self, changes: builtins.list[FlagChange]) -> None:
        for change in changes:
            self._log.info("flag.changed", key=change.key, version=change.version,
                           enabled=change.after.enabled, by=str(change.by),
                           run_id=change.by.run_id)  # fmt: skip
        if self.announce is None or not changes:
            return
        try:
            await self.announce([flag_event(change) for change in changes])
        except OpsmedicError as exc:  # the change is made; its event is the lesser loss
            self._log.error("flag.unannounced", keys=[c.key for c in changes], error=str(exc))

    async def sync(self) -> int:
        """Put into Redis every flag of the store that Redis lacks or holds otherwise (at
        start, after Redis was away or lost its data); returns how many were put. Flags in
        Redis that the store does not have are left alone."""
        if self._redis is None:
            return 0
        redis = self._redis
        try:
            have = await redis.docs()
            records = await self.list()
            stale = [r.flag.key for r in records if have.get(r.flag.key) != _doc(r.flag)]
            for key in stale:
                # Under the row's lock: a writer cannot slip a newer version in before it.
                await self._resend(key)
            self._epoch = await redis.epoch()
        except FlagStoreError as exc:
            self._down(exc)
            raise
        self._up()
        if stale:
            self._log.info("flags.synced", to=redis.url, flags=len(stale))
        return len(stale)

    async def check(self) -> None:
        """Ping Redis; sync when it came back or lost its data (a missing or new epoch)."""
        if self._redis is None or self._health is None:
            return
        try:
            epoch = await self._redis.epoch()
        except FlagStoreError as exc:
            self._down(exc)
            return
        if not self._health.up or epoch is None or epoch != self._epoch:
            try:
                await self.sync()
            except FlagStoreError:
                return  # recorded by sync: tried again at the next check
        self._up()

    async def watch(self, stop: asyncio.Event) -> None:
        """check() every `check_every` seconds until `stop` is set; a check that fails in a
        way nobody foresaw is logged and tried again, never the end of the watch."""
        while not stop.is_set():
            try:
                await self.check()
            except Exception as exc:
                self._log.exception("flags.check_failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.check_every)

    def health(self) -> FlagStoreHealth | None:
        """Redis as the last write or check found it; None without a Redis."""
        return self._health

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def _resend(self, key: str) -> None:
        redis = self._redis
        if redis is not None:
            await asyncio.to_thread(self._store.flags.resend, key, lambda r: redis.put(key, r.flag))

    async def _resend_quietly(self, key: str) -> None:
        try:
            await self._resend(key)
        except FlagStoreError as exc:
            self._log.warning("flag.resend_failed", key=key, error=str(exc))

    def _down(self, exc: FlagStoreError) -> None:
        if self._health is not None:
            if self._health.up:
                self._log.error("flags.redis_down", url=self._health.url, error=str(exc))
            self._health.down(self._clock.now(), str(exc))

    def _up(self) -> None:
        if self._health is not None:
            if not self._health.up:
                self._log.info("flags.redis_up", url=self._health.url)
            self._health.ok(self._clock.now())


def changed(flag: Flag, fields: dict[str, Any]) -> Flag:
    """`flag` with `fields` replaced, validated as a whole (a rollout's dict merged into the
    flag's own); FlagRefused naming the field when the result is not a valid flag."""
    doc = _doc(flag)
    for name, value in fields.items():
        if isinstance(value, dict) and isinstance(doc.get(name), dict):
            value = {**doc[name], **value}
        doc[name] = value
    try:
        return Flag.model_validate(doc)
    except ValidationError as exc:
        raise FlagRefused(f"flag {flag.key!r}: {refusals(exc)}") from None


def _doc(flag: Flag) -> dict[str, Any]:
    return flag.model_dump(mode="json")
