"""The flag writer against a real Redis: versioned, published, conflict-checked writes; bad
input and a Redis that fails or dies mid-stream leave nothing half-written."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis

from opsmedic.errors import FlagConflict, FlagRefused, FlagStoreError
from opsmedic.flags.redis_store import RedisFlagStore
from opsmedic.flags.redis_wire import MAX_KEY_CHARS, Entry, Layout

if __package__:
    from ..services import free_port
    from ..services_redis import RedisServer
else:
    from services import free_port
    from services_redis import RedisServer

LAYOUT = Layout()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisFlagStore]:
    async with RedisFlagStore(redis_server.url, timeout_s=2.0) as flags:
        yield flags


def state(server: RedisServer) -> tuple[str, dict[str, Any]]:
    """The version counter and every stored entry, as redis-cli sees them."""
    version = server.cli("GET", LAYOUT.version)
    lines = server.cli("HGETALL", LAYOUT.flags).splitlines()
    return version, {k: json.loads(v) for k, v in zip(lines[::2], lines[1::2], strict=True)}


def published(server: RedisServer) -> redis.client.PubSub:
    """A subscription to the change channel, confirmed before it is returned."""
    pubsub = redis.Redis.from_url(server.url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(LAYOUT.channel)
    assert pubsub.get_message(timeout=5) is None  # the confirmation, swallowed
    return pubsub


def next_change(pubsub: redis.client.PubSub) -> dict[str, Any] | None:
    message = pubsub.get_message(timeout=1.0)
    return None if message is None else dict(json.loads(message["data"]))


async def test_each_write_bumps_the_version_stores_and_publishes_it(
    store: RedisFlagStore, redis_server: RedisServer
) -> None:
    pubsub = published(redis_server)
    assert await store.version() == 0
    assert await store.put("checkout", {"on": True}) == 1
    assert await store.put("search", {"on": False, "rollout": 33}) == 2
    assert await store.put("checkout", {"on": False}) == 3
    version, entries = state(redis_server)
    assert version == "3"
    assert entries == {
        "checkout": {"version": 3, "doc": {"on": False}},
        "search": {"version": 2, "doc": {"on": False, "rollout": 33}},
    }
    epoch = redis_server.cli("GET", LAYOUT.epoch)
    assert len(epoch) == 32
    changes = [next_change(pubsub) for _ in range(3)]
    assert changes == [
        {"key": "checkout", "version": 1, "epoch": epoch, "doc": {"on": True}},
        {"key": "search", "version": 2, "epoch": epoch, "doc": {"on": False, "rollout": 33}},
        {"key": "checkout", "version": 3, "epoch": epoch, "doc": {"on": False}},
    ]
    assert await store.read("checkout") == Entry("checkout", 3, {"on": False})
    assert await store.read("nothing") is None
    assert await store.version() == 3


async def test_a_key_and_a_document_travel_unchanged_in_any_script(
    store: RedisFlagStore, redis_server: RedisServer
) -> None:
    pubsub = published(redis_server)
    key = 'new "checkout"\\ é 🚩 {"x"}'
    doc = {"text": "ü\u2028\\\"'", "n": [1, 2.5, None, True], "deep": {"a": {"b": []}}}
    await store.put(key, doc)
    assert await store.read(key) == Entry(key, 1, doc)
    change = next_change(pubsub)
    assert change is not None
    assert (change["key"], change["doc"]) == (key, doc)


async def test_a_deletion_is_versioned_and_published_and_an_absent_flag_costs_nothing(
    store: RedisFlagStore, redis_server: RedisServer
) -> None:
    await store.put("checkout", {"on": True})
    pubsub = published(redis_server)
    assert await store.delete("checkout") == 2
    change = next_change(pubsub)
    assert change is not None
    assert (change["key"], change["version"], change["doc"]) == ("checkout", 2, None)
    assert await store.read("checkout") is None
    assert await store.delete("checkout") is None
    assert await store.version() == 2
    assert next_change(pubsub) is None


async def test_expected_version_stops_a_second_writer_from_overwriting(
    store: RedisFlagStore, redis_server: RedisServer
) -> None:
    assert await store.put("checkout", {"by": "a"}, expected_version=0) == 1
    with pytest.raises(
        FlagConflict, match=r"'checkout': expected version 0, but it is at version 1"
    ):
        await store.put("checkout", {"by": "b"}, expected_version=0)
    assert await store.put("checkout", {"by": "a2"}, expected_version=1) == 2
    pubsub = published(redis_server)
    # Writer b read version 1 before a's second write: refused, and nothing moved.
    with pytest.raises(FlagConflict) as caught:
        await store.put("checkout", {"by": "b"}, expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    with pytest.raises(FlagConflict, match="but it is at version 2"):
        await store.delete("checkout", expected_version=1)
    with pytest.raises(FlagConflict, match="but it is absent"):
        await store.put("other", {}, expected_version=4)
    assert state(redis_server) == ("2", {"checkout": {"version": 2, "doc": {"by": "a2"}}})
    assert next_change(pubsub) is None
    assert await store.delete("checkout", expected_version=2) == 3


async def test_two_racing_writers_on_one_version_exactly_one_wins(
    redis_server: RedisServer,
) -> None:
    async with (
        RedisFlagStore(redis_server.url) as a,
        RedisFlagStore(redis_server.url) as b,
    ):
        await a.put("checkout", {"n": 0})
        for round_ in range(1, 30):
            seen = await a.version()
            results = await asyncio.gather(
                a.put("checkout", {"n": round_, "by": "a"}, expected_version=seen),
                b.put("checkout", {"n": round_, "by": "b"}, expected_version=seen),
                return_exceptions=True,
            )
            wins = [r for r in results if isinstance(r, int)]
            assert len(wins) == 1, results
            assert [type(r) for r in results if not isinstance(r, int)] == [FlagConflict]
        assert await a.version() == 30


@pytest.mark.parametrize(
    ("key", "doc", "message"),
    [
        ("", {}, r"flag key '': must be a non-empty string"),
        (None, {}, r"flag key None: must be a non-empty string"),
        ("a\nb", {}, r"flag key 'a\\nb': holds a control character"),
        ("x" * (MAX_KEY_CHARS + 1), {}, rf"longer than {MAX_KEY_CHARS} characters"),
        ("bad\udcff", {}, r"not valid UTF-8"),
        ("k", [1, 2], r"flag 'k': the document must be a JSON object, not list"),
        ("k", {"v": math.nan}, r"flag 'k': the document is not JSON"),
        ("k", {"v": {1, 2}}, r"flag 'k': the document is not JSON"),
        ("k", {"v": "\udcff"}, r"flag 'k': the document is not JSON.*surrogates"),
        ("k", {"v": "x" * 70_000}, r"flag 'k': the document is \d+ bytes, above 65536"),
    ],
)
async def test_a_bad_key_or_document_is_refused_before_redis_is_touched(
    store: RedisFlagStore, redis_server: RedisServer, key: Any, doc: Any, message: str
) -> None:
    with pytest.raises(FlagRefused, match=message):
        await store.put(key, doc)
    assert state(redis_server) == ("", {})


async def test_a_negative_expected_version_is_refused(store: RedisFlagStore) -> None:
    with pytest.raises(ValueError, match="expected_version -1: must be an integer ≥ 0"):
        await store.put("k", {}, expected_version=-1)


async def test_garbage_written_by_hand_is_reported_and_only_an_unconditional_write_replaces_it(
    store: RedisFlagStore, redis_server: RedisServer
) -> None:
    redis_server.cli("HSET", LAYOUT.flags, "checkout", "not json")
    with pytest.raises(
        FlagStoreError, match=r"flag 'checkout' holds an unreadable value: not JSON"
    ):
        await store.read("checkout")
    with pytest.raises(FlagConflict, match="but it is unreadable"):
        await store.put("checkout", {"on": True}, expected_version=0)
    assert await store.put("checkout", {"on": True}) == 1
    assert await store.read("checkout") == Entry("checkout", 1, {"on": True})


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (
            ("SET", LAYOUT.version, "abc"),
            "the version counter opsmedic:flags:version is not an integer",
        ),
        (("SET", LAYOUT.flags, "a string"), "WRONGTYPE"),
    ],
)
async def test_a_write_redis_refuses_writes_nothing(
    store: RedisFlagStore, redis_server: RedisServer, setup: tuple[str, ...], problem: str
) -> None:
    redis_server.cli(*setup)
    before = redis_server.cli("DBSIZE")
    with pytest.raises(
        FlagStoreError, match=f"writing flag 'checkout': Redis refused it: .*{problem}"
    ):
        await store.put("checkout", {"on": True})
    assert redis_server.cli("DBSIZE") == before
    assert redis_server.cli("EXISTS", LAYOUT.epoch) == "0"


async def test_a_version_counter_set_by_hand_to_garbage_is_reported(
    store: RedisFlagStore, redis_server: RedisServer
) -> None:
    redis_server.cli("SET", LAYOUT.version, "abc")
    with pytest.raises(FlagStoreError, match=r"opsmedic:flags:version is not an integer: b'abc'"):
        await store.version()


async def test_an_unreachable_redis_is_a_clear_error_naming_the_url_without_its_password() -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    async with RedisFlagStore(url, timeout_s=1.0) as flags:
        with pytest.raises(FlagStoreError) as caught:
            await flags.put("checkout", {"on": True})
        with pytest.raises(FlagStoreError, match="reading the version"):
            await flags.version()
    text = str(caught.value)
    assert text.startswith(f"flags at redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}: writing flag")
    assert "s3cret" not in text
    # No connection was made, so nothing was sent: the outcome is known (not applied).
    assert not caught.value.outcome_unknown and "read it back" not in text


def test_a_url_that_is_not_redis_is_refused_at_once() -> None:
    with pytest.raises(FlagStoreError, match=r"flags at http://x: not a Redis URL"):
        RedisFlagStore("http://x")


async def test_a_write_that_times_out_was_applied_whole_or_not_at_all(
    store: RedisFlagStore, redis_server: RedisServer
) -> None:
    await store.put("checkout", {"on": True})
    redis_server.cli("CLIENT", "PAUSE", "1500", "WRITE")
    async with RedisFlagStore(redis_server.url, timeout_s=0.3) as impatient:
        with pytest.raises(
            FlagStoreError, match=r"no answer within 0\.3 s .*read it back"
        ) as caught:
            await impatient.put("checkout", {"on": False})
    assert caught.value.outcome_unknown
    # A write waits out the pause (Redis serves paused clients in order), so after it the
    # timed-out write has run or never will: either way whole, never a bumped counter alone.
    assert await store.put("other", {}) in (2, 3)
    version, entries = state(redis_server)
    assert (version, entries["checkout"]) in [
        ("2", {"version": 1, "doc": {"on": True}}),
        ("3", {"version": 2, "doc": {"on": False}}),
    ]


async def test_killing_redis_mid_stream_leaves_every_write_whole(
    store: RedisFlagStore, redis_server: RedisServer
) -> None:
    keys = [f"flag-{i}" for i in range(5)]
    acknowledged: dict[str, int] = {}  # key -> the version of its last acknowledged write
    failures: list[FlagStoreError] = []

    async def writer() -> None:
        # Bounded: a few thousand writes at most, and stops at the first failure.
        for n in range(5000):
            key = keys[n % len(keys)]
            try:
                acknowledged[key] = await store.put(key, {"n": n, "pad": "x" * 2000})
            except FlagStoreError as exc:
                failures.append(exc)
                return

    task = asyncio.create_task(writer())
    while len(acknowledged) < len(keys) or sum(acknowledged.values()) < 200:
        await asyncio.sleep(0.01)
        assert not task.done(), "the writer finished before Redis was killed"
    redis_server.stop(kill=True)
    await asyncio.wait_for(task, timeout=30)
    assert len(failures) == 1 and failures[0].outcome_unknown
    redis_server.start()
    version, entries = state(redis_server)
    versions = {key: entry["version"] for key, entry in entries.items()}
    # The counter is the version of the last change, and every change stored its flag.
    assert int(version) == max(versions.values())
    for key, entry in entries.items():
        # What a version says was written is what was written for it.
        n = entry["doc"]["n"]
        assert keys[n % len(keys)] == key
        assert entry["version"] >= acknowledged[key]
        assert entry["doc"]["pad"] == "x" * 2000
        assert entry["version"] == n + 1  # one writer: write n got version n + 1
    # The write in flight at the kill is either all there (one past the last
    # acknowledged) or not at all.
    assert int(version) - max(acknowledged.values()) in (0, 1)
