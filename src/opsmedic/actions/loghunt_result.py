"""A hunt's report as a step's outcome: bounded details, a top-N summary, the rendered text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsmedic.model import Outcome
from opsmedic.utf8 import visible

if TYPE_CHECKING:
    from opsmedic.loghunt import HuntReport

# What a run keeps of a hunt in its details (the store's JSON): enough for the incident's
# "Log hunt" section and a notification; the whole report is the step's output.
DETAIL_EVENTS = 20
DETAIL_LINES = 40  # of one event, context included
TEXT_CHARS = 500  # of one line, and of one key
DETAIL_NOTES = 20
DETAIL_SOURCES = 50  # file names listed (a glob may match thousands)
HEADLINE_CHARS = 160  # of one error in the summary


def hunt_outcome(
    report: HuntReport,
    window: dict[str, Any],
    binary: list[str],
    *,
    top: int,
    output_limit: int,
    noun: str = "file",
) -> Outcome:
    """ok whatever the hunt found (finding errors is its job); `details` the bounded JSON
    with `summary`, `output` the rendered report cut at `output_limit` characters. `noun`
    is what the sources are counted as: files, or sources when commands are among them."""
    from opsmedic.loghunt.render import as_json

    full = as_json(report)
    events = [_bounded_event(e) for e in full["events"][:DETAIL_EVENTS]]
    stats = full["stats"]
    notes = binary + stats["notes"]
    stats["notes"] = [_cut(n) for n in notes[:DETAIL_NOTES]]
    stats["notes_cut"] = max(len(notes) - DETAIL_NOTES, 0)
    stats["sources_cut"] = max(len(stats["sources"]) - DETAIL_SOURCES, 0)
    stats["sources"] = stats["sources"][:DETAIL_SOURCES]
    text = summary(report, top, noun)
    details: dict[str, Any] = {
        "summary": text,
        "events": events,
        "events_cut": len(full["events"]) - len(events),
        "distinct": len(report.events) + report.stats.unreported_events,
        "stats": stats,
        "window": window,
        "options": full["options"],
    }
    return Outcome(ok=True, message=_message(report, binary, noun), details=details,
                   output=rendered(report, output_limit))  # fmt: skip


def summary(report: HuntReport, top: int, noun: str = "file") -> str:
    """`top` distinct errors, most frequent first, one a line: `4x ERROR db down host=a`."""
    s = report.stats
    files = _count(len(s.sources), noun)
    distinct = len(report.events) + s.unreported_events
    if not report.events:
        return f"no errors in {files}" + (f" (stopped early: {s.stopped})" if s.stopped else "")
    # Most frequent first; among equals, the first seen first (the report's order).
    ranked = sorted(report.events, key=lambda e: -e.count)[:top]
    lines = [f"{distinct} distinct errors, {s.occurrences} occurrences in {files}:"]
    lines += [f"{e.count}x {headline(e.key)}" for e in ranked]
    if distinct > len(ranked):
        lines.append(f"… and {distinct - len(ranked)} more distinct errors")
    if s.stopped:
        lines.append(f"(stopped early: {s.stopped})")
    return "\n".join(lines)


def headline(key: str) -> str:
    """An event's key in one line: its first line without the leading variables (a masked
    timestamp), and for a multi-line event its last line (a traceback's root cause)."""
    lines = [ln for ln in key.split("\n") if ln.strip()] or [key]
    words = lines[0].split(" ")
    while len(words) > 1 and words[0] in ("<*>", ""):
        words.pop(0)
    text = " ".join(words)
    if len(lines) > 1:
        text += " … " + lines[-1].strip()
    # Read in mails, chat and the CLI: a log line's ESC or bidi override shows as its escape.
    text = visible(text)
    return text if len(text) <= HEADLINE_CHARS else text[: HEADLINE_CHARS - 1] + "…"


def rendered(report: HuntReport, limit: int) -> str:
    """The report as `opsmedic logs hunt` prints it, its events cut to fit `limit`
    characters with a marker; the summary line and the notes always close it."""
    from opsmedic.loghunt.render import text_lines

    lines = list(text_lines(report))
    tail_n = 1 + len(report.stats.notes)  # summary() and the notes: text_lines ends with them
    body, tail = lines[:-tail_n], [_cut(t) for t in lines[-tail_n:][: 1 + DETAIL_NOTES]]
    room = max(limit - sum(len(t) + 1 for t in tail) - 100, 0)
    kept: list[str] = []
    used = 0
    for line in body:
        if used + len(line) + 1 > room:
            break
        kept.append(line)
        used += len(line) + 1
    if len(kept) < len(body):
        kept.append(f"… [{len(body) - len(kept):,} more lines cut: actions.output_limit]")
    return "\n".join(kept + tail) + "\n"


def _message(report: HuntReport, binary: list[str], noun: str) -> str:
    s = report.stats
    if not report.events:
        found = "no errors found"
    else:
        best = max(report.events, key=lambda e: e.count)
        distinct = len(report.events) + s.unreported_events
        found = (f"{distinct} distinct errors ({s.occurrences} occurrences); top: "
                 f"{best.count}x {headline(best.key)}")  # fmt: skip
    parts = [f"{found} in {_count(len(s.sources), noun)} ({s.bytes_read:,} bytes)"]
    if s.stopped:
        parts.append(f"stopped early: {s.stopped}")
    parts += binary[:2]
    return "; ".join(parts)


def _bounded_event(event: dict[str, Any]) -> dict[str, Any]:
    lines = event["lines"]
    event["headline"] = headline(event["key"])
    event["key"] = _cut(event["key"])
    event["lines"] = [{**ln, "text": _cut(ln["text"])} for ln in lines[:DETAIL_LINES]]
    event["lines_cut"] = max(len(lines) - DETAIL_LINES, 0)
    return event


def _cut(text: str) -> str:
    if len(text) <= TEXT_CHARS:
        return text
    return f"{text[:TEXT_CHARS]}… [{len(text) - TEXT_CHARS:,} more characters cut]"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
