"""The flag writer: one atomic Lua script per change versions, stores and publishes it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from opsmedic.errors import FlagConflict, FlagStoreError
from opsmedic.flags.redis_wire import (
    MAX_DOC_BYTES,
    BadEntry,
    Entry,
    Layout,
    check_key,
    decode_entry,
    encode_doc,
    open_client,
    redact,
)

T = TypeVar("T")

# KEYS: the hash, the version counter, the epoch. ARGV: the flag key, the key as a JSON
# string, the document's JSON ('' deletes), the expected version ('' for any, 0 for absent),
# the channel, a fresh epoch token. Redis runs a script alone, so the check, the bump, the
# store and the publish are one step; and since an error after a write would not undo that
# write, every check that can fail comes before the first one.
_WRITE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
local counter = redis.call('GET', KEYS[2])
if counter and not tonumber(counter) then
  return redis.error_reply('the version counter ' .. KEYS[2] .. ' is not an integer')
end
local have = 0
if current then
  local ok, entry = pcall(cjson.decode, current)
  if ok and type(entry) == 'table' and type(entry['version']) == 'number' then
    have = entry['version']
  else
    have = -1
  end
end
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= have then
  return {'conflict', have}
end
if ARGV[3] == '' and not current then
  return {'absent', 0}
end
local version = redis.call('INCR', KEYS[2])
local v = string.format('%d', version)
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[3], epoch)
end
local doc = ARGV[3]
if doc == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  doc = 'null'
else
  redis.call('HSET', KEYS[1], ARGV[1], '{"version":' .. v .. ',"doc":' .. doc .. '}')
end
local change = '{"key":' .. ARGV[2] .. ',"version":' .. v .. ',"epoch":"' .. epoch
  .. '","doc":' .. doc .. '}'
redis.call('PUBLISH', ARGV[5], change)
return {'ok', version}
"""


class RedisFlagStore:
    """Writes flags to one Redis: `put`, `delete` (both with optimistic concurrency through
    `expected_version`), and `read`. Every Redis failure raises FlagStoreError naming the URL;
    a write is never retried by the client (a retried write could apply twice)."""

    def __init__(
        self,
        url: str,
        *,
        layout: Layout | None = None,
        timeout_s: float = 2.0,
        max_doc_bytes: int = MAX_DOC_BYTES,
    ) -> None:
        self.url = redact(url)
        self.layout = layout or Layout()
        self.timeout_s = timeout_s
        self.max_doc_bytes = max_doc_bytes
        self._redis = open_client(aioredis.Redis.from_url, url, timeout_s, Retry(NoBackoff(), 0))
        self._write = self._redis.register_script(_WRITE)

    async def put(
        self, key: str, doc: dict[str, Any], *, expected_version: int | None = None
    ) -> int:
        """Store `doc` as the flag `key` and publish it; returns the version it got. With
        `expected_version` (0: the flag must not exist) a flag at another version is left
        alone and FlagConflict is raised."""
        text = encode_doc(check_key(key), doc, self.max_doc_bytes)
        version = await self._run(key, text, expected_version)
        assert version is not None  # only a delete finds nothing to do
        return version

    async def delete(self, key: str, *, expected_version: int | None = None) -> int | None:
        """Remove the flag `key` and publish that; returns the version of the deletion, or
        None (and writes nothing) when there was no such flag."""
        return await self._run(check_key(key), "", expected_version)

    async def read(self, key: str) -> Entry | None:
        """The flag as stored now, or None; FlagStoreError if its stored value is unreadable."""
        check_key(key)
        raw = await self._call(
            f"reading flag {key!r}", lambda: self._redis.hget(self.layout.flags, key), writes=False
        )
        if raw is None:
            return None
        try:
            return decode_entry(key, raw, self.max_doc_bytes)
        except BadEntry as exc:
            raise FlagStoreError(
                self.url, f"flag {key!r} holds an unreadable value: {exc}"
            ) from None

    async def version(self) -> int:
        """The global version: that of the last change of any flag (0 before the first)."""
        raw = await self._call(
            "reading the version", lambda: self._redis.get(self.layout.version), writes=False
        )
        try:
            return int(raw or 0)
        except ValueError:
            raise FlagStoreError(
                self.url, f"{self.layout.version} is not an integer: {raw!r}"
            ) from None

    async def docs(self) -> dict[str, dict[str, Any] | None]:
        """Every flag's document as stored now, by key; None for a value that is unreadable
        (garbage written by hand), which a writer replaces."""
        raw = await self._call(
            "reading every flag", lambda: self._redis.hgetall(self.layout.flags), writes=False
        )
        found: dict[str, dict[str, Any] | None] = {}
        for name, value in raw.items():
            key = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
            try:
                found[key] = decode_entry(key, value, self.max_doc_bytes).doc
            except BadEntry:
                found[key] = None
        return found

    async def epoch(self) -> str | None:
        """The token the first write set (None: Redis holds no flags written by opsmedic, or
        lost them); a new one means Redis was emptied and written again. Also a ping."""
        raw = await self._call(
            "reading the epoch", lambda: self._redis.get(self.layout.epoch), writes=False
        )
        if raw is None:
            return None
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    async def aclose(self) -> None:
        """Close the connections (the context manager does it on exit)."""
        await self._redis.aclose()

    async def __aenter__(self) -> RedisFlagStore:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self, key: str, text: str, expected_version: int | None) -> int | None:
        if expected_version is not None and (
            isinstance(expected_version, bool) or expected_version < 0
        ):
            raise ValueError(f"expected_version {expected_version!r}: must be an integer ≥ 0")
        layout = self.layout
        keys = [layout.flags, layout.version, layout.epoch]
        args = [
            key,
            json.dumps(key, ensure_ascii=False),
            text,
            "" if expected_version is None else str(expected_version),
            layout.channel,
            uuid.uuid4().hex,
        ]
        what = f"{'deleting' if not text else 'writing'} flag {key!r}"
        status, number = await self._call(
            what, lambda: self._write(keys=keys, args=args), writes=True
        )
        if status == b"conflict":
            assert expected_version is not None
            raise FlagConflict(key, expected_version, int(number))
        return None if status == b"absent" else int(number)

    async def _call(self, what: str, send: Callable[[], Awaitable[T]], *, writes: bool) -> T:
        try:
            return await send()
        except (RedisTimeoutError, RedisConnectionError, OSError) as exc:
            # redis-py says "… connecting to …" when no connection was made: nothing was sent.
            sent = writes and "connecting to" not in str(exc)
            unknown = " (it was applied whole or not at all: read it back to know)" if sent else ""
            problem = (f"no answer within {self.timeout_s:g} s"
                       if isinstance(exc, RedisTimeoutError) else str(exc))  # fmt: skip
            raise FlagStoreError(
                self.url, f"{what}: {problem}{unknown}", outcome_unknown=sent
            ) from None
        except RedisError as exc:
            # A refusal (a wrong-type key, a script error): the script's checks come before
            # its first write, so nothing was written.
            raise FlagStoreError(self.url, f"{what}: Redis refused it: {exc}") from None
