"""The reader's local copy of every flag, kept current by a Redis subscription in a thread."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.exceptions import RedisError
from redis.retry import Retry

from opsmedic.clock import Clock
from opsmedic.flags.model import MAX_FLAGS
from opsmedic.flags.redis_wire import (
    MAX_DOC_BYTES,
    BadEntry,
    Change,
    Entry,
    Layout,
    decode_change,
    decode_entry,
    open_client,
    redact,
)
from opsmedic.flags.replica import Replica

OnChange = Callable[[str, dict[str, Any] | None, int], None]
# Between two looks at the stop signal; a message wakes the thread at once whatever this is.
_POLL_S = 0.25

# KEYS: the hash, the version counter, the epoch. ARGV: the version and epoch the reader
# holds ('' at first), the most flags it takes. One script, so the version and the flags it
# returns are of one instant; and when neither moved, the flags are not sent at all.
_SNAPSHOT = """
local version = redis.call('GET', KEYS[2]) or '0'
local epoch = redis.call('GET', KEYS[3]) or ''
if version == ARGV[1] and epoch == ARGV[2] then
  return {version, epoch}
end
local count = redis.call('HLEN', KEYS[1])
if count > tonumber(ARGV[3]) then
  return redis.error_reply(KEYS[1] .. ' holds ' .. count .. ' flags, above ' .. ARGV[3])
end
return {version, epoch, redis.call('HGETALL', KEYS[1])}
"""


@dataclass(frozen=True, slots=True)
class CacheHealth:
    """How current a reader's flags are: for readiness checks, metrics and the client's
    staleness report. `stale_since` (epoch seconds) and `staleness_s` are None while the
    subscription is up; `ready` means the flags were loaded at least once."""

    url: str
    connected: bool
    ready: bool
    version: int
    flags: int
    stale_since: float | None
    staleness_s: float | None
    reconnects: int
    last_error: str | None


class RedisFlagCache(Replica):
    """Every flag of one Redis, in memory: `get(key)` is a dict lookup, never a network call.

    A daemon thread subscribes to the change channel, then loads every flag, then applies
    each published change; a change already in the load is told apart by its version. When
    the connection drops the last values keep being served and are marked stale; the thread
    reconnects with backoff and, once subscribed again, reloads only if the version moved.
    `on_change(key, doc, version)` runs in that thread for every change after the first load
    (doc None for a deletion); what it raises is logged and recorded, never propagated.
    """

    _kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        layout: Layout | None = None,
        on_change: OnChange | None = None,
        timeout_s: float = 2.0,
        ping_s: float = 5.0,
        backoff_s: tuple[float, float] = (0.05, 5.0),
        max_doc_bytes: int = MAX_DOC_BYTES,
        max_flags: int = MAX_FLAGS,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(redact(url), clock)
        self.layout = layout or Layout()
        if on_change is not None:
            self.watch(on_change)
        self._timeout_s = timeout_s
        self._ping_s = ping_s
        self._backoff_s = backoff_s
        self._max_doc_bytes = max_doc_bytes
        self._max_flags = max_flags
        self._version = 0
        self._epoch = ""
        self._client = open_client(redis.Redis.from_url, url, timeout_s, Retry(NoBackoff(), 0))
        self._snapshot = self._client.register_script(_SNAPSHOT)

    def get(self, key: str) -> dict[str, Any] | None:
        """The flag's document, None if there is no such flag (or its value is unreadable)."""
        entry = self._entries.get(key)
        return None if entry is None else entry.doc

    def health(self) -> CacheHealth:
        """The connection's state and the values' staleness, read from memory."""
        down = self._down_since
        return CacheHealth(
            url=self.url,
            connected=self._connected,
            ready=self._loaded.is_set(),
            version=self._version,
            flags=len(self._entries),
            stale_since=None if down is None else down[0],
            staleness_s=None if down is None else self._clock.monotonic() - down[1],
            reconnects=self._reconnects,
            last_error=self.last_error,
        )

    def _join_s(self) -> float:
        return self._timeout_s + 1.0  # the thread looks at the stop signal every _POLL_S

    # --- the subscription thread --------------------------------------------------------

    def _run(self) -> None:
        delay = self._backoff_s[0]
        while not self._stop.is_set():
            try:
                self._session()
            except (RedisError, OSError, ValueError) as exc:
                # ValueError: a version counter that is not a number, set by hand.
                if self._connected:
                    delay = self._backoff_s[0]  # it was up: try again soon
                self._mark_down(f"{type(exc).__name__}: {exc}")
            else:
                return  # stopped
            # Full jitter: readers that lost the same Redis do not come back in lockstep.
            if self._stop.wait(random.uniform(delay / 2, delay)):  # noqa: S311
                return
            delay = min(delay * 2, self._backoff_s[1])

    def _session(self) -> None:
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(self.layout.channel)
            self._await_subscribed(pubsub)
            # Subscribed first, loaded second: a change made in between is both in the load
            # and in a message, and the message's version (not above the load's) drops it.
            self._sync()
            self._mark_up()
            self._listen(pubsub)
        finally:
            pubsub.close()
            # The next session starts on fresh connections, not on one that just failed.
            self._client.connection_pool.disconnect()

    def _await_subscribed(self, pubsub: PubSub) -> None:
        deadline = time.monotonic() + self._timeout_s
        while True:
            message = pubsub.get_message(timeout=self._timeout_s)
            if message is not None and message["type"] == "subscribe":
                return
            if time.monotonic() >= deadline:
                raise redis.TimeoutError(f"no SUBSCRIBE confirmation within {self._timeout_s:g} s")

    def _listen(self, pubsub: PubSub) -> None:
        # Network deadlines on the real clock; the injected one only dates staleness.
        idle_since = time.monotonic()
        ping_sent: float | None = None
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=_POLL_S)
            now = time.monotonic()
            if message is None:
                # A connection can die without a word (a host gone, a firewall): a PING
                # unanswered within the timeout tells.
                if ping_sent is not None and now - ping_sent > self._timeout_s:
                    raise redis.TimeoutError(f"no answer to PING within {self._timeout_s:g} s")
                if ping_sent is None and now - idle_since >= self._ping_s:
                    pubsub.ping()
                    ping_sent = now
                continue
            idle_since, ping_sent = now, None
            if message["type"] == "message":
                self._receive(message["data"])
            elif message["type"] == "subscribe":
                self._sync()  # subscribed again: whatever happened meanwhile is unknown

    def _receive(self, data: bytes) -> None:
        try:
            change = decode_change(data, self._max_doc_bytes)
        except BadEntry as exc:
            # Not a message opsmedic publishes, so maybe not the only thing missed: reload.
            self._record(f"a message on {self.layout.channel} skipped: {exc}")
            self._sync()
            return
        if change.epoch != self._epoch:
            self._sync()  # the Redis data was replaced (lost and rewritten): reload it all
            return
        if change.version <= self._version:
            return  # already in the load, or seen
        if change.version != self._version + 1:
            self._sync()  # a version was skipped: a change this reader never got
            return
        self._version = change.version
        self._apply(change)

    def _apply(self, change: Change) -> None:
        if change.doc is None:
            self._drop(change.key, change.version)
        else:
            self._put(Entry(change.key, change.version, change.doc))

    def _sync(self) -> None:
        known = (str(self._version), self._epoch) if self._loaded.is_set() else ("", "")
        reply = self._snapshot(
            keys=[self.layout.flags, self.layout.version, self.layout.epoch],
            args=[*known, self._max_flags],
        )
        version, epoch = int(reply[0]), reply[1].decode()
        if len(reply) == 2:
            return  # nothing moved while this reader was away
        fields: list[bytes] = reply[2]
        entries: dict[str, Entry] = {}
        problems: dict[str, str] = {}
        for raw_key, raw in zip(fields[::2], fields[1::2], strict=True):
            key = raw_key.decode(errors="replace")
            try:
                entries[key] = decode_entry(key, raw, self._max_doc_bytes)
            except BadEntry as exc:
                problems[key] = f"flag {key!r} in {self.layout.flags} skipped: {exc}"
                self._record(problems[key])
        self._version, self._epoch = version, epoch
        self._replace(entries, problems, removed_at=version)
