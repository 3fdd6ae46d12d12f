"""What flags look like in Redis: the key names, the stored entry, the published change."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from opsmedic.errors import FlagRefused, FlagStoreError

C = TypeVar("C")

DEFAULT_PREFIX = "opsmedic:flags"
# A flag is a few rules and variants; 64 KiB is far above that and bounds what one HGETALL,
# one message and one decode can cost a reader.
MAX_DOC_BYTES = 64 * 1024
MAX_KEY_CHARS = 200


@dataclass(frozen=True, slots=True)
class Layout:
    """The Redis names of one flag set; several sets share a Redis under different prefixes."""

    prefix: str = DEFAULT_PREFIX

    @property
    def flags(self) -> str:
        """The hash: flag key → `{"version": N, "doc": {...}}`."""
        return self.prefix

    @property
    def version(self) -> str:
        """The global version counter: bumped by every change, the version it gave the flag."""
        return f"{self.prefix}:version"

    @property
    def epoch(self) -> str:
        """A random token set by the first write: a Redis that lost its data gets a new one."""
        return f"{self.prefix}:epoch"

    @property
    def channel(self) -> str:
        """The pub/sub channel every change is published on: `{"key", "version", "epoch",
        "doc"}`."""
        return f"{self.prefix}:changes"


@dataclass(frozen=True, slots=True)
class Entry:
    """One flag as stored: its key, the version of its last change, its document (opaque
    here: the flag model reads it). Readers share one document: never mutate it."""

    key: str
    version: int
    doc: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Change:
    """One published change: the flag's new document, or None when it was deleted; `epoch`
    is that of the Redis data it was made in."""

    key: str
    version: int
    epoch: str
    doc: dict[str, Any] | None


class BadEntry(ValueError):
    """A stored entry or a published message that is not what opsmedic writes."""


def check_key(key: object) -> str:
    """The key itself if opsmedic can store it, else FlagRefused saying why."""
    if not isinstance(key, str) or not key:
        raise FlagRefused(f"flag key {key!r}: must be a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise FlagRefused(f"flag key {key[:40]!r}…: longer than {MAX_KEY_CHARS} characters")
    try:
        key.encode()
    except UnicodeEncodeError as exc:
        raise FlagRefused(f"flag key {key!r}: not valid UTF-8 ({exc.reason})") from None
    if not key.isprintable():
        raise FlagRefused(f"flag key {key!r}: holds a control character")
    return key


def encode_doc(key: str, doc: object, max_bytes: int = MAX_DOC_BYTES) -> str:
    """The document as compact JSON, or FlagRefused naming the key when it is not a JSON
    object, holds what JSON cannot (NaN, a set, a lone surrogate), or is larger than
    max_bytes (counted in UTF-8, as Redis stores it)."""
    if not isinstance(doc, dict):
        raise FlagRefused(
            f"flag {key!r}: the document must be a JSON object, not {type(doc).__name__}"
        )
    try:
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size = len(text.encode())
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise FlagRefused(f"flag {key!r}: the document is not JSON: {exc}") from None
    if size > max_bytes:
        raise FlagRefused(f"flag {key!r}: the document is {size} bytes, above {max_bytes}")
    return text


def decode_entry(key: str, raw: bytes | str, max_bytes: int = MAX_DOC_BYTES) -> Entry:
    """A stored hash value as an Entry, or BadEntry saying what is wrong with it."""
    found = _object(raw, max_bytes)
    return Entry(key, _version(found), _doc(found, nullable=False) or {})


def decode_change(raw: bytes, max_bytes: int = MAX_DOC_BYTES) -> Change:
    """A published message as a Change, or BadEntry saying what is wrong with it."""
    found = _object(raw, max_bytes)
    key = found.get("key")
    if not isinstance(key, str) or not key:
        raise BadEntry("its key is missing or not a string")
    epoch = found.get("epoch")
    if not isinstance(epoch, str) or not epoch:
        raise BadEntry("its epoch is missing or not a string")
    return Change(key, _version(found), epoch, _doc(found, nullable=True))


def redact(url: str) -> str:
    """The URL with its password, if any, replaced by ***: safe in messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def open_client(from_url: Callable[..., C], url: str, timeout_s: float, no_retry: object) -> C:
    """A redis-py client, sync or asyncio (`from_url` is its class's), that waits at most
    `timeout_s` for anything and never retries by itself (`no_retry`: that flavour's
    `Retry(NoBackoff(), 0)`): a retried write could apply twice, and a silent reconnection
    would skip a reader's resynchronisation. FlagStoreError if `url` is not a Redis URL."""
    try:
        return from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=no_retry
        )
    except ValueError as exc:
        raise FlagStoreError(redact(url), f"not a Redis URL: {exc}") from None


def _object(raw: bytes | str, max_bytes: int) -> dict[str, Any]:
    # The envelope adds a key and a version to the document: allow for them.
    if len(raw) > max_bytes + MAX_KEY_CHARS * 4 + 64:
        raise BadEntry(f"{len(raw)} bytes, above the limit of {max_bytes}")
    try:
        found = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadEntry(f"not JSON ({exc})") from None
    if not isinstance(found, dict):
        raise BadEntry(f"a JSON {type(found).__name__}, not an object")
    return found


def _version(found: dict[str, Any]) -> int:
    version = found.get("version")
    # bool is an int to Python, never a version.
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BadEntry(f"its version {version!r} is not a positive integer")
    return version


def _doc(found: dict[str, Any], *, nullable: bool) -> dict[str, Any] | None:
    doc = found.get("doc")
    if doc is None and nullable and "doc" in found:
        return None
    if not isinstance(doc, dict):
        raise BadEntry(f"its doc is {type(doc).__name__}, not a JSON object")
    return doc
