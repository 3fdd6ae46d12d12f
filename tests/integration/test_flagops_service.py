"""FlagService on both databases with a real Redis: each change lands in both or in neither,
is announced once, and concurrent writers leave Redis holding what the store holds."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import ValidationError

from opsmedic.clock import SystemClock
from opsmedic.errors import FlagConflict, FlagStoreError
from opsmedic.flagops.mirror import RedisMirror
from opsmedic.flagops.service import FlagService
from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.model import Event
from opsmedic.store.store import Store

if __package__:
    from ..services_redis import RedisServer
else:
    from services_redis import RedisServer

ANN = Author("cli", "ann")


class Announced:
    """Where the service's events go in these tests: kept in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, events: list[Event]) -> None:
        self.events += events


def _service(store: Store, server: RedisServer, announced: Announced) -> FlagService:
    return FlagService(store, SystemClock(), redis=RedisMirror(server.url, timeout_s=1.0),
                       announce=announced)  # fmt: skip


def _in_redis(server: RedisServer, key: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(server.cli("HGET", "opsmedic:flags", key))["doc"]
    return doc


async def test_every_change_is_in_both_and_announced(
    store: Store, redis_server: RedisServer
) -> None:
    announced = Announced()
    flags = _service(store, redis_server, announced)
    try:
        await flags.set(Flag.model_validate({"key": "k", "default": "on"}), ANN, 0)
        await flags.set_enabled("k", False, ANN)
        await flags.set_enabled("k", False, ANN)  # unchanged: nothing written or announced
        await flags.rollout("k", 25, ANN, expected_version=2)
        last = await flags.undo("k", ANN)
        assert (last.version, last.flag.rollout) == (4, None)
        assert _in_redis(redis_server, "k") == last.flag.model_dump(mode="json")
        assert [e.labels["version"] for e in announced.events] == ["1", "2", "3", "4"]
        assert [e.status.value for e in announced.events] == ["resolved", *["firing"] * 3]
        with pytest.raises(FlagConflict):
            await flags.set_enabled("k", True, ANN, expected_version=3)
        big = {"key": "big", "type": "string", "variants": {"a": "x" * 70_000}, "default": "a"}
        with pytest.raises(ValidationError, match="at most 65536 bytes"):
            Flag.model_validate(big)  # on every path: a flag Redis could not carry
        assert [r.flag.key for r in await flags.list()] == ["k"]
        assert len(announced.events) == 4
    finally:
        await flags.aclose()


async def test_redis_down_writes_nothing_anywhere(store: Store, redis_server: RedisServer) -> None:
    announced = Announced()
    flags = _service(store, redis_server, announced)
    try:
        await flags.set(Flag.model_validate({"key": "k", "default": "on"}), ANN)
        redis_server.stop()
        with pytest.raises(FlagStoreError, match=f"flags at {redis_server.url}"):
            await flags.set_enabled("k", False, ANN)
        with pytest.raises(FlagStoreError):
            await flags.set(Flag.model_validate({"key": "new", "default": "on"}), ANN)
        record = await flags.get("k")
        assert (record.version, record.flag.enabled) == (1, True)
        assert len(await flags.history("k")) == 1
        assert [r.flag.key for r in await flags.list()] == ["k"]
        health = flags.health()
        assert health is not None and health.up is False and health.down_since is not None
        assert len(announced.events) == 1
        redis_server.start()
        await flags.check()
        assert flags.health().up is True  # type: ignore[union-attr]
        assert _in_redis(redis_server, "k")["enabled"] is True
    finally:
        await flags.aclose()


async def test_concurrent_writers_leave_redis_as_the_store(
    store: Store, redis_server: RedisServer
) -> None:
    flags = _service(store, redis_server, Announced())
    try:
        await flags.set(Flag.model_validate({"key": "k", "default": "on"}), ANN)
        await asyncio.gather(*(flags.rollout("k", p, ANN) for p in (10, 20, 30, 40, 50, 60)))
        record = await flags.get("k")
        assert record.version == 7
        assert _in_redis(redis_server, "k") == record.flag.model_dump(mode="json")
    finally:
        await flags.aclose()


async def test_a_check_that_fails_unforeseen_does_not_end_the_watch(
    store: Store, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = _service(store, redis_server, Announced())
    flags.check_every = 0.01
    checks: list[int] = []
    real = flags.check

    async def check() -> None:
        checks.append(1)
        if len(checks) == 1:
            raise RuntimeError("a bug nobody foresaw")
        await real()

    monkeypatch.setattr(flags, "check", check)
    stop = asyncio.Event()
    watch = asyncio.create_task(flags.watch(stop))
    try:
        for _ in range(500):  # bounded: about 5 s
            if len(checks) >= 3:
                break
            await asyncio.sleep(0.01)
        assert len(checks) >= 3 and not watch.done()
        health = flags.health()
        assert health is not None and health.up
    finally:
        stop.set()
        await watch
        await flags.aclose()
