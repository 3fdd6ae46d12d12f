"""Reading webhook JSON: typed reads that fail naming the JSON path, and the shared mappings."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from opsmedic.errors import WebhookError

S = TypeVar("S")  # what a tool's status word maps to


_TYPE_NAMES = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
               float: "number", type(None): "null"}  # fmt: skip


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def child(where: str, key: str | int) -> str:
    """The JSON path of a member (`alerts[3].labels`); `where` is "" at the top of the body."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def as_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookError(where, f"expected an object, got {type_name(value)}")
    return value


def as_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise WebhookError(where, f"expected a list, got {type_name(value)}")
    return value


def required(obj: dict[str, Any], key: str, where: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise WebhookError(child(where, key), "missing")
    return value


# Optional members: absent and null read alike, since senders emit either for "nothing".
def opt_object(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    return {} if value is None else as_object(value, child(where, key))


def opt_text(obj: dict[str, Any], key: str, where: str) -> str:
    """A string member, "" when absent; a number is read as its text (ids arrive as either)."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_text(value, child(where, key))
    raise WebhookError(child(where, key), f"expected text, got {type_name(value)}")


def need_text(obj: dict[str, Any], key: str, where: str) -> str:
    text = opt_text(obj, key, where)
    if not text:
        raise WebhookError(child(where, key), "missing")
    return text


def _number_text(value: int | float, where: str) -> str:
    try:
        return str(value)
    except ValueError:  # an int beyond Python's 4300-digit conversion limit
        raise WebhookError(where, "number too long") from None


def label_text(value: Any, where: str) -> str:
    """Labels are text, as in Prometheus; other JSON values keep their JSON spelling."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (ValueError, TypeError, RecursionError):
        raise WebhookError(where, f"cannot be read as text ({type_name(value)})") from None


def text_labels(obj: dict[str, Any], where: str) -> dict[str, str]:
    # Labels are nearly always text already: the path for an error is built only if needed.
    return {k: v if isinstance(v, str) else label_text(v, child(where, k)) for k, v in obj.items()}


def parse_tags(value: Any, where: str) -> dict[str, str]:
    """`key:value` tags (split at the first colon) from a comma-separated string or a list.

    A tag without a colon becomes a label with an empty value, so it can still be matched.
    """
    if value is None:
        return {}
    if isinstance(value, str):
        items: list[str] = value.split(",")
    else:
        items = []
        for i, tag in enumerate(as_list(value, where)):
            if not isinstance(tag, str):
                raise WebhookError(child(where, i), f"expected text, got {type_name(tag)}")
            items.append(tag)
    tags: dict[str, str] = {}
    for item in items:
        key, _, val = item.strip().partition(":")
        if key.strip():
            tags[key.strip()] = val.strip()
    return tags


def iso_time(value: Any) -> float:
    """Epoch seconds of an RFC 3339 time, or 0 (Event then stamps now) if absent or unreadable.

    Go's zero time (`0001-01-01T00:00:00Z`, Alertmanager's "no end yet") reads as 0 too.
    """
    return _iso_seconds(value) if isinstance(value, str) else 0.0


@functools.lru_cache(maxsize=4096)
def _iso_seconds(value: str) -> float:
    # Cached: the alerts of one group, and its re-sends, mostly share their times.
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return _plausible(parsed.timestamp())
    except (ValueError, OverflowError):
        return 0.0


_DIGITS = re.compile(r"[0-9]{1,20}")


def epoch_time(value: Any, per_second: float) -> float:
    """Epoch seconds from a count of ms (per_second=1e3) or ns (1e9), number or digits; else 0."""
    if isinstance(value, str):
        digits = value.strip()
        value = int(digits) if _DIGITS.fullmatch(digits) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _plausible(value / per_second)
        except OverflowError:
            return 0.0
    return 0.0


def _plausible(seconds: float) -> float:
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0


def status_from(word: str, vocabulary: Mapping[str, S], where: str) -> S:
    """The status a tool's word stands for (case aside); an unknown word is an error."""
    if not word:
        raise WebhookError(where, "missing")
    if word.lower() not in vocabulary:
        raise WebhookError(where, f"expected one of {', '.join(vocabulary)}, got {word!r}")
    return vocabulary[word.lower()]


_SEVERITIES = {
    "critical": ("critical", "crit", "fatal", "emergency", "emerg", "alert", "disaster", "page",
                 "p1", "sev1", "sev0"),
    "error": ("error", "err", "major", "high", "p2", "sev2"),
    "warning": ("warning", "warn", "minor", "medium", "average", "ticket", "p3", "sev3"),
    "info": ("info", "informational", "information", "notice", "low", "debug", "none", "ok",
             "success", "p4", "p5", "sev4", "sev5"),
}  # fmt: skip
_SEVERITY_OF = {word: level for level, words in _SEVERITIES.items() for word in words}


def severity_of(*words: str, default: str = "info") -> str:
    """The first of the tool's words that names a severity, as critical|error|warning|info."""
    for word in words:
        level = _SEVERITY_OF.get(word.strip().lower())
        if level:
            return level
    return default


# Which label names what a remediation acts on, most specific meaning first.
RESOURCE_LABELS = ("service", "service_name", "app", "application", "job", "instance")
HOST_LABELS = ("host", "hostname", "nodename", "node", "instance")
_PORT = re.compile(r"^\[?(?P<host>[^\[\]]+?)\]?:[0-9]+$")


def resource_of(labels: dict[str, str]) -> str:
    return next((labels[n] for n in RESOURCE_LABELS if labels.get(n)), "")


def host_of(labels: dict[str, str]) -> str:
    """The host label; Prometheus' `instance` is `host:port`, so its port is dropped."""
    host = next((labels[n] for n in HOST_LABELS if labels.get(n)), "")
    match = _PORT.match(host)
    # An unbracketed IPv6 address has colons of its own and no port to drop.
    if match and (host.startswith("[") or host.count(":") == 1):
        return match["host"]
    return host
