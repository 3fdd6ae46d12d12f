"""What applications read flags through: typed values from a local copy, never an exception."""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from pydantic import ValidationError

from opsmedic.flags.evaluate import ErrorCode, Reason, evaluate
from opsmedic.flags.model import Flag, FlagType
from opsmedic.flags.redis_wire import Entry

log = logging.getLogger("opsmedic.flags")

SourceChange = Callable[[str, dict[str, Any] | None, int], None]
FlagChanged = Callable[[str, int], None]
Context = Mapping[str, object]
JsonObject = dict[str, Any] | list[Any]
_NO_CONTEXT: dict[str, object] = {}  # read by evaluate(), never written


class FlagSource(Protocol):
    """Where a client's documents come from, kept current in memory by the source's own
    thread: RedisFlagCache (flags/redis_cache.py) or ApiFlagStream (flags/api_stream.py)."""

    def entry(self, key: str) -> Entry | None:
        """The flag's document and version, from memory."""
        ...

    def entries(self) -> dict[str, Entry]:
        """Every flag held now."""
        ...

    def problem(self, key: str) -> str | None:
        """Why the stored value of `key` was skipped (garbage), if it was."""
        ...

    @property
    def staleness_s(self) -> float | None:
        """Seconds since the copy stopped being kept current; None while it is."""
        ...

    def wait_ready(self, timeout_s: float) -> bool:
        """Whether the flags were loaded (within `timeout_s`)."""
        ...

    def watch(self, callback: SourceChange) -> None:
        """Call `callback(key, doc, version)` after every change (doc None: deleted)."""
        ...


class Kind(StrEnum):
    """The type an application asks for; NUMBER takes an integer or a float as it is."""

    BOOLEAN = "boolean"
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    NUMBER = "number"
    OBJECT = "object"


_FLAG_TYPE = {Kind.BOOLEAN: FlagType.BOOLEAN, Kind.STRING: FlagType.STRING,
              Kind.INTEGER: FlagType.NUMBER, Kind.FLOAT: FlagType.NUMBER,
              Kind.NUMBER: FlagType.NUMBER, Kind.OBJECT: FlagType.OBJECT}  # fmt: skip


class FlagDetails(NamedTuple):
    """One evaluation as the client served it: on an error, the caller's default with reason
    ERROR and the code; `version` of the document evaluated (None: none found) and the
    copy's `staleness_s` (None: current)."""

    value: Any
    variant: str | None
    reason: Reason
    error_code: ErrorCode | None
    error_message: str | None
    version: int | None
    staleness_s: float | None


class _Parsed(NamedTuple):
    entry: Entry
    flag: Flag | None
    problem: str | None  # why the document is not a flag


class FlagClient:
    """Typed flag values for an application: a dict lookup, a parsed flag cached per
    version, and evaluate() — no network and no parsing on the request path. Nothing it
    reads raises into the application: whatever goes wrong serves the caller's default with
    reason ERROR and an OpenFeature error code (`details()` tells which)."""

    def __init__(self, source: FlagSource) -> None:
        self.source = source
        self._parsed: dict[str, _Parsed] = {}
        self._listeners: list[FlagChanged] = []
        source.watch(self._changed)

    def boolean(self, key: str, default: bool, context: Context | None = None) -> bool:
        """The flag's value for `context`, `default` when it cannot be served."""
        value: bool = self.details(key, default, context, Kind.BOOLEAN).value
        return value

    def string(self, key: str, default: str, context: Context | None = None) -> str:
        """A string flag's value, `default` when it cannot be served."""
        value: str = self.details(key, default, context, Kind.STRING).value
        return value

    def integer(self, key: str, default: int, context: Context | None = None) -> int:
        """A number flag's value if it is an integer, `default` otherwise."""
        value: int = self.details(key, default, context, Kind.INTEGER).value
        return value

    def float(self, key: str, default: builtins.float,
              context: Context | None = None) -> builtins.float:  # fmt: skip
        """A number flag's value as a float, `default` when it cannot be served."""
        value: builtins.float = self.details(key, default, context, Kind.FLOAT).value
        return value

    def number(self, key: str, default: int | builtins.float,
               context: Context | None = None) -> int | builtins.float:  # fmt: skip
        """A number flag's value as it is (an integer or a float)."""
        value: int | builtins.float = self.details(key, default, context, Kind.NUMBER).value
        return value

    def object(self, key: str, default: JsonObject, context: Context | None = None) -> JsonObject:
        """An object flag's value (a JSON object or array, a copy of its own)."""
        value: JsonObject = self.details(key, default, context, Kind.OBJECT).value
        return value

    def details(
        self, key: str, default: Any, context: Context | None = None, kind: Kind | None = None
    ) -> FlagDetails:
        """The whole evaluation; `kind` defaults to the type of `default`."""
        try:
            return self._details(key, default, context, kind or _kind_of(default))
        except Exception as exc:  # the application's request gets its default, whatever broke
            return FlagDetails(default, None, Reason.ERROR, ErrorCode.GENERAL,
                               f"{type(exc).__name__}: {exc}", None, None)  # fmt: skip

    def on_change(self, callback: FlagChanged) -> None:
        """Call `callback(key, version)` after every change of a flag, in the source's thread,
        once the client serves the new value; what it raises is logged."""
        self._listeners.append(callback)

    def wait_ready(self, timeout_s: builtins.float) -> bool:
        """Whether the source loaded the flags within `timeout_s`; once it has, every flag of
        the first load is parsed here, so that no request pays for it (later changes are
        parsed in the source's thread)."""
        if not self.source.wait_ready(timeout_s):
            return False
        for entry in self.source.entries().values():
            known = self._parsed.get(entry.key)
            if known is None or known.entry is not entry:
                self._parse(entry)
        return True

    # --- the request path ---------------------------------------------------------------

    def _details(self, key: str, default: Any, context: Context | None, kind: Kind) -> FlagDetails:
        staleness = self.source.staleness_s
        entry = self.source.entry(key)
        if entry is None:
            return self._missing(key, default, staleness)
        parsed = self._parsed.get(key)
        if parsed is None or parsed.entry is not entry:
            parsed = self._parse(entry)
        flag = parsed.flag
        if flag is None:
            return _error(default, ErrorCode.PARSE_ERROR, parsed.problem, entry.version, staleness)
        if flag.type is not _FLAG_TYPE[kind]:
            return _error(default, ErrorCode.TYPE_MISMATCH, f"flag {key!r} is a {flag.type} "
                          f"flag, asked for a {kind}", entry.version, staleness)  # fmt: skip
        found = evaluate(flag, _NO_CONTEXT if context is None else context)
        if found.error_code is not None:
            return _error(default, found.error_code, found.error_message, entry.version,
                          staleness)  # fmt: skip
        value: Any = found.value
        if kind is Kind.INTEGER and type(value) is not int:
            return _error(default, ErrorCode.TYPE_MISMATCH, f"flag {key!r} served {value!r}, "
                          "not an integer", entry.version, staleness)  # fmt: skip
        if kind is Kind.FLOAT:
            value = builtins.float(value)
        return FlagDetails(value, found.variant, found.reason, None, None, entry.version,
                           staleness)  # fmt: skip

    def _missing(self, key: str, default: Any, staleness: builtins.float | None) -> FlagDetails:
        problem = self.source.problem(key)
        if problem is not None:
            return _error(default, ErrorCode.PARSE_ERROR, problem, None, staleness)
        if not self.source.wait_ready(0):
            return _error(default, ErrorCode.PROVIDER_NOT_READY,
                          "the flags are not loaded yet", None, staleness)  # fmt: skip
        return _error(default, ErrorCode.FLAG_NOT_FOUND, f"no flag {key!r}", None, staleness)

    # --- the source's thread ------------------------------------------------------------

    def _parse(self, entry: Entry) -> _Parsed:
        """The flag of one document, parsed once per version; a document with the same
        version and content (a source's reload) keeps the flag already parsed."""
        known = self._parsed.get(entry.key)
        if known is not None and known.entry.version == entry.version \
                and known.entry.doc == entry.doc:  # fmt: skip
            parsed = known._replace(entry=entry)
        else:
            parsed = _parsed(entry)
        self._parsed[entry.key] = parsed  # one assignment: readers see the old or the new
        return parsed

    def _changed(self, key: str, doc: dict[str, Any] | None, version: int) -> None:
        entry = self.source.entry(key)
        if entry is None:
            self._parsed.pop(key, None)
        else:
            self._parse(entry)  # here, not in the next request
        for listener in self._listeners:
            try:
                listener(key, version)
            except Exception as exc:
                log.warning("flags.on_change_failed key=%s error=%r", key,
                            f"{type(exc).__name__}: {exc}")  # fmt: skip


def _parsed(entry: Entry) -> _Parsed:
    doc = entry.doc
    if doc.get("key", entry.key) != entry.key:
        return _Parsed(entry, None, f"flag {entry.key!r}: its document names the flag "
                       f"{doc.get('key')!r}")  # fmt: skip
    try:
        return _Parsed(entry, Flag.model_validate({**doc, "key": entry.key}), None)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        return _Parsed(entry, None, f"flag {entry.key!r} (version {entry.version}) is not a "
                       f"valid flag: {where}: {first['msg']}")  # fmt: skip


def _kind_of(default: object) -> Kind:
    if isinstance(default, bool):
        return Kind.BOOLEAN
    if isinstance(default, str):
        return Kind.STRING
    if isinstance(default, int | builtins.float):
        return Kind.NUMBER
    if isinstance(default, dict | list):
        return Kind.OBJECT
    raise TypeError(f"a default of type {type(default).__name__} is no flag type")


def _error(
    default: Any, code: ErrorCode, message: str | None, version: int | None,
    staleness: builtins.float | None,
) -> FlagDetails:  # fmt: skip
    return FlagDetails(default, None, Reason.ERROR, code, message, version, staleness)
