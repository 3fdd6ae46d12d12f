"""The reader's cache against a real Redis: loaded at start, kept current by the subscription,
serving stale values through an outage and missing nothing after it; garbage is skipped."""

from __future__ import annotations

import asyncio
import json
import queue
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from opsmedic.clock import ManualClock
from opsmedic.errors import FlagStoreError
from opsmedic.flags.redis_cache import RedisFlagCache
from opsmedic.flags.redis_store import RedisFlagStore
from opsmedic.flags.redis_wire import Entry, Layout

if __package__:
    from ..services import free_port
    from ..services_redis import RedisServer
else:
    from services import free_port
    from services_redis import RedisServer

LAYOUT = Layout()
WAIT_S = 15.0  # bounds a wait for a real signal on a loaded machine; no timing is asserted
Seen = tuple[str, dict[str, Any] | None, int]


class Changes:
    """An on_change that queues what it is told, for a test to take in order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Seen] = queue.Queue()

    def __call__(self, key: str, doc: dict[str, Any] | None, version: int) -> None:
        self._queue.put((key, doc, version))

    def take(self, count: int) -> list[Seen]:
        return [self._queue.get(timeout=WAIT_S) for _ in range(count)]

    def none_left(self) -> bool:
        return self._queue.empty()


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {WAIT_S} s"
        await asyncio.sleep(0.01)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisFlagStore]:
    async with RedisFlagStore(redis_server.url) as flags:
        yield flags


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def open_cache(changes: Changes) -> Iterator[Callable[..., RedisFlagCache]]:
    """Starts caches (on_change: `changes`, quick backoff) and closes them at the end."""
    opened: list[RedisFlagCache] = []

    def start(url: str, *, ready: bool = True, **options: Any) -> RedisFlagCache:
        options = {"on_change": changes, "backoff_s": (0.02, 0.1), **options}
        cache = RedisFlagCache(url, **options).start()
        opened.append(cache)
        assert not ready or cache.wait_ready(WAIT_S)
        return cache

    yield start
    for cache in opened:
        cache.close()


async def test_it_loads_every_flag_then_follows_each_change(
    store: RedisFlagStore, redis_server: RedisServer, open_cache: Any, changes: Changes
) -> None:
    await store.put("checkout", {"on": True})
    await store.put("search", {"on": False})
    cache = open_cache(redis_server.url)
    assert cache.get("checkout") == {"on": True}
    assert cache.entry("search") == Entry("search", 2, {"on": False})
    assert cache.get("nothing") is None
    health = cache.health()
    assert (health.connected, health.ready, health.version, health.flags) == (True, True, 2, 2)
    assert (health.stale_since, health.staleness_s, cache.staleness_s) == (None, None, None)
    assert changes.none_left()  # the first load is no change
    await store.put("checkout", {"on": False})
    await store.delete("search")
    await store.put("new", {"rollout": 5})
    assert changes.take(3) == [
        ("checkout", {"on": False}, 3),
        ("search", None, 4),
        ("new", {"rollout": 5}, 5),
    ]
    assert cache.entries() == {
        "checkout": Entry("checkout", 3, {"on": False}),
        "new": Entry("new", 5, {"rollout": 5}),
    }
    assert cache.health().version == 5


@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
async def test_through_an_outage_it_serves_the_last_values_as_stale_then_catches_up(
    store: RedisFlagStore,
    redis_server: RedisServer,
    open_cache: Any,
    changes: Changes,
    kill: bool,
) -> None:
    await store.put("checkout", {"on": True})
    clock = ManualClock()
    cache = open_cache(redis_server.url, clock=clock)
    redis_server.stop(kill=kill)
    await until(lambda: not cache.health().connected, "seen as disconnected")
    clock.advance(7.5)
    health = cache.health()
    assert health.stale_since == clock.now() - 7.5
    assert health.staleness_s == cache.staleness_s == 7.5
    assert health.ready and health.reconnects == 1
    assert health.last_error is not None and "Connection" in health.last_error
    # Served from memory, without Redis.
    assert cache.get("checkout") == {"on": True}
    with pytest.raises(FlagStoreError, match=f"flags at {redis_server.url}: writing flag"):
        await store.put("checkout", {"on": False})
    redis_server.start()
    await until(lambda: cache.health().connected, "reconnected")
    assert cache.staleness_s is None
    await store.put("checkout", {"on": False})
    assert changes.take(1) == [("checkout", {"on": False}, 2)]


async def test_changes_made_while_it_is_cut_off_are_caught_up_by_version(
    store: RedisFlagStore, redis_server: RedisServer, open_cache: Any, changes: Changes
) -> None:
    # A user of its own, which the test can lock out while Redis keeps serving the writer:
    # the reader is then cut off for certain while the changes are made.
    redis_server.cli("ACL", "SETUSER", "reader", "on", ">pw", "~*", "&*", "+@all")
    url = f"redis://reader:pw@127.0.0.1:{redis_server.port}/0"
    for key in ("same", "changed", "deleted"):
        await store.put(key, {"v": 1})
    cache = open_cache(url)
    redis_server.cli("ACL", "SETUSER", "reader", "off")
    redis_server.cli("CLIENT", "KILL", "USER", "reader")
    await until(lambda: not cache.health().connected, "cut off")
    await store.put("changed", {"v": 2})
    await store.delete("deleted")
    await store.put("added", {"v": 1})
    await store.put("added", {"v": 2})
    assert cache.get("changed") == {"v": 1} and cache.get("deleted") == {"v": 1}
    redis_server.cli("ACL", "SETUSER", "reader", "on")
    seen = sorted(changes.take(3))
    assert seen == [("added", {"v": 2}, 7), ("changed", {"v": 2}, 4), ("deleted", None, 7)]
    assert changes.none_left()  # "same" did not change: no call for it
    assert cache.entries() == {
        "same": Entry("same", 1, {"v": 1}),
        "changed": Entry("changed", 4, {"v": 2}),
        "added": Entry("added", 7, {"v": 2}),
    }
    assert cache.health().version == 7


class WriteBeforeLoad(RedisFlagCache):
    """A cache in whose first load, after SUBSCRIBE, a writer gets in first."""

    def __init__(self, url: str, write: Callable[[], Any], **options: Any) -> None:
        super().__init__(url, **options)
        self._write_once: Callable[[], Any] | None = write
        self.loads = 0

    def _sync(self) -> None:
        if self._write_once is not None:
            asyncio.run(self._write_once())
            self._write_once = None
        self.loads += 1
        super()._sync()


async def test_a_change_between_subscribe_and_the_first_load_is_neither_lost_nor_doubled(
    store: RedisFlagStore, redis_server: RedisServer, changes: Changes
) -> None:
    await store.put("checkout", {"on": True})

    async def write() -> None:
        async with RedisFlagStore(redis_server.url) as other:
            await other.put("checkout", {"on": False})
            await other.delete("checkout")
            await other.put("checkout", {"on": "again"})

    # MONITOR lists every command in the order Redis ran them.
    monitor = redis_server.monitor()
    with WriteBeforeLoad(redis_server.url, write, on_change=changes) as cache:
        assert cache.wait_ready(WAIT_S)
        monitor.terminate()
        ran = monitor.communicate(timeout=WAIT_S)[0].splitlines()
        subscribed = next(n for n, line in enumerate(ran) if '"SUBSCRIBE"' in line)
        written = next(n for n, line in enumerate(ran) if '"{\\"on\\":false}"' in line)
        loaded = max(n for n, line in enumerate(ran) if '"EVALSHA"' in line and '"10000"' in line)
        assert subscribed < written < loaded, ran
        assert cache.entry("checkout") == Entry("checkout", 4, {"on": "again"})
        # Their messages arrive after the load and are dropped by version, not reapplied
        # (which would flip the flag off, away and back on again).
        await store.put("after", {})
        assert changes.take(1) == [("after", {}, 5)]
        assert changes.none_left()
        assert cache.loads == 1  # no gap was seen, so no second load was needed
        assert cache.entry("checkout") == Entry("checkout", 4, {"on": "again"})


async def test_garbage_written_by_hand_is_skipped_and_the_other_flags_keep_working(
    store: RedisFlagStore, redis_server: RedisServer, open_cache: Any, changes: Changes
) -> None:
    await store.put("good", {"on": True})
    garbage = {
        "text": "not json",
        "list": "[1, 2]",
        "no-version": '{"doc": {}}',
        "bool-version": '{"version": true, "doc": {}}',
        "doc-list": '{"version": 3, "doc": [1]}',
        "huge": '{"version": 3, "doc": {"x": "' + "y" * 70_000 + '"}}',
    }
    for key, value in garbage.items():
        redis_server.cli("HSET", LAYOUT.flags, key, value)
    cache = open_cache(redis_server.url)
    assert cache.entries() == {"good": Entry("good", 1, {"on": True})}
    expected = {
        "text": "not JSON",
        "list": "a JSON list, not an object",
        "no-version": "its version None is not a positive integer",
        "bool-version": "its version True is not a positive integer",
        "doc-list": "its doc is list, not a JSON object",
        "huge": "above the limit of 65536",
    }
    for key, problem in expected.items():
        assert cache.get(key) is None
        found = cache.problem(key)
        assert found is not None and f"flag {key!r} in opsmedic:flags skipped" in found
        assert problem in found
    assert cache.problem("good") is None
    # A change of the flag repairs it, and a message that is not ours is skipped too. (The
    # other garbage goes first: the reload such a message causes would report it again, over
    # the message's own error.)
    redis_server.cli("HDEL", LAYOUT.flags, *[key for key in garbage if key != "text"])
    await store.put("text", {"fixed": True})
    redis_server.cli("PUBLISH", LAYOUT.channel, "not json")
    await store.put("good", {"on": False})
    assert changes.take(2) == [("text", {"fixed": True}, 2), ("good", {"on": False}, 3)]
    assert cache.problem("text") is None
    health = cache.health()
    assert health.connected
    assert health.last_error is not None and "a message on opsmedic:flags:changes skipped" in (
        health.last_error
    )


async def test_a_skipped_version_or_lost_data_makes_it_reload(
    store: RedisFlagStore, redis_server: RedisServer, open_cache: Any, changes: Changes
) -> None:
    await store.put("a", {"n": 1})
    await store.put("b", {"n": 1})
    cache = open_cache(redis_server.url)
    # A version used without a message (by hand): the next message shows the gap.
    redis_server.cli("HSET", LAYOUT.flags, "by-hand", '{"version": 3, "doc": {"n": 1}}')
    redis_server.cli("INCR", LAYOUT.version)
    await store.put("a", {"n": 2})
    assert sorted(changes.take(2)) == [("a", {"n": 2}, 4), ("by-hand", {"n": 1}, 3)]
    # Redis loses everything (FLUSHALL, or a restart without persistence): the versions
    # start again at 1, under a new epoch, and the reader replaces what it held.
    redis_server.cli("FLUSHALL")
    await store.put("c", {"n": 1})
    assert sorted(changes.take(4)) == [
        ("a", None, 1),
        ("b", None, 1),
        ("by-hand", None, 1),
        ("c", {"n": 1}, 1),
    ]
    assert cache.entries() == {"c": Entry("c", 1, {"n": 1})}


async def test_an_on_change_that_raises_is_recorded_and_changes_keep_coming(
    store: RedisFlagStore, redis_server: RedisServer, open_cache: Any, changes: Changes
) -> None:
    def fussy(key: str, doc: dict[str, Any] | None, version: int) -> None:
        changes(key, doc, version)
        if key == "bad":
            raise RuntimeError("the application's bug")

    cache = open_cache(redis_server.url, on_change=fussy)
    await store.put("bad", {})
    await store.put("good", {})
    assert changes.take(2) == [("bad", {}, 1), ("good", {}, 2)]
    assert cache.get("bad") == {}
    assert (
        cache.health().last_error == "on_change('bad') raised RuntimeError: the application's bug"
    )


async def test_it_starts_without_redis_and_is_ready_once_redis_comes(
    tmp_path: Any, open_cache: Any
) -> None:
    server = RedisServer(tmp_path, free_port())
    cache = open_cache(server.url, ready=False)
    assert not cache.wait_ready(0.2)
    health = cache.health()
    assert (health.connected, health.ready, health.flags) == (False, False, 0)
    assert health.stale_since is not None
    assert health.last_error is not None and "Connection" in health.last_error
    assert cache.get("checkout") is None
    server.start()
    try:
        async with RedisFlagStore(server.url) as flags:
            await flags.put("checkout", {"on": True})
        assert cache.wait_ready(WAIT_S)
        await until(lambda: cache.get("checkout") == {"on": True}, "loaded")
    finally:
        server.stop()


async def test_too_many_flags_is_an_error_not_an_unbounded_load(
    store: RedisFlagStore, redis_server: RedisServer, open_cache: Any
) -> None:
    for n in range(4):
        await store.put(f"f{n}", {})
    cache = open_cache(redis_server.url, ready=False, max_flags=3)
    await until(lambda: "flags" in str(cache.health().last_error), "refused")
    assert not cache.health().ready
    assert "opsmedic:flags holds 4 flags, above 3" in str(cache.health().last_error)


def test_a_url_that_is_not_redis_is_refused_at_once() -> None:
    with pytest.raises(FlagStoreError, match=r"flags at http://x: not a Redis URL"):
        RedisFlagCache("http://x")


async def test_under_random_writes_and_dropped_connections_it_ends_equal_to_redis(
    redis_server: RedisServer, open_cache: Any, changes: Changes
) -> None:
    rng = random.Random(15)
    keys = [f"k{n}" for n in range(6)]
    cache = open_cache(redis_server.url)
    async with RedisFlagStore(redis_server.url) as a, RedisFlagStore(redis_server.url) as b:

        async def writer(store: RedisFlagStore, name: str) -> None:
            for n in range(150):
                key = rng.choice(keys)
                if rng.random() < 0.25:
                    await store.delete(key)
                else:
                    await store.put(key, {"by": name, "n": n})
                if n % 50 == 25 and name == "a":
                    # Cut the reader's subscription: it reconnects and resynchronises while
                    # the writes go on.
                    redis_server.cli("CLIENT", "KILL", "TYPE", "pubsub")

        await asyncio.gather(writer(a, "a"), writer(b, "b"))
        final = await a.version()
    await until(lambda: cache.health().version == final, f"at version {final}")
    stored = {key: entry for key in keys if (entry := _stored(redis_server, key)) is not None}
    assert cache.entries() == stored
    assert cache.health().reconnects >= 1
    # Each flag's changes reached on_change in version order, ending at what is stored.
    last: dict[str, tuple[int, dict[str, Any] | None]] = {}
    while not changes.none_left():
        key, doc, version = changes.take(1)[0]
        assert version > last.get(key, (0, None))[0]
        last[key] = (version, doc)
    for key, entry in stored.items():
        assert last[key] == (entry.version, entry.doc)
    for key in last.keys() - stored.keys():
        assert last[key][1] is None  # deleted last


def _stored(server: RedisServer, key: str) -> Entry | None:
    raw = server.cli("HGET", LAYOUT.flags, key)
    return None if not raw else Entry(key, **json.loads(raw))
