"""The poller against a real local HTTP server whose feed changes between polls."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import structlog
from structlog.testing import capture_logs

from opsmedic.clock import ManualClock
from opsmedic.config.poller import PollerConfig
from opsmedic.model import Event, Status
from opsmedic.sources import poller as poller_module
from opsmedic.sources.poller import BODY_LIMIT, Poller, PollResult
from opsmedic.store.store import Store

TOKEN = "s3cret-token-4711"


@dataclass
class Behaviour:
    """What the server answers; tests change it between polls."""

    status: int = 200
    body: bytes = b"[]"
    delay: float = 0.0
    # Answers used once each, in order, before falling back to status and body.
    script: list[tuple[int, bytes]] = field(default_factory=list)
    requests: list[tuple[dict[str, list[str]], dict[str, str]]] = field(default_factory=list)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.behaviour = Behaviour()
        self.release = threading.Event()  # frees slow answers at teardown, instead of sleeping

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout, oversized body) is expected here


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        b = self.server.behaviour
        b.requests.append((parse_qs(urlsplit(self.path).query), dict(self.headers)))
        status, body = b.script.pop(0) if b.script else (b.status, b.body)
        if b.delay:
            self.server.release.wait(b.delay)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Feed:
    server: Server

    @property
    def behaviour(self) -> Behaviour:
        return self.server.behaviour

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/alerts"

    def serve(self, *items: Any) -> None:
        """Answer with these alerts, inside the envelope the default config expects."""
        self.behaviour.body = json.dumps({"data": {"alerts": list(items)}}).encode()

    def queries(self) -> list[dict[str, list[str]]]:
        return [query for query, _ in self.behaviour.requests]


@pytest.fixture
def feed() -> Iterator[Feed]:
    server = Server()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield Feed(server)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


class MemoryCursors:
    """The CursorStore protocol in memory; the real one lives in the SQL store."""

    def __init__(self) -> None:
        self.saved: dict[str, str] = {}

    async def load_cursor(self, name: str) -> str | None:
        return self.saved.get(name)

    async def save_cursor(self, name: str, value: str) -> None:
        self.saved[name] = value


class Sink:
    """Collects emitted batches; can be told to fail, as a store that lost its disk would."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []
        self.fail = False
        self.arrived = asyncio.Event()

    async def __call__(self, events: list[Event]) -> None:
        if self.fail:
            raise RuntimeError("store unavailable")
        self.batches.append(events)
        self.arrived.set()

    @property
    def events(self) -> list[Event]:
        return [e for batch in self.batches for e in batch]


def alert(n: int, updated: str = "2026-12-02T10:00:00Z", state: str = "open", **extra: Any) -> Any:
    return {"id": n, "name": f"alert-{n}", "target": {"service": "uplink", "host": "sw-1"},
            "level": "critical", "state": state, "updated_at": updated, **extra}  # fmt: skip


def config(url: str, **overrides: Any) -> PollerConfig:
    data: dict[str, Any] = {
        "name": "legacy-nms",
        "url": url,
        "timeout": "5s",
        "items": "data.alerts",
        "map": {
            "kind": "name",
            "resource": "target.service",
            "host": "target.host",
            "severity": "level",
            "status": "state",
            "fingerprint": "id",
            "time": "updated_at",
        },
        "status_map": {"open": "firing", "closed": "resolved"},
        "cursor": {"field": "updated_at", "param": "since"},
    }
    return PollerConfig.model_validate({**data, **overrides})


def poller(cfg: PollerConfig, sink: Sink, cursors: MemoryCursors) -> Poller:
    return Poller(cfg, sink, cursors, ManualClock(), structlog.get_logger())


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


async def test_each_item_is_read_once_across_polls(feed: Feed) -> None:
    sink, cursors = Sink(), MemoryCursors()
    p = poller(config(feed.url), sink, cursors)
    feed.serve(alert(1, "2026-12-02T10:00:00Z"), alert(2, "2026-12-02T10:01:00Z"))
    assert await p.poll_once() == PollResult(emitted=2)
    assert await p.poll_once() == PollResult(already_read=2)
    feed.serve(
        alert(1, "2026-12-02T10:00:00Z"),
        alert(2, "2026-12-02T10:01:00Z"),
        alert(2, "2026-12-02T10:05:00Z", state="closed"),  # the same alert, updated
    )
    assert await p.poll_once() == PollResult(emitted=1, already_read=2)
    assert kinds(sink.events) == ["alert-1", "alert-2", "alert-2"]
    resolved = sink.events[-1]
    assert resolved.status is Status.RESOLVED
    assert resolved.fingerprint == sink.events[1].fingerprint == "2"
    assert resolved.payload == alert(2, "2026-12-02T10:05:00Z", state="closed")
    assert (resolved.source, resolved.resource, resolved.host) == ("legacy-nms", "uplink", "sw-1")


async def test_nothing_is_read_again_after_a_restart(feed: Feed) -> None:
    sink, cursors = Sink(), MemoryCursors()
    feed.serve(alert(1, "2026-12-02T10:00:00Z"), alert(2, "2026-12-02T10:01:00Z"))
    assert (await poller(config(feed.url), sink, cursors).poll_once()).emitted == 2
    restarted = poller(config(feed.url), sink, cursors)  # same store, new process
    assert await restarted.poll_once() == PollResult(already_read=2)
    feed.serve(alert(2, "2026-12-02T10:01:00Z"), alert(3, "2026-12-02T10:02:00Z"))
    assert await restarted.poll_once() == PollResult(emitted=1, already_read=1)
    assert kinds(sink.events) == ["alert-1", "alert-2", "alert-3"]


async def test_items_sharing_the_newest_timestamp_are_neither_repeated_nor_lost(
    feed: Feed,
) -> None:
    sink, cursors = Sink(), MemoryCursors()
    at = "2026-12-02T10:00:00Z"
    feed.serve(alert(1, at), alert(2, at))
    assert (await poller(config(feed.url), sink, cursors).poll_once()).emitted == 2
    # A third alert appears within the same second, and alert 1 resolves within it too.
    feed.serve(alert(1, at), alert(2, at), alert(3, at), alert(1, at, state="closed"))
    assert await poller(config(feed.url), sink, cursors).poll_once() == PollResult(
        emitted=2, already_read=2
    )
    assert await poller(config(feed.url), sink, cursors).poll_once() == PollResult(already_read=4)
    assert kinds(sink.events) == ["alert-1", "alert-2", "alert-3", "alert-1"]
    assert sink.events[3].status is Status.RESOLVED


async def test_the_saved_cursor_is_sent_as_the_query_parameter(feed: Feed) -> None:
    cfg = config(feed.url + "?view=open")
    p = poller(cfg, Sink(), MemoryCursors())
    feed.serve(alert(1, "2026-12-02T10:00:00Z"), alert(2, "2026-12-02T11:07:30+01:00"))
    await p.poll_once()
    await p.poll_once()
    first, second = feed.queries()
    assert first == {"view": ["open"]}  # nothing read yet: the whole feed
    # The newest value as the feed wrote it; its `+` arrives as a plus, not as a space.
    assert second == {"view": ["open"], "since": ["2026-12-02T11:07:30+01:00"]}


async def test_newest_first_feeds_are_emitted_oldest_first(feed: Feed) -> None:
    sink = Sink()
    cfg = config(feed.url, cursor={"field": "seq"}, items="")
    feed.behaviour.body = json.dumps([alert(3, seq=12), alert(2, seq=9), alert(1, seq=10)]).encode()
    assert (await poller(cfg, sink, MemoryCursors()).poll_once()).emitted == 3
    # As numbers, 9 < 10 < 12; compared as text, "9" would come last.
    assert kinds(sink.events) == ["alert-2", "alert-1", "alert-3"]


async def test_headers_and_secret_headers_are_sent_and_the_secret_never_logged(
    feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NMS_TOKEN", f"Bearer {TOKEN}")
    cfg = config(
        feed.url,
        headers={"Accept": "application/json"},
        secret_headers={"Authorization": {"env": "NMS_TOKEN"}},
    )
    feed.serve(alert(1))
    feed.behaviour.script = [(401, b'{"error": "bad token"}')]
    with capture_logs() as logs:
        p = poller(cfg, Sink(), MemoryCursors())
        assert not (await p.poll_once()).ok
        assert (await p.poll_once()).emitted == 1
    for _, headers in feed.behaviour.requests:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Accept"] == "application/json"
    assert logs
    assert TOKEN not in repr(logs)


async def test_a_secret_that_cannot_be_a_header_fails_the_poll_without_showing_it(
    feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NMS_TOKEN", f"{TOKEN}\r\nX-Injected: 1")
    cfg = config(feed.url, secret_headers={"Authorization": {"env": "NMS_TOKEN"}})
    with capture_logs() as logs:
        result = await poller(cfg, Sink(), MemoryCursors()).poll_once()
    assert result.error == "secret header Authorization: not a valid header value (printable ASCII)"
    assert feed.behaviour.requests == []
    assert TOKEN not in repr(logs)


async def test_an_unset_secret_fails_the_poll_by_name(feed: Feed) -> None:
    cfg = config(feed.url, secret_headers={"Authorization": {"env": "OPSMEDIC_TEST_UNSET_TOKEN"}})
    result = await poller(cfg, Sink(), MemoryCursors()).poll_once()
    assert result.error == (
        "secret header Authorization: environment variable OPSMEDIC_TEST_UNSET_TOKEN is not set"
    )


async def test_bad_items_are_skipped_and_logged_while_good_ones_pass(feed: Feed) -> None:
    sink, cursors = Sink(), MemoryCursors()
    bad_status = alert(2, "2026-12-02T10:02:00Z", state="flapping")
    no_target = {**alert(3, "2026-12-02T10:03:00Z"), "target": "sw-9"}
    no_cursor = {**alert(4), "updated_at": None}
    feed.serve(alert(1, "2026-12-02T10:01:00Z"), bad_status, no_target, no_cursor)
    with capture_logs() as logs:
        p = poller(config(feed.url), sink, cursors)
        assert await p.poll_once() == PollResult(emitted=1, skipped=3)
    skipped = [e for e in logs if e["event"] == "poller_item_skipped"]
    assert [(e["item"], e["path"]) for e in skipped] == [
        (1, "state"), (2, "target.service"), (3, "updated_at")
    ]  # fmt: skip
    assert all(e["poller"] == "legacy-nms" and e["log_level"] == "warning" for e in skipped)
    assert skipped[0]["reason"] == "status 'flapping' is not in status_map (closed, open)"
    assert skipped[1]["reason"] == "target is text, not an object"
    assert skipped[2]["reason"] == "expected text or a number, got null"
    assert kinds(sink.events) == ["alert-1"]
    # The cursor moved past the bad items: they are not re-read or warned about again, and
    # what comes after them still gets through. Only the item without a cursor value remains.
    feed.serve(
        alert(1, "2026-12-02T10:01:00Z"),
        bad_status,
        no_target,
        no_cursor,
        alert(5, "2026-12-02T10:04:00Z"),
    )
    assert await p.poll_once() == PollResult(emitted=1, already_read=3, skipped=1)
    assert kinds(sink.events) == ["alert-1", "alert-5"]


async def test_a_snapshot_feed_without_cursor_reports_every_item_each_poll(feed: Feed) -> None:
    sink, cursors = Sink(), MemoryCursors()
    cfg = config(feed.url, cursor=None)
    feed.serve(alert(1), alert(2))
    p = poller(cfg, sink, cursors)
    assert (await p.poll_once()).emitted == 2
    assert (await p.poll_once()).emitted == 2
    assert cursors.saved == {}
    assert feed.queries() == [{}, {}]


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b"internal error", "HTTP 500 Internal Server Error"),
        (302, b"", "HTTP 302 Found"),
        (200, b"<html>login</html>", "body is not JSON: Expecting value"),
        (200, b'{"data": {"alerts": [NaN]}}', "body is not JSON: NaN is not JSON"),
        (200, b"[" * 100_000 + b"]" * 100_000, "body is not JSON"),
        (200, b'{"data": {"alerts": {"a": 1}}}', "items: data.alerts is an object, not a list"),
        (200, b'{"data": {}}', "items: data.alerts is missing"),
        (200, b"[]", "items: the body is a list, not an object"),
        (200, b"\xff\xfe\x00garbage", "body is not JSON"),
    ],
)
async def test_a_bad_answer_fails_the_poll_and_the_next_one_works(
    feed: Feed, status: int, body: bytes, reason: str
) -> None:
    sink, cursors = Sink(), MemoryCursors()
    feed.serve(alert(1, "2026-12-02T10:00:00Z"))
    p = poller(config(feed.url), sink, cursors)
    assert (await p.poll_once()).emitted == 1
    saved = dict(cursors.saved)
    feed.serve(alert(1, "2026-12-02T10:00:00Z"), alert(2, "2026-12-02T10:01:00Z"))
    feed.behaviour.script = [(status, body)]
    with capture_logs() as logs:
        result = await p.poll_once()
    assert result.error is not None
    assert result.error.startswith(reason)
    assert cursors.saved == saved
    [failed] = [e for e in logs if e["event"] == "poller_failed"]
    assert failed["reason"] == result.error
    assert failed["poller"] == "legacy-nms"
    assert await p.poll_once() == PollResult(emitted=1, already_read=1)
    assert kinds(sink.events) == ["alert-1", "alert-2"]


async def test_an_oversized_body_fails_the_poll(feed: Feed) -> None:
    feed.behaviour.script = [(200, b" " * (BODY_LIMIT + 1))]
    feed.serve(alert(1))
    p = poller(config(feed.url), Sink(), MemoryCursors())
    assert (await p.poll_once()).error == "body over 16 MiB"
    assert (await p.poll_once()).emitted == 1


async def test_a_slow_feed_fails_the_poll_at_the_timeout(feed: Feed) -> None:
    feed.behaviour.delay = 60  # released by the fixture's teardown
    result = await poller(config(feed.url, timeout="200ms"), Sink(), MemoryCursors()).poll_once()
    assert result.error == "no answer within 0.2s"


async def test_an_unreachable_feed_fails_the_poll(feed: Feed) -> None:
    url = feed.url
    feed.server.shutdown()
    feed.server.server_close()  # nothing listens on the port any more
    result = await poller(config(url), Sink(), MemoryCursors()).poll_once()
    assert result.error is not None
    assert result.error.startswith("request failed: ConnectError")


async def test_when_emit_fails_the_cursor_stays_and_the_items_are_read_again(feed: Feed) -> None:
    """Events are committed by emit; a cursor saved before that would lose them on a crash."""
    sink, cursors = Sink(), MemoryCursors()
    p = poller(config(feed.url), sink, cursors)
    feed.serve(alert(1, "2026-12-02T10:00:00Z"))
    assert (await p.poll_once()).emitted == 1
    saved = dict(cursors.saved)
    feed.serve(alert(1, "2026-12-02T10:00:00Z"), alert(2, "2026-12-02T10:01:00Z"))
    sink.fail = True
    with capture_logs() as logs:
        assert (await p.poll_once()).error == "RuntimeError: store unavailable"
    assert cursors.saved == saved
    assert [e["log_level"] for e in logs if e["event"] == "poller_failed"] == ["error"]
    sink.fail = False
    assert await p.poll_once() == PollResult(emitted=1, already_read=1)
    assert kinds(sink.events) == ["alert-1", "alert-2"]


async def test_an_unreadable_saved_cursor_means_reading_the_feed_again(feed: Feed) -> None:
    sink, cursors = Sink(), MemoryCursors()
    cursors.saved["legacy-nms"] = "garbage"
    feed.serve(alert(1))
    with capture_logs() as logs:
        assert (await poller(config(feed.url), sink, cursors).poll_once()).emitted == 1
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["poller_cursor_unreadable"]
    assert "garbage" not in cursors.saved["legacy-nms"]  # replaced by a good one


async def test_run_polls_at_once_and_keeps_going_after_failures(
    feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(poller_module, "FIRST_RETRY", 0.01)
    sink = Sink()
    feed.behaviour.script = [(500, b"down"), (200, b"not json")]
    feed.serve(alert(1))
    # A one-hour interval: the retries after the two failures come from the backoff, which
    # never exceeds the interval; the first poll happens at start, not after an hour.
    p = poller(config(feed.url, interval="1h", jitter=0), sink, MemoryCursors())
    stop = asyncio.Event()
    task = asyncio.create_task(p.run(stop))
    try:
        await asyncio.wait_for(sink.arrived.wait(), timeout=20)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=20)  # ends at once: the wait is on `stop`
    assert len(feed.behaviour.requests) == 3
    assert kinds(sink.events) == ["alert-1"]


async def test_a_stop_during_a_poll_lets_it_commit_and_save_its_cursor(feed: Feed) -> None:
    """Stopping between emit (committed) and the cursor save would read the items again at
    the next start: `run` finishes the poll it is in before it returns."""
    cursors, emitting, release = MemoryCursors(), asyncio.Event(), asyncio.Event()
    sink = Sink()

    async def slow_emit(events: list[Event]) -> None:
        emitting.set()
        await release.wait()  # the commit is still in progress when the stop comes
        await sink(events)

    feed.serve(alert(1))
    p = Poller(
        config(feed.url, interval="1h"), slow_emit, cursors, ManualClock(), structlog.get_logger()
    )
    stop = asyncio.Event()
    task = asyncio.create_task(p.run(stop))
    await asyncio.wait_for(emitting.wait(), timeout=20)
    stop.set()
    release.set()
    await asyncio.wait_for(task, timeout=20)
    assert kinds(sink.events) == ["alert-1"] and "legacy-nms" in cursors.saved


async def test_opsmedic_run_polls_its_feeds_and_keeps_the_cursor_in_the_store(
    feed: Feed, tmp_path: Path
) -> None:
    """`opsmedic run` starts a poller per config entry; its cursor survives a restart."""
    from api_service import running_api

    poller_config = config(feed.url).model_dump(mode="json", exclude_defaults=True)
    feed.serve(alert(1, "2026-12-02T10:00:00Z"))
    async with running_api(tmp_path, pollers=[poller_config]) as api:
        await stored(api.store, 1)
    assert api.store.load_cursor("legacy-nms") is not None
    feed.serve(alert(1, "2026-12-02T10:00:00Z"), alert(2, "2026-12-02T10:05:00Z"))
    async with running_api(tmp_path, pollers=[poller_config]) as api:
        await stored(api.store, 2)
    assert kinds(api.store.list_events(source="legacy-nms")) == ["alert-2", "alert-1"]
    assert api.service.metrics.events.labels("legacy-nms")._value.get() == 1


async def stored(store: Store, n: int) -> None:
    """Until the store holds `n` events from the feed (bounded)."""
    async with asyncio.timeout(30):
        while len(store.list_events(source="legacy-nms")) < n:  # noqa: ASYNC110 - the store is the signal
            await asyncio.sleep(0.05)
