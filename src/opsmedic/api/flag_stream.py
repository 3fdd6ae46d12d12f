"""GET /api/v1/flags/stream: every flag, then each change, as server-sent events to readers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from opsmedic.api.auth import Authenticator, require
from opsmedic.logs import get_logger
from opsmedic.store.store import Store
from opsmedic.tokens import Scope as TokenScope

_log = get_logger(component="api")

POLL_S = 0.05  # the store is asked `key, version` this often while a stream is open
KEEPALIVE_S = 10.0  # a comment this often, so readers and proxies see a live connection
MAX_SUBSCRIBERS = 100
QUEUE_EVENTS = 1000  # a reader this many events behind is dropped (it reconnects, resyncs)
SEND_TIMEOUT_S = 10.0  # a reader that takes no bytes this long is dropped
_END = b""  # in a reader's queue: end the stream

router = APIRouter(prefix="/api/v1", tags=["read"])  # the scope a route needs goes by its tag


class FlagFeed:
    """One per API process: a poller of the store's flags that runs while at least one
    stream is open, and the streams it broadcasts each change to. The store is the source
    of truth, so a change made by any process (the CLI, another API) is seen."""

    def __init__(self, store: Store, *, poll_s: float = POLL_S,
                 max_subscribers: int = MAX_SUBSCRIBERS,
                 queue_events: int = QUEUE_EVENTS) -> None:  # fmt: skip
        self._store = store
        self._poll_s = poll_s
        self._max = max_subscribers
        self._queue_events = queue_events
        self._flags: dict[str, tuple[int, Any]] = {}  # what the streams were last told
        self._queues: set[asyncio.Queue[bytes]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self._joining = 0  # subscribers between the limit's check and their queue's creation
        self._closed = False

    async def subscribe(self) -> tuple[bytes, asyncio.Queue[bytes]]:
        """The snapshot event and the queue of the events after it; 503 when full, and the
        store's error (503 too) when it cannot be read."""
        if self._closed:
            # Readers reconnect at once when their stream ends, before the server stops
            # listening: a new stream would hold the stop up for SHUTDOWN_GRACE_S.
            raise HTTPException(503, "the API is stopping", headers={"Retry-After": "1"})
        if len(self._queues) + self._joining >= self._max:
            message = f"{self._max} flag streams are open, the most this API serves"
            raise HTTPException(503, message, headers={"Retry-After": "5"})
        # Counted before the first await: a burst of reconnecting readers (every one of them
        # after an API restart) must not all pass the check above while the poller starts.
        self._joining += 1
        try:
            async with self._starting:
                if self._poller is None or self._poller.done():
                    self._flags = await asyncio.to_thread(self._store.flags.documents)
                    self._poller = asyncio.create_task(self._poll(), name="flag-stream-poller")
        finally:
            self._joining -= 1
        queue: asyncio.Queue[bytes] = asyncio.Queue(self._queue_events)
        self._queues.add(queue)  # with the snapshot below, in one step of the event loop
        flags = {key: {"version": v, "doc": doc} for key, (v, doc) in self._flags.items()}
        return _event("snapshot", {"flags": flags}), queue

    def unsubscribe(self, queue: asyncio.Queue[bytes]) -> None:
        self._queues.discard(queue)

    def close(self) -> None:
        """End every stream and the poller (the API is stopping): readers reconnect to the
        next one."""
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
        self._end_all()

    async def _poll(self) -> None:
        while self._queues:
            await asyncio.sleep(self._poll_s)
            try:
                await self._compare()
            except Exception as exc:  # the store unreachable, above all
                # The readers' copies can no longer be kept current: ending their streams
                # makes them stale (and say so); they reconnect to a fresh snapshot once the
                # store answers again.
                _log.error("flags.stream.poll_failed", error=f"{type(exc).__name__}: {exc}")
                self._end_all()
        self._poller = None

    async def _compare(self) -> None:
        versions = await asyncio.to_thread(self._store.flags.versions)
        changed = [k for k, v in versions.items() if self._flags.get(k, (0, None))[0] != v]
        gone = [k for k in self._flags if k not in versions]
        docs = await asyncio.to_thread(self._store.flags.documents, changed) if changed else {}
        for key in gone:
            version, _ = self._flags.pop(key)
            self._broadcast({"key": key, "version": version, "doc": None})
        for key, (version, doc) in docs.items():
            self._flags[key] = (version, doc)
            self._broadcast({"key": key, "version": version, "doc": doc})

    def _broadcast(self, change: dict[str, Any]) -> None:
        event = _event("change", change)
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                _log.warning("flags.stream.dropped", reason=f"{self._queue_events} events behind")
                self.end(queue)

    def _end_all(self) -> None:
        for queue in list(self._queues):
            self.end(queue)

    def end(self, queue: asyncio.Queue[bytes]) -> None:
        """End one stream: its queue is emptied and told to end."""
        self._queues.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(_END)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventStream(Response):
    """The response: the snapshot, then the queue's events and keep-alive comments, until the
    reader leaves, falls behind, or the API stops. Not Starlette's StreamingResponse: a
    reader that stops reading must be dropped, so every send has a deadline."""

    media_type = "text/event-stream"

    def __init__(
        self, feed: FlagFeed, snapshot: bytes, queue: asyncio.Queue[bytes],
        allowed: Callable[[], Awaitable[bool]],
    ) -> None:  # fmt: skip
        super().__init__()
        self._feed, self._snapshot, self._queue = feed, snapshot, queue
        self._allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        left = asyncio.create_task(_disconnected(receive))
        left.add_done_callback(lambda _: self._feed.end(self._queue))
        try:
            await self._send(send, {"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-store"), (b"x-accel-buffering", b"no")]})  # fmt: skip
            event = self._snapshot
            while event is not _END:
                await self._send(send, {"type": "http.response.body", "body": event,
                                        "more_body": True})  # fmt: skip
                try:
                    event = await asyncio.wait_for(self._queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    event = b": keep-alive\n\n"
                if event is not _END and not await self._allowed():
                    # Revoked since the stream opened (the token cache's few seconds at most):
                    # not one more change for it.
                    _log.info("flags.stream.ended", reason="token revoked")
                    break
            if not left.done():
                await self._send(send, {"type": "http.response.body", "body": b""})
        except TimeoutError:
            # The reader takes no bytes: leave without finishing, and the server closes the
            # connection, instead of buffering for it.
            _log.warning("flags.stream.dropped", reason=f"no bytes taken in {SEND_TIMEOUT_S} s")
        finally:
            left.cancel()
            self._feed.unsubscribe(self._queue)

    @staticmethod
    async def _send(send: Send, message: Any) -> None:
        await asyncio.wait_for(send(message), SEND_TIMEOUT_S)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@router.get(
    "/flags/stream",
    summary="Every flag with its version, then each change, as server-sent events",
    description='`event: snapshot` (`{"flags": {key: {"version", "doc"}}}`), then one '
    '`event: change` (`{"key", "version", "doc"}`, doc null: deleted) per change, and '
    "a `: keep-alive` comment every 10 s. A reader that reconnects takes a fresh snapshot.",
    dependencies=[Depends(require(TokenScope.READ))],
    response_model=None,
    responses={200: {"content": {"text/event-stream": {}}, "description": "the events"}},
)
async def flag_stream(request: Request) -> EventStream:
    feed: FlagFeed = request.app.state.flag_feed
    snapshot, queue = await feed.subscribe()
    auth: Authenticator = request.app.state.auth
    return EventStream(feed, snapshot, queue, lambda: auth.still_allows(request, TokenScope.READ))
