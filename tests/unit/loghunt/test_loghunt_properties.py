"""Properties over generated logs: order, completeness, counts, and the same answer however
the input is cut into blocks or split between processes."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from hunt_helpers import LOGS, PiecesSource
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmedic.loghunt import DEFAULT_PATTERN, HuntOptions, HuntReport, hunt, hunt_paths

MATCH = re.compile(rb"\b(?:" + DEFAULT_PATTERN.encode() + rb")\b")
# No window, or one that cuts the generated lines' times (10:00:00 to 10:00:59): an undated
# matching line takes the time of a line above it, wherever blocks or ranges begin.
SINCE = st.sampled_from([None, datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC)])
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", "replace")


def _report(data: bytes, piece: int, **options: object) -> HuntReport:
    return hunt([PiecesSource(data, max(1, piece))], HuntOptions(**options))  # type: ignore[arg-type]


def _same(a: HuntReport, b: HuntReport) -> None:
    stats_a, stats_b = asdict(a.stats), asdict(b.stats)
    for s in (stats_a, stats_b):
        s.pop("seconds")
    assert a.events == b.events
    assert stats_a == stats_b


@SETTINGS
@given(
    data=LOGS,
    piece=st.integers(1, 40),
    context=st.integers(0, 4),
    mode=st.sampled_from(["exact", "masked", "template"]),
    since=SINCE,
)
def test_the_answer_does_not_depend_on_where_blocks_end(
    data: bytes, piece: int, context: int, mode: str, since: datetime | None
) -> None:
    whole = _report(data, len(data) or 1, context=context, mode=mode, since=since)
    cut = _report(
        data, piece, context=context, mode=mode, chunk_bytes=piece, max_event_lines=7, since=since
    )
    if not any(e.cut for e in whole.events) and not any(e.cut for e in cut.events):
        _same(whole, cut)
    assert whole.stats.lines_read == (
        data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    )


@SETTINGS
@given(data=LOGS, context=st.integers(0, 4))
def test_output_is_the_input_in_order_and_every_match_is_in_an_event(
    data: bytes, context: int
) -> None:
    lines = data.split(b"\n")
    report = _report(data, 7, context=context, mode="exact", chunk_bytes=16)
    shown = [(ln.number, ln.text) for e in report.events for ln in e.lines]
    for number, text in shown:
        assert text == _text(lines[number - 1])  # a subsequence of the input, never invented
    for event in report.events:
        numbers = [ln.number for ln in event.lines]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    firsts = [e.first.line for e in report.events]
    assert firsts == sorted(set(firsts))  # each event once, in order of first occurrence
    inside = {ln.text for e in report.events for ln in e.lines if ln.kind != "context"}
    matching = [raw for raw in lines if MATCH.search(raw)]
    assert all(_text(raw) in inside for raw in matching)
    assert sum(e.count for e in report.events) == report.stats.occurrences
    assert (report.stats.occurrences > 0) == bool(matching)
    assert report.stats.occurrences <= len(matching)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    data=LOGS,
    repeat=st.integers(1, 30),
    mode=st.sampled_from(["masked", "template"]),
    since=SINCE,
    context=st.integers(0, 2),
)
def test_processes_splitting_a_file_find_what_one_finds(
    tmp_path: Path, data: bytes, repeat: int, mode: str, since: datetime | None, context: int
) -> None:
    path = tmp_path / "big.log"
    path.write_bytes((data + b"\n") * repeat)
    common: dict[str, object] = {"mode": mode, "since": since, "context": context}
    one = hunt_paths([str(path)], HuntOptions(workers=1, **common))  # type: ignore[arg-type]
    three = hunt_paths([str(path)], HuntOptions(workers=3, parallel_bytes=1, **common))  # type: ignore[arg-type]
    _same(one, three)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=LOGS, repeat=st.integers(1, 30), events=st.integers(1, 3), lines=st.integers(1, 12),
       context=st.integers(0, 2))  # fmt: skip
def test_processes_report_what_one_reports_under_tight_limits(
    tmp_path: Path, data: bytes, repeat: int, events: int, lines: int, context: int
) -> None:
    """A range that spent its max_events on events the merge cannot show (over max_lines)
    still gives the merge the lines of the next ones: the same events as one process."""
    path = tmp_path / "big.log"
    path.write_bytes((data + b"\n") * repeat + data.upper())
    options = HuntOptions(max_events=events, max_lines=lines, context=context)
    one = hunt_paths([str(path)], options)
    three = hunt_paths([str(path)], replace(options, workers=3, parallel_bytes=1))
    _same(one, three)
