"""The reader's local copy of the flags of opsmedic's API on this host, kept by its stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from typing import Any

import httpx
import orjson

from opsmedic.clock import Clock, SystemClock
from opsmedic.flags.client import SourceChange
from opsmedic.flags.redis_wire import Entry

log = logging.getLogger("opsmedic.flags")

STREAM_PATH = "/api/v1/flags/stream"
# The server sends a comment every 10 s: three missed mean the connection is dead.
IDLE_S = 30.0
MAX_EVENT_BYTES = 64 * 1024 * 1024  # a snapshot of many flags, but not a stream without end


class StreamRefused(Exception):
    """The API answered the stream's request with an error (a bad token, no store)."""


class ApiFlagStream:
    """Every flag of an opsmedic API, in memory: `entry(key)` is a dict lookup, never a
    network call. A daemon thread (its own event loop) reads `GET /api/v1/flags/stream`
    (scope `read`): a snapshot of every flag, then one event per change. When the stream
    ends or the API is unreachable the last values keep being served and are marked
    stale; the thread reconnects with jittered backoff and takes a fresh snapshot, from
    which it tells every change it missed, so none is lost. `watch(callback)` callbacks run
    in that thread for each change after the first snapshot (doc None: deleted)."""

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
        self.url = url.rstrip("/") + STREAM_PATH
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        self._timeout = httpx.Timeout(timeout_s, read=idle_s)
        self._backoff_s = backoff_s
        self._max_event_bytes = max_event_bytes
        self._clock = clock or SystemClock()
        self._entries: dict[str, Entry] = {}
        self._problems: dict[str, str] = {}
        self._listeners: list[SourceChange] = []
        self._loaded = threading.Event()
        self._stop = threading.Event()
        self._down_since: float | None = None  # monotonic
        self._connected = False
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="opsmedic-flags", daemon=True)

    # --- the evaluation side: no network, no lock ---------------------------------------

    def entry(self, key: str) -> Entry | None:
        """The flag with its version, or None."""
        return self._entries.get(key)

    def entries(self) -> dict[str, Entry]:
        """Every flag held now (a copy)."""
        return dict(self._entries)

    def problem(self, key: str) -> str | None:
        """Why the document of `key` was skipped, if it was (not a JSON object)."""
        return self._problems.get(key)

    @property
    def staleness_s(self) -> float | None:
        """Seconds since the values stopped being kept current; None while they are."""
        down = self._down_since
        return None if down is None else self._clock.monotonic() - down

    @property
    def connected(self) -> bool:
        """The stream is open and its snapshot taken."""
        return self._connected

    def watch(self, callback: SourceChange) -> None:
        """Call `callback(key, doc, version)` after every change; before start() to see all."""
        self._listeners.append(callback)

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> ApiFlagStream:
        """Start the stream's thread; `wait_ready` tells when the flags are loaded."""
        self._down_since = self._clock.monotonic()
        self._thread.start()
        return self

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the flags were loaded within `timeout_s` (or before)."""
        return self._loaded.wait(timeout_s)

    def close(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def __enter__(self) -> ApiFlagStream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
            self._snapshot(data["flags"])
        elif name == "change":
            key, version, doc = data["key"], int(data["version"]), data["doc"]
            if doc is None:
                self._entries.pop(key, None)
                self._problems.pop(key, None)
            else:
                self._hold(self._entries, self._problems, key, version, doc)
            self._notify(key, doc if isinstance(doc, dict) else None, version)

    def _snapshot(self, flags: dict[str, Any]) -> None:
        entries: dict[str, Entry] = {}
        problems: dict[str, str] = {}
        for key, item in flags.items():
            self._hold(entries, problems, key, int(item["version"]), item["doc"])
        previous, first = self._entries, not self._loaded.is_set()
        # One assignment each: a reader thread sees the old set or the new one, never a mix.
        self._entries, self._problems = entries, problems
        self._loaded.set()
        if self._down_since is not None and not first:
            log.info("flags.api.up url=%s flags=%d", self.url, len(entries))
        self._connected, self._down_since = True, None
        if first:
            return
        # What changed while this reader was away: told as if it had been streamed.
        for key in previous.keys() - entries.keys():
            self._notify(key, None, previous[key].version)
        for key, entry in entries.items():
            if key not in previous or previous[key].version != entry.version:
                self._notify(key, entry.doc, entry.version)

    def _hold(self, entries: dict[str, Entry], problems: dict[str, str], key: str,
              version: int, doc: Any) -> None:  # fmt: skip
        if isinstance(doc, dict):
            entries[key] = Entry(key, version, doc)
            problems.pop(key, None)
        else:
            entries.pop(key, None)
            problems[key] = f"flag {key!r} (version {version}): its document is a " \
                            f"{type(doc).__name__}, not a JSON object"  # fmt: skip

    def _notify(self, key: str, doc: dict[str, Any] | None, version: int) -> None:
        for listener in self._listeners:
            try:
                listener(key, doc, version)
            except Exception as exc:
                self.last_error = f"on_change({key!r}) raised {type(exc).__name__}: {exc}"
                log.warning("flags.api.on_change_failed %s", self.last_error)

    def _mark_down(self, reason: str) -> None:
        if self._connected:
            log.warning("flags.api.down url=%s error=%r serving=stale", self.url, reason)
        self._connected = False
        self.last_error = reason
        if self._down_since is None:
            self._down_since = self._clock.monotonic()
