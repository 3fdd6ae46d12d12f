"""A hunt's report as text lines (grep-like, overlaps printed once) and as JSON-ready data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from opsmedic.loghunt.model import HuntEvent, HuntReport, Sighting

# Control characters of binary garbage would drive the terminal: shown as U+FFFD.
_CONTROLS = {c: "\ufffd" for c in (*range(0, 9), *range(10, 32), 127)}
_MARK = {"match": ":", "event": ":", "context": "-"}


def text_lines(report: HuntReport) -> Iterator[str]:
    """A header per event (count, first and last seen), then its lines as `file:N: text` for
    the event and `file-N- text` for context. A context line already shown for the event
    before is not shown again; an event's own lines always are, marked `:` (as grep marks a
    match), even when the event above showed one of them as its context."""
    shown: tuple[str, int] = ("", 0)
    for event in report.events:
        times = "once" if event.count == 1 else f"{event.count} times"
        yield (
            f"== {times}, first {_seen(event.first)} last {_seen(event.last)}"
            + (" (cut: longer than --max-event-lines)" if event.cut else "")
            + (
                f" ({event.lines_left_out} lines not shown: --max-lines)"
                * bool(event.lines_left_out)
            )
        )
        if report.options.mode == "template":
            yield f"== template {event.key.translate(_CONTROLS)}"
        for line in event.lines:
            again = line.source == shown[0] and line.number <= shown[1]
            if again and line.kind == "context":
                continue
            if not again:
                shown = (line.source, line.number)
            yield f"{line.source}{_MARK[line.kind]}{line.number}{_MARK[line.kind]} " + (
                line.text.translate(_CONTROLS)
            )
    yield summary(report)
    yield from (f"note: {n}" for n in report.stats.notes)


def summary(report: HuntReport) -> str:
    """One line: what was read, found and left out."""
    s = report.stats
    parts = [
        f"{len(report.events)} events reported",
        f"{s.occurrences} occurrences",
        f"{s.lines_read} lines",
        f"{s.bytes_read / 1e6:.1f} MB in {s.seconds:.2f} s",
    ]
    if s.unreported_events:
        parts.append(f"{s.unreported_events} more distinct events not shown (limits)")
    if s.evicted_keys:
        parts.append(f"{s.evicted_keys} keys evicted (their counts may be split)")
    if s.evicted_templates:
        parts.append(f"{s.evicted_templates} templates evicted (their counts may be split)")
    if s.outside_window:
        parts.append(f"{s.outside_window} outside the time window")
    if s.split_lines:
        parts.append(f"{s.split_lines} overlong lines split")
    if s.stopped:
        parts.append(f"stopped early: {s.stopped}")
    return "; ".join(parts)


def as_json(report: HuntReport) -> dict[str, Any]:
    """The report as plain data: times in ISO 8601, the options it ran with; text valid
    Unicode (a file name's bytes that are not UTF-8 as U+FFFD)."""
    document: dict[str, Any] = _unicode(
        {
            "events": [_event(e) for e in report.events],
            "stats": asdict(report.stats),
            "options": {k: _plain(v) for k, v in asdict(report.options).items()},
        }
    )
    return document


def _unicode(value: Any) -> Any:
    """`value` with each string's lone surrogates (a non-UTF-8 file name, as Python decodes
    it) as U+FFFD: strict JSON parsers refuse them."""
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8", "surrogateescape")  # a name's byte: one U+FFFD
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogatepass")
        return raw.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _unicode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unicode(v) for v in value]
    return value


def _event(event: HuntEvent) -> dict[str, Any]:
    return {
        "key": event.key,
        "count": event.count,
        "first": _sighting(event.first),
        "last": _sighting(event.last),
        "cut": event.cut,
        "lines_left_out": event.lines_left_out,
        "lines": [
            {"source": ln.source, "line": ln.number, "kind": ln.kind, "text": ln.text}
            for ln in event.lines
        ],
    }


def _sighting(s: Sighting) -> dict[str, Any]:
    return {"source": s.source, "line": s.line, "time": _plain(s.time)}


def _seen(s: Sighting) -> str:
    when = f" {s.time.isoformat()}" if s.time else ""
    return f"{s.source}:{s.line}{when}"


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
