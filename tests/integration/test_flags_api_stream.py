"""The local flags: `opsmedic run`'s stream of the store's flags to FlagClient over
ApiFlagStream — a change written to the store by another process reaches the client, an
outage serves stale values and misses nothing, a slow reader is dropped, and the stream
needs the read scope."""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import HTTPException
from sqlalchemy.pool import NullPool

from api_service import running_api
from opsmedic.api.flag_stream import FlagFeed
from opsmedic.clock import ManualClock
from opsmedic.errors import StoreError
from opsmedic.flags.api_stream import ApiFlagStream
from opsmedic.flags.changes import Author
from opsmedic.flags.client import FlagClient
from opsmedic.flags.evaluate import ErrorCode, Reason
from opsmedic.flags.model import Flag
from opsmedic.store import Store
from opsmedic.tokens import Scope as TokenScope

if __package__:
    from ..services import free_port
else:
    from services import free_port

WAIT_S = 15.0  # bounds a wait for a real signal on a loaded machine; no timing is asserted
FLAGS = {"new_checkout": {"default": "off", "rollout": {"percentage": 30}},
         "theme": {"type": "string", "variants": {"a": "#222"}, "default": "a"}}  # fmt: skip
# Another process, as the CLI would be: a flag switched off in the store.
WRITER = """
import sys
from opsmedic.flags.changes import Author
from opsmedic.flags.model import Flag
from opsmedic.store import Store
from opsmedic.tokens import Scope as TokenScope
store = Store(sys.argv[1])
flag = store.flags.get("new_checkout").flag
store.flags.set(flag.model_copy(update={"enabled": False}), Author("cli", "ann"), 1.0)
store.close()
"""


async def until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"still not {what} after {WAIT_S} s"
        await asyncio.sleep(0.01)


def _hand_edit(url: str, key: str, doc: str) -> None:
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE flags SET doc = :doc, version = version + 1 "
                                 "WHERE key = :key"), {"doc": doc, "key": key})  # fmt: skip
    finally:
        engine.dispose()


async def test_a_change_written_by_another_process_reaches_the_client(tmp_path: Path) -> None:
    async with running_api(tmp_path, flags=FLAGS) as api:
        stream = ApiFlagStream(api.url, api.tokens["read"], backoff_s=(0.02, 0.2))
        client = FlagClient(stream)
        changes: queue.Queue[tuple[str, int, bool]] = queue.Queue()
        client.on_change(lambda key, version: changes.put(
            (key, version, client.boolean("new_checkout", True, {"targetingKey": "u"}))))  # fmt: skip
        with stream:
            assert await asyncio.to_thread(client.wait_ready, WAIT_S)
            found = client.details("new_checkout", True, {"targetingKey": "user-7"})
            assert (found.reason, found.version, found.staleness_s) == (Reason.DEFAULT, 1, None)
            assert client.string("theme", "x") == "#222"
            writer = [sys.executable, "-c", WRITER, api.store.url]
            done = await asyncio.to_thread(subprocess.run, writer, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            await until(lambda: not changes.empty(), "told of the change")
            assert changes.get() == ("new_checkout", 2, False)
            assert client.details("new_checkout", True).reason is Reason.DISABLED
            # A document edited by hand in the store reaches the reader as itself: an error
            # for that flag alone.
            _hand_edit(api.store.url, "theme", '{"type": "string", "rollout": 7}')
            await until(lambda: not changes.empty(), "told of the hand edit")
            changes.get()
            found = client.details("theme", "x")
            assert (found.value, found.error_code) == ("x", ErrorCode.PARSE_ERROR)
            assert "flag 'theme' (version 2) is not a valid flag" in str(found.error_message)
            assert client.details("new_checkout", True).reason is Reason.DISABLED
            _hand_edit(api.store.url, "theme", "[1, 2]")  # not even an object
            await until(lambda: not changes.empty(), "told of the second edit")
            found = client.details("theme", "x")
            assert (found.value, found.error_code) == ("x", ErrorCode.PARSE_ERROR)
            assert "its document is a list, not a JSON object" in str(found.error_message)


async def test_through_an_outage_it_serves_stale_values_then_misses_nothing(
    tmp_path: Path,
) -> None:
    port, clock = free_port(), ManualClock()
    config = {"flags": FLAGS, "api": {"port": port}}
    async with running_api(tmp_path, **config) as api:
        token, url = api.tokens["read"], api.url
        stream = ApiFlagStream(url, token, backoff_s=(0.02, 0.2), clock=clock)
        client = FlagClient(stream)
        changes: queue.Queue[tuple[str, int]] = queue.Queue()
        client.on_change(lambda key, version: changes.put((key, version)))
        stream.start()
        assert await asyncio.to_thread(client.wait_ready, WAIT_S)
    try:
        # The API stopped: its stream ended, and the values are served as they were.
        await until(lambda: not stream.connected, "disconnected")
        clock.advance(3.0)
        found = client.details("new_checkout", True, {"targetingKey": "user-7"})
        assert (found.reason, found.staleness_s) == (Reason.DEFAULT, 3.0)
        store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
        flag = Flag.model_validate({"key": "late", "default": "off"})
        store.flags.set(flag, Author("cli", "ann"), 2.0)  # while nobody streams
        store.close()
        async with running_api(tmp_path, **config) as again:
            # The same token, in the same store, on the same port.
            assert again.url == url
            await until(lambda: stream.connected, "reconnected")
            assert changes.get(timeout=WAIT_S) == ("late", 1)
            assert client.details("late", True).value is False
            assert client.details("late", True).staleness_s is None
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("token", "status"), [(None, 401), ("ingest", 403), ("operate", 403), ("read", 200)]
)
async def test_the_stream_needs_the_read_scope(
    tmp_path: Path, token: str | None, status: int
) -> None:
    async with running_api(tmp_path, flags=FLAGS) as api:
        secret = api.tokens[token] if token else None
        async with api.client(secret) as http, http.stream("GET", "/api/v1/flags/stream") as r:
            assert r.status_code == status
            if status == 200:
                assert r.headers["content-type"].startswith("text/event-stream")
                lines = r.aiter_lines()
                assert await anext(lines) == "event: snapshot"
                assert '"new_checkout":{"version":1' in await anext(lines)
            else:
                assert "token" in (await r.aread()).decode()
        stream = ApiFlagStream(api.url, "not-a-token", backoff_s=(0.02, 0.2))
        with stream:
            await until(lambda: stream.last_error is not None, "refused")
            assert "answered 401" in str(stream.last_error)
            assert not stream.wait_ready(0)
            found = FlagClient(stream).details("new_checkout", True)
            assert (found.value, found.error_code) == (True, ErrorCode.PROVIDER_NOT_READY)


async def test_a_full_feed_refuses_and_a_slow_reader_is_dropped(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    store.migrate()
    try:
        feed = FlagFeed(store, max_subscribers=1, queue_events=5)
        snapshot, slow = await feed.subscribe()
        assert snapshot == b'event: snapshot\ndata: {"flags":{}}\n\n'
        with pytest.raises(HTTPException) as refused:
            await feed.subscribe()
        assert refused.value.status_code == 503
        declared = {f"f{i}": Flag.model_validate({"key": f"f{i}"}) for i in range(6)}
        store.flags.seed(declared, Author("cli", "ann"), 1.0)
        # Six changes for a queue of five, never read: the reader is told to go.
        await until(lambda: slow.qsize() == 1 and slow.get_nowait() == b"", "dropped")
        snapshot, fresh = await feed.subscribe()  # its place is free; it starts afresh
        assert snapshot.count(b'"version":1') == 6
        feed.close()
        assert fresh.get_nowait() == b""
        with pytest.raises(HTTPException, match="stopping"):  # else it would hold the stop up
            await feed.subscribe()
    finally:
        store.close()


async def test_a_burst_of_readers_gets_no_more_streams_than_the_limit(tmp_path: Path) -> None:
    """Every reader reconnects at once after an API restart: the limit holds for the burst
    (the places are taken before the first await, not after the poller starts)."""
    store = Store(f"sqlite:///{tmp_path / 'opsmedic.db'}")
    store.migrate()
    try:
        feed = FlagFeed(store, max_subscribers=3)
        got = await asyncio.gather(*(feed.subscribe() for _ in range(12)), return_exceptions=True)
        refused = [g for g in got if isinstance(g, HTTPException)]
        assert len(got) - len(refused) == 3
        assert {r.status_code for r in refused} == {503}
        feed.close()
    finally:
        store.close()


async def test_a_revoked_token_gets_no_more_changes(tmp_path: Path) -> None:
    async with running_api(tmp_path, flags=FLAGS) as api:
        secret = api.token(TokenScope.READ, name="revoke-me")
        async with api.client(secret) as http, http.stream("GET", "/api/v1/flags/stream") as r:
            lines = r.aiter_lines()
            assert await anext(lines) == "event: snapshot"
            async with api.client(api.tokens["admin"]) as admin:
                assert (await admin.delete("/api/v1/tokens/revoke-me")).status_code == 200
            async with api.client(api.tokens["operate"]) as operate:
                flip = await operate.post("/api/v1/flags/new_checkout/enabled",
                                          json={"enabled": False})  # fmt: skip
                assert flip.status_code == 200

            async def rest_of_stream() -> list[str]:
                return [line async for line in lines]

            # It ends instead (bounded: a stream that goes on is the failure).
            rest = await asyncio.wait_for(rest_of_stream(), 3 * WAIT_S)
        assert not any(line.startswith("event: change") for line in rest), rest


async def test_an_unreachable_api_leaves_the_client_not_ready() -> None:
    stream = ApiFlagStream(f"http://127.0.0.1:{free_port()}", "t", backoff_s=(0.02, 0.2))
    with stream:
        await until(lambda: stream.last_error is not None, "failed")
        assert isinstance(stream.last_error, str) and "ConnectError" in stream.last_error
        assert stream.staleness_s is not None and stream.entries() == {}


async def test_a_store_that_fails_ends_the_streams_until_it_answers_again(
    tmp_path: Path,
) -> None:
    db = tmp_path / "opsmedic.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.flags.set(Flag.model_validate({"key": "a"}), Author("cli", "ann"), 1.0)
    try:
        feed = FlagFeed(store)
        _, stream = await feed.subscribe()
        # The database gone from under the store: its next connection finds no flags table.
        store.close()
        db.rename(tmp_path / "moved.db")
        await until(lambda: stream.qsize() == 1 and stream.get_nowait() == b"", "ended")
        with pytest.raises(StoreError, match="flags"):  # the API's 503
            await feed.subscribe()
        store.close()
        db.unlink()
        (tmp_path / "moved.db").rename(db)
        snapshot, _ = await feed.subscribe()
        assert b'"a":{"version":1' in snapshot
        feed.close()
    finally:
        store.close()
