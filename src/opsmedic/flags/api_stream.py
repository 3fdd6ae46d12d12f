"""The reader's local copy of the flags of opsmedic's API on this host, kept by its stream."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import httpx
import orjson

from opsmedic.clock import Clock
from opsmedic.flags.redis_wire import Entry
from opsmedic.flags.replica import Replica

STREAM_PATH = "/api/v1/flags/stream"
# The server sends a comment every 10 s: three missed mean the connection is dead.
IDLE_S = 30.0
MAX_EVENT_BYTES = 64 * 1024 * 1024  # a snapshot of many flags, but not a stream without end


class StreamRefused(Exception):
    """The API answered the stream's request with an error (a bad token, no store)."""


class ApiFlagStream(Replica):
    """Every flag of an opsmedic API, in memory: `entry(key)` is a dict lookup, never a
    network call. A daemon thread (its own event loop) reads `GET /api/v1/flags/stream`
    (scope `read`): a snapshot of every flag, then one event per change. When the stream
    ends or the API is unreachable the last values keep being served and are marked
    stale; the thread reconnects with jittered backoff and takes a fresh snapshot, from
    which it tells every change it missed, so none is lost. `watch(callback)` callbacks run
    in that thread for each change after the first snapshot (doc None: deleted)."""

    _kind = "api"

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = 5.0,
        idle_s: float = IDLE_S,
        backoff_s: tuple[float, float] = (0.05, 5.0),
        max_event_bytes: int = MAX_EVENT_BYTES,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(url.rstrip("/") + STREAM_PATH, clock)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        self._timeout = httpx.Timeout(timeout_s, read=idle_s)
        self._backoff_s = backoff_s
        self._max_event_bytes = max_event_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def _interrupt(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)

    # --- the stream's thread ------------------------------------------------------------

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # close() cancels it: the way out
            asyncio.run(self._main())

    async def _main(self) -> None:
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        if self._stop.is_set():  # closed before this thread got here: close() saw no loop
            return
        delay = self._backoff_s[0]
        async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers) as http:
            while True:
                try:
                    await self._session(http)
                    problem = "the API ended the stream"
                except Exception as exc:
                    # Unreachable, refused, or an event that is not what the API sends: the
                    # copy is served stale, and the next connection starts from a snapshot.
                    problem = f"{type(exc).__name__}: {exc}"
                if self._connected:
                    delay = self._backoff_s[0]  # it was up: try again soon
                self._mark_down(problem)
                # Full jitter: readers that lost the same API do not come back in lockstep.
                await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311
                delay = min(delay * 2, self._backoff_s[1])

    async def _session(self, http: httpx.AsyncClient) -> None:
        async with http.stream("GET", self.url) as response:
            if response.status_code != 200:
                body = (await response.aread())[:300].decode(errors="replace")
                raise StreamRefused(f"{self.url} answered {response.status_code}: {body}")
            name, data, size = "", [], 0
            async for line in response.aiter_lines():
                if line:
                    size += len(line)
                    if size > self._max_event_bytes:
                        raise ValueError(f"an event above {self._max_event_bytes} bytes")
                    field, _, value = line.partition(":")
                    if field == "event":
                        name = value.strip()
                    elif field == "data":
                        data.append(value.removeprefix(" "))
                    continue  # a comment (the keep-alive) or a field this reader ignores
                if data:
                    self._event(name, orjson.loads("\n".join(data)))
                name, data, size = "", [], 0

    def _event(self, name: str, data: Any) -> None:
        if name == "snapshot":
            entries: dict[str, Entry] = {}
            problems: dict[str, str] = {}
            for key, item in data["flags"].items():
                version, doc = int(item["version"]), item["doc"]
                if isinstance(doc, dict):
                    entries[key] = Entry(key, version, doc)
                else:
                    problems[key] = _not_an_object(key, version, doc)
            self._replace(entries, problems)
            self._mark_up()
        elif name == "change":
            key, version, doc = data["key"], int(data["version"]), data["doc"]
            if isinstance(doc, dict):
                self._put(Entry(key, version, doc))
            else:
                self._drop(key, version, None if doc is None else _not_an_object(key, version, doc))


def _not_an_object(key: str, version: int, doc: object) -> str:
    kind = type(doc).__name__
    return f"flag {key!r} (version {version}): its document is a {kind}, not a JSON object"
