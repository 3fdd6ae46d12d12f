"""Redis as the flag service writes it: puts from the store's transaction, reads for syncing."""

from __future__ import annotations

import asyncio
from typing import Any

from opsmedic.flags.model import Flag
from opsmedic.flags.redis_store import RedisFlagStore
from opsmedic.flags.redis_wire import Layout, redact


class RedisMirror:
    """The Redis that flags are copied to. `put` runs on the thread that holds the store's
    transaction, with a connection and event loop of its own: waiting there for opsmedic's
    event loop could deadlock, since code on that loop may itself wait for the store's write
    lock (SQLite's is one for the whole database). A write is a person's or a rule's, rare
    enough for a connection each (about a millisecond on loopback)."""

    def __init__(self, url: str, *, layout: Layout | None = None, timeout_s: float = 2.0) -> None:
        self.url = redact(url)
        self._url, self._layout, self._timeout_s = url, layout or Layout(), timeout_s
        self._reader = self._open()  # on opsmedic's event loop: sync's reads and the checks

    def put(self, key: str, flag: Flag) -> None:
        """Store and publish `flag` (blocking); FlagStoreError naming the URL if Redis fails."""
        asyncio.run(self._put(key, flag.model_dump(mode="json")))

    async def docs(self) -> dict[str, dict[str, Any] | None]:
        return await self._reader.docs()

    async def epoch(self) -> str | None:
        return await self._reader.epoch()

    async def aclose(self) -> None:
        await self._reader.aclose()

    async def _put(self, key: str, doc: dict[str, Any]) -> None:
        async with self._open() as redis:
            await redis.put(key, doc)

    def _open(self) -> RedisFlagStore:
        return RedisFlagStore(self._url, layout=self._layout, timeout_s=self._timeout_s)
