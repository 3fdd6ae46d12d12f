"""The poller source: reads an HTTP JSON feed on an interval and emits each new item as an Event."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from pydantic import ValidationError

from opsmedic.clock import Clock, next_delay
from opsmedic.config.poller import CursorConfig, PathParts, PollerConfig, parse_path
from opsmedic.model import Emit, Event
from opsmedic.sources.events import EventIn
from opsmedic.transport.http import http_client

# A feed is a page of alerts, not a download; a body this large means a wrong URL or a
# feed without paging, and buffering more would only cost memory.
BODY_LIMIT = 16 * 1024 * 1024
# Seconds before the first retry after a failed poll; it doubles up to the interval.
FIRST_RETRY = 1.0

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# What h11 accepts as a header value; checked first so its error, which quotes the value,
# can never put a secret in a log line.
_HEADER_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
# Event fields that are text; a JSON number or boolean there (an id 4711) becomes its JSON text.
_TEXT_FIELDS = {"kind", "resource", "host", "severity", "fingerprint"}


class CursorStore(Protocol):
    """Where each poller's cursor lives between polls and restarts (the store implements it).

    The value is opaque text (a small JSON document) owned by the poller.
    """

    async def load_cursor(self, name: str) -> str | None: ...

    async def save_cursor(self, name: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll did: events emitted, items already read, items skipped as unmappable."""

    emitted: int = 0
    already_read: int = 0
    skipped: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ItemError(ValueError):
    """One item cannot be mapped: `path` (inside the item) says where, the message says why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class PollFailed(Exception):
    """The feed as a whole could not be read; the reason is safe to log (no secrets)."""


def lookup(data: Any, parts: PathParts, root: str = "the item") -> Any:
    """The value at `parts` inside decoded JSON; KeyError or TypeError say what is missing."""
    for n, part in enumerate(parts):
        if isinstance(part, int):
            if not isinstance(data, list):
                raise TypeError(f"{_shown(parts[:n]) or root} is {_kind(data)}, not a list")
            if part >= len(data):
                raise KeyError(f"{_shown(parts[: n + 1])} is missing (list of {len(data)})")
        elif not isinstance(data, dict):
            raise TypeError(f"{_shown(parts[:n]) or root} is {_kind(data)}, not an object")
        elif part not in data:
            raise KeyError(f"{_shown(parts[: n + 1])} is missing")
        data = data[part]
    return data


def _shown(parts: PathParts) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "text", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _text(value: Any, path: str) -> str:
    """Text for a cursor or a label: strings as they are, numbers and booleans as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    raise ItemError(path, f"expected text or a number, got {_kind(value)}")


class ItemMapper:
    """Turns one feed item into a validated Event, following the poller's `map`."""

    def __init__(self, config: PollerConfig) -> None:
        self._source = config.source or config.name
        self._fields = [(target, path, parse_path(path)) for target, path in config.map.items()]
        self._status_map = {k: str(v) for k, v in config.status_map.items()}

    def event(self, item: Any, now: float) -> Event:
        """The item's Event (raw item in `payload`); raises ItemError naming the item's path."""
        data: dict[str, Any] = {"source": self._source, "time": now}
        labels: dict[str, str] = {}
        paths: dict[str, str] = {}
        for target, path, parts in self._fields:
            try:
                value = lookup(item, parts)
            except (KeyError, TypeError) as exc:
                raise ItemError(path, str(exc.args[0])) from None
            if value is None:
                continue  # the feed says "no value": the field keeps its default
            paths[target] = path
            if target.startswith("labels."):
                labels[target.removeprefix("labels.")] = _text(value, path)
            elif target == "status" and self._status_map:
                key = _text(value, path)
                if key not in self._status_map:
                    known = ", ".join(sorted(self._status_map))
                    raise ItemError(path, f"status {key!r} is not in status_map ({known})")
                data["status"] = self._status_map[key]
            elif target in _TEXT_FIELDS:
                data[target] = _text(value, path)
            else:
                data[target] = value
        data["labels"] = labels
        data["payload"] = item if isinstance(item, dict) else {"item": item}
        try:
            return EventIn.model_validate(data).to_event()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            raise ItemError(_mapped_path(first["loc"], paths), message) from None


def _mapped_path(loc: tuple[int | str, ...], paths: dict[str, str]) -> str:
    """The item path behind a validation error's location: its longest mapped prefix.

    `labels.team` is a mapped target itself; `value.float` (a union member) is `value`'s.
    """
    parts = [str(p) for p in loc]
    for n in range(len(parts), 0, -1):
        if (target := ".".join(parts[:n])) in paths:
            return paths[target]
    return ".".join(parts)


def _cursor_key(text: str) -> Decimal | datetime | None:
    if _NUMBER.fullmatch(text):
        return Decimal(text)
    if _ISO_DATE.match(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        # A time without an offset is read as UTC, so it compares with one that has one.
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def compare_cursors(a: str, b: str) -> int:
    """-1, 0 or 1: as numbers when both are numbers, as times when both are ISO 8601, else text."""
    ka, kb = _cursor_key(a), _cursor_key(b)
    if isinstance(ka, Decimal) and isinstance(kb, Decimal):
        return (ka > kb) - (ka < kb)
    if isinstance(ka, datetime) and isinstance(kb, datetime):
        return (ka > kb) - (ka < kb)
    return (a > b) - (a < b)


@dataclass(frozen=True, slots=True)
class CursorState:
    """The newest cursor value read, and the items read at exactly that value (by digest)."""

    value: str
    seen: frozenset[str] = frozenset()

    def dump(self) -> str:
        return json.dumps({"value": self.value, "seen": sorted(self.seen)})

    @classmethod
    def load(cls, text: str) -> CursorState:
        data = json.loads(text)
        value, seen = data["value"], data["seen"]
        if not isinstance(value, str) or not isinstance(seen, list):
            raise ValueError("value must be text and seen a list")
        if not all(isinstance(s, str) for s in seen):
            raise ValueError("value and seen must be text")
        return cls(value, frozenset(seen))


def item_digest(item: Any) -> str:
    """Identity of an item by its whole content: equal-cursor items are told apart by it."""
    canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def retry_delay(interval: float, failures: int) -> float:
    """Seconds before the next poll: the interval, or after failures 1s, 2s, 4s… up to it."""
    if failures <= 0:
        return interval
    return min(interval, FIRST_RETRY * 2.0 ** min(failures - 1, 30))


class Poller:
    """Polls one feed: `poll_once` reads it once, `run` polls forever (first poll at once).

    The cursor is saved only after `emit` returned, so a crash between the two re-reads
    items rather than losing them. Never raises from a poll: failures are logged and counted.
    """

    def __init__(
        self,
        config: PollerConfig,
        emit: Emit,
        cursors: CursorStore,
        clock: Clock,
        log: Any,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._emit = emit
        self._cursors = cursors
        self._clock = clock
        self._log = log.bind(poller=config.name)
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._mapper = ItemMapper(config)
        self._items = parse_path(config.items)
        self._cursor_field = parse_path(config.cursor.field) if config.cursor else None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set: every interval (plus jitter), sooner while polls fail.

        A poll in progress is finished, not cancelled: cancelled between emit (committed)
        and saving the cursor, the next start would read those items again.
        """
        loop = asyncio.get_running_loop()
        failures = 0
        while not stop.is_set():
            started = loop.time()
            result = await self.poll_once()
            failures = 0 if result.ok else failures + 1
            wait = retry_delay(self.config.interval, failures)
            delay = next_delay(wait, self.config.jitter, self._rng)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, started + delay - loop.time()))

    async def poll_once(self) -> PollResult:
        """Read the feed once, emit the new items' events, then save the cursor."""
        try:
            return await self._poll()
        except PollFailed as exc:
            self._log.warning("poller_failed", reason=str(exc))
            return PollResult(error=str(exc))
        except Exception as exc:
            # The sink or the cursor store failed: nothing saved, the next poll re-reads.
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            self._log.error("poller_failed", reason=reason, exc_info=True)
            return PollResult(error=reason)

    async def _poll(self) -> PollResult:
        saved = await self._load_cursor()
        document = await self._fetch(saved)
        try:
            items = lookup(document, self._items, root="the body")
        except (KeyError, TypeError) as exc:
            raise PollFailed(f"items: {exc.args[0]}") from None
        if not isinstance(items, list):
            raise PollFailed(
                f"items: {self.config.items or 'the body'} is {_kind(items)}, not a list"
            )
        now = self._clock.now()
        read: list[tuple[str, Any]] = []  # (cursor value, item) of every item not read before
        events: list[tuple[str, Event]] = []
        already = skipped = 0
        cursor = self.config.cursor
        for index, item in enumerate(items):
            position = ""
            if cursor is not None:
                try:
                    position = self._position(item, cursor)
                except ItemError as exc:
                    self._skip(index, exc)
                    skipped += 1
                    continue
                if saved is not None and self._already_read(position, item, saved):
                    already += 1
                    continue
                # Counted even when the item cannot be mapped: a bad item must not hold the
                # cursor back, or the feed would be re-read (and warned about) forever.
                read.append((position, item))
            try:
                events.append((position, self._mapper.event(item, now)))
            except ItemError as exc:
                self._skip(index, exc)
                skipped += 1
        # Oldest first, so rules see an alert fire before it resolves even in newest-first feeds.
        events.sort(key=functools.cmp_to_key(_by_position))
        if events:
            await self._emit([event for _, event in events])
        if read:
            await self._save_cursor(saved, read)
        self._log.debug("poller_polled", emitted=len(events), already_read=already, skipped=skipped)
        return PollResult(emitted=len(events), already_read=already, skipped=skipped)

    def _position(self, item: Any, cursor: CursorConfig) -> str:
        assert self._cursor_field is not None  # set whenever config.cursor is
        try:
            return _text(lookup(item, self._cursor_field), cursor.field)
        except (KeyError, TypeError) as exc:
            raise ItemError(cursor.field, str(exc.args[0])) from None

    def _skip(self, index: int, exc: ItemError) -> None:
        self._log.warning("poller_item_skipped", item=index, path=exc.path, reason=exc.reason)

    @staticmethod
    def _already_read(position: str, item: Any, saved: CursorState) -> bool:
        order = compare_cursors(position, saved.value)
        return order < 0 or (order == 0 and item_digest(item) in saved.seen)

    async def _load_cursor(self) -> CursorState | None:
        if self.config.cursor is None:
            return None
        text = await self._cursors.load_cursor(self.config.name)
        if text is None:
            return None
        try:
            return CursorState.load(text)
        except (ValueError, KeyError, TypeError):
            # Re-reading the feed is the safe way out: duplicates can be seen, lost items not.
            self._log.error("poller_cursor_unreadable", cursor=text[:200])
            return None

    async def _save_cursor(self, saved: CursorState | None, read: list[tuple[str, Any]]) -> None:
        newest = functools.reduce(
            lambda a, b: b if compare_cursors(b, a) > 0 else a, (p for p, _ in read)
        )
        seen = {item_digest(item) for p, item in read if compare_cursors(p, newest) == 0}
        if saved is not None and compare_cursors(saved.value, newest) >= 0:
            # Only equal is possible here (older items were dropped): keep what was seen before.
            newest, seen = saved.value, seen | saved.seen
        await self._cursors.save_cursor(
            self.config.name, CursorState(newest, frozenset(seen)).dump()
        )

    async def _fetch(self, saved: CursorState | None) -> Any:
        import httpx  # imported here: only a configured poller needs it

        cfg = self.config
        headers = dict(cfg.headers)
        for name, secret in cfg.secret_headers.items():
            try:
                headers[name] = secret.reveal()
            except (ValueError, OSError) as exc:
                raise PollFailed(f"secret header {name}: {exc}") from None
            if not _HEADER_VALUE.fullmatch(headers[name]):
                raise PollFailed(
                    f"secret header {name}: not a valid header value (printable ASCII)"
                )
        try:
            url = httpx.URL(cfg.url)
            if cfg.cursor is not None and cfg.cursor.param and saved is not None:
                # Set on the URL, not via `params=`: httpx would drop the URL's own query.
                url = url.copy_set_param(cfg.cursor.param, saved.value)
            async with (
                asyncio.timeout(cfg.timeout),
                # httpx's own limit sits past ours: a backstop, never the one that reports.
                http_client(verify_tls=cfg.verify_tls, timeout=cfg.timeout + 1.0) as client,
                client.stream("GET", url, headers=headers) as response,
            ):
                if not 200 <= response.status_code <= 299:
                    status = f"{response.status_code} {response.reason_phrase}".strip()
                    raise PollFailed(f"HTTP {status}")
                body = await _read_capped(response)
        except TimeoutError:
            raise PollFailed(f"no answer within {cfg.timeout:g}s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise PollFailed(f"request failed: {type(exc).__name__} {exc}".strip()) from None
        try:
            return json.loads(body, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            raise PollFailed(f"body is not JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    # NaN and Infinity are Python's extension, not JSON; an event must stay storable as JSON.
    raise ValueError(f"{name} is not JSON")


def _by_position(a: tuple[str, Event], b: tuple[str, Event]) -> int:
    return compare_cursors(a[0], b[0])


async def _read_capped(response: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > BODY_LIMIT:
            raise PollFailed(f"body over {BODY_LIMIT // (1024 * 1024)} MiB")
        chunks.append(chunk)
    return b"".join(chunks)
