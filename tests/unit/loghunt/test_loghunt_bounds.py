"""The hunt's bounds (events, lines, keys, time) and its time window; nothing left out silently."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hunt_helpers import Hunt, PiecesSource

from opsmedic.errors import HuntInputError
from opsmedic.loghunt import DEFAULT_PATTERN, HuntOptions, HuntStats, hunt, hunt_paths
from opsmedic.loghunt.keys import DIGEST_BYTES, KEY_BYTES, Keyer
from opsmedic.loghunt.levels import LevelMatcher
from opsmedic.loghunt.render import as_json, text_lines
from opsmedic.loghunt.scanner import Scanner
from opsmedic.loghunt.tally import ENTRY_BYTES, Tally
from opsmedic.loghunt.timestamps import parse_when

DISTINCT = "".join(f"ERROR kind {chr(97 + i % 26)}{chr(97 + i // 26)}\n" for i in range(100))


def test_past_max_events_events_are_counted_not_shown(hunt_text: Hunt) -> None:
    report = hunt_text(DISTINCT + DISTINCT, max_events=10, context=0)
    assert len(report.events) == 10
    assert [e.count for e in report.events] == [2] * 10
    assert report.stats.unreported_events == 90
    assert report.stats.unreported_occurrences == 180
    assert report.stats.occurrences == 200


def test_max_lines_bounds_the_output(hunt_text: Hunt) -> None:
    report = hunt_text(DISTINCT, max_lines=25, context=2)
    assert sum(len(e.lines) for e in report.events) <= 25
    assert report.stats.unreported_events == 100 - len(report.events)


TRACE = """\
INFO before 1
INFO before 2
ERROR job failed
Traceback (most recent call last):
  File "/srv/job.py", line 3, in run
    go()
ValueError: bad
INFO after 1
INFO after 2
ERROR small one
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_first_event_longer_than_max_lines_is_shown_cut_to_them(
    tmp_path: Path, workers: int
) -> None:
    """--max-lines 3 under a first event of 9 lines (context 2): that event is reported,
    from its match, 3 lines and 6 left out (said in its header and JSON), not unreported;
    the output is full, so the next event is counted only. Two processes agree."""
    path = tmp_path / "app.log"
    path.write_text("INFO filler\n" * 50 + TRACE)
    options = HuntOptions(max_lines=3, context=2, workers=workers, parallel_bytes=1)
    report = hunt_paths([str(path)], options)
    (event,) = report.events
    assert [(ln.number, ln.kind) for ln in event.lines] == [(53, "match"), (54, "event"),
                                                            (55, "event")]  # fmt: skip
    assert event.lines_left_out == 6
    assert report.stats.unreported_events == 1
    assert "(6 lines not shown: --max-lines)" in next(text_lines(report))
    assert as_json(report)["events"][0]["lines_left_out"] == 6


def test_a_first_event_cut_to_max_lines_keeps_context_before_when_its_end_comes_first(
    hunt_text: Hunt,
) -> None:
    report = hunt_text("INFO a\nINFO b\nERROR last line\nINFO c\n", max_lines=3, context=2)
    assert [ln.text for ln in report.events[0].lines] == ["INFO b", "ERROR last line", "INFO c"]
    assert report.events[0].lines_left_out == 1


def test_a_full_key_table_evicts_the_oldest_unreported_and_says_so(hunt_text: Hunt) -> None:
    report = hunt_text(DISTINCT + DISTINCT, max_events=5, max_keys=20, context=0)
    assert len(report.events) == 5
    assert [e.count for e in report.events] == [2] * 5  # reported keys are never evicted
    assert report.stats.evicted_keys > 0
    assert report.stats.occurrences == 200


def _big_event(tag: int, tail: str) -> str:
    """An event of four 3,000-byte lines, told apart by `tag` (a letter) and its very end."""
    frames = "".join(f"  at {chr(97 + tag % 26) * 3000}\n" for _ in range(3))
    return f"ERROR boom\n{frames}  at end {tail}\n"


@pytest.mark.parametrize("mode", ["exact", "masked"])
def test_a_long_events_key_is_bounded_and_still_tells_events_apart(
    hunt_text: Hunt, mode: str
) -> None:
    """Two 9 KB events equal but for their last line are two events; their keys keep
    KEY_BYTES of text and a digest, and the shown key is cut with an ellipsis."""
    events = Keyer(mode)  # type: ignore[arg-type]
    text = (_big_event(0, "x") + _big_event(0, "x") + _big_event(0, "y")).encode()
    scanner = Scanner(LevelMatcher("ERROR"), 0, 500)
    keys = list(events.keys(list(scanner.feed(text, True))))
    assert [len(k) for k in keys] == [KEY_BYTES + DIGEST_BYTES] * 3
    assert keys[0] == keys[1] != keys[2]
    report = hunt_text(text, mode=mode, context=0)
    assert [e.count for e in report.events] == [2, 1]
    assert report.events[0].key.endswith("…")
    assert len(report.events[0].key) == 401  # KEY_CHARS and the ellipsis


def test_the_key_tables_bytes_stay_within_max_key_bytes(hunt_text: Hunt) -> None:
    """max_keys bounds the count; max_key_bytes the bytes: past it the oldest unreported key
    goes and evicted_keys says so, whatever the size of the events."""
    budget = 5 * (KEY_BYTES + DIGEST_BYTES + ENTRY_BYTES)
    options = HuntOptions(max_events=1, max_key_bytes=budget, context=0)
    stats = HuntStats(sources=["app.log"])
    tally = Tally(options, ["app.log"], stats)
    scanner = Scanner(LevelMatcher("ERROR"), 0, 500)
    text = "".join(_big_event(i, chr(97 + i // 26)) for i in range(40)).encode()
    found = list(scanner.feed(text, True))
    for key, f in zip(Keyer("masked").keys(found), found, strict=True):
        tally.add(key, f, 0)
        assert tally.counted_bytes <= budget
    assert tally.counted_bytes == sum(len(k) + ENTRY_BYTES for k in tally.counted)
    assert len(tally.counted) == 5
    assert stats.evicted_keys == 40 - 1 - 5
    report = hunt_text(text, max_events=1, max_key_bytes=budget, context=0)
    assert report.stats.evicted_keys == 34
    assert report.stats.occurrences == 40


def test_the_time_budget_stops_the_hunt_and_says_where() -> None:
    ticks = itertools.count(0, 10)  # each look at the clock: 10 s later
    report = hunt(
        [PiecesSource(DISTINCT.encode() * 20, 500)],
        HuntOptions(time_budget_s=25, chunk_bytes=500),
        clock=lambda: next(ticks),
    )
    assert report.stats.stopped is not None and "time budget of 25 s" in report.stats.stopped
    assert 0 < report.stats.bytes_read < len(DISTINCT) * 20


def test_the_time_budget_stops_the_hunt_inside_a_block_of_nothing_but_errors() -> None:
    """One block holding 20,000 error lines (a log flooded by one error): the budget is looked
    at after each batch of events, not only between blocks, so the hunt stops inside it."""
    from opsmedic.loghunt.reading import BATCH_EVENTS

    looks = itertools.count(0, 10)  # each look at the clock: 10 s later
    lines = b"".join(b"ERROR x %d\n" % i for i in range(20_000))
    report = hunt(
        [PiecesSource(lines, len(lines))],
        HuntOptions(time_budget_s=15, chunk_bytes=len(lines) + 1),
        clock=lambda: next(looks),
    )
    assert report.stats.stopped is not None
    assert report.stats.occurrences < 20_000  # it did not finish the block
    assert report.stats.occurrences % BATCH_EVENTS == 0


def test_workers_stopped_by_the_budget_report_the_file_up_to_where_the_first_stopped(
    tmp_path: Path,
) -> None:
    """With no time left every range (2 MB) stops after its first block (a 1 MiB read): the
    report is what one pass would give (a prefix, right line numbers), never later ranges
    after a gap."""
    path = tmp_path / "app.log"
    path.write_text("".join(f"INFO {i}\n" if i % 100 else f"ERROR at {i}\n"
                            for i in range(1, 500_001)))  # fmt: skip
    options = HuntOptions(workers=3, parallel_bytes=1, chunk_bytes=4096, context=0,
                          mode="exact", time_budget_s=0)  # fmt: skip
    report = hunt_paths([str(path)], options, clock=lambda: 0.0)
    numbers = [e.first.line for e in report.events]
    assert [int(e.key.split()[-1]) for e in report.events] == numbers
    assert numbers == list(range(100, 100 * len(numbers) + 1, 100))
    assert report.stats.stopped == (
        f"time budget of 0 s spent in {path}, after line {report.stats.lines_read}"
    )
    assert 0 < report.stats.lines_read < 500_000 // 3


def test_a_range_past_its_max_events_still_gives_the_next_events_lines(
    tmp_path: Path,
) -> None:
    """The second range spends its max_events on four 5-line tracebacks the merge cannot
    show (max_lines 3, one taken by the first event): the one-line event after them is
    shown, as one process shows it."""
    traces = "".join(
        f"ERROR job {name}\nTraceback (most recent call last):\n  File x\n    y()\nE: {name}\n"
        for name in "abcd"
    )
    path = tmp_path / "app.log"
    path.write_text("ERROR first\n" + "INFO filler\n" * 2000 + traces + "ERROR small one\n")
    options = HuntOptions(max_events=4, max_lines=3, context=0)
    one = hunt_paths([str(path)], options)
    two = hunt_paths([str(path)], replace(options, workers=2, parallel_bytes=1))
    assert [e.key for e in one.events] == ["ERROR first", "ERROR small one"]
    assert two.events == one.events
    assert two.stats.unreported_events == one.stats.unreported_events == 4


WINDOWED = """\
2024-05-01T09:59:59Z ERROR too early
2024-05-01T10:00:00Z ERROR inside 1
Traceback (most recent call last):
ValueError: dated by the line above
2024-05-01 12:00:00,500 ERROR inside 2
[01/May/2024:12:30:00 +0200] ERROR inside, as 10:30 UTC
ERROR undated, takes 10:30 UTC from the line above
"""


def test_the_window_keeps_events_whose_time_is_inside_or_unknown(hunt_text: Hunt) -> None:
    report = hunt_text(
        "INFO no time\n" * 25 + WINDOWED,
        context=0,
        since=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        until=datetime(2024, 5, 1, 12, 0, 0, 500_000, tzinfo=UTC),
    )
    assert [e.lines[0].text for e in report.events] == [
        "2024-05-01T10:00:00Z ERROR inside 1",
        "2024-05-01 12:00:00,500 ERROR inside 2",
        "[01/May/2024:12:30:00 +0200] ERROR inside, as 10:30 UTC",
        "ERROR undated, takes 10:30 UTC from the line above",
    ]
    assert report.stats.outside_window == 1
    undated = hunt_text("INFO no time\n" * 25 + "ERROR no time near, kept\n",
                        since=datetime(2024, 5, 1, tzinfo=UTC))  # fmt: skip
    assert [e.count for e in undated.events] == [1]


def test_a_syslog_time_takes_the_window_year(hunt_text: Hunt) -> None:
    text = "Apr 30 23:59:59 host app: ERROR before\nMay  1 00:00:01 host app: ERROR after\n"
    report = hunt_text(text, context=0, since=datetime(2024, 5, 1, tzinfo=UTC))
    assert [e.first.line for e in report.events] == [2]


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"mode": "fuzzy"}, "--mode"),
        ({"pattern": "(unclosed"}, "--pattern"),
        ({"pattern": "ERROR|"}, "--pattern"),
        ({"context": -1}, "--context"),
        ({"max_events": 0}, "--max-events"),
        (
            {"since": datetime(2024, 2, 1, tzinfo=UTC), "until": datetime(2024, 1, 1, tzinfo=UTC)},
            "--since",
        ),
    ],
)
def test_options_that_cannot_work_are_refused_naming_the_option(
    hunt_text: Hunt, options: dict[str, object], names: str
) -> None:
    with pytest.raises(HuntInputError, match=names):
        hunt_text("ERROR x\n", **options)


def test_times_parse_as_iso_or_as_an_age() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_when("15m", "--since", now) == datetime(2024, 5, 1, 11, 45, tzinfo=UTC)
    assert parse_when("2024-05-01T10:00:00+02:00", "--since", now).hour == 8
    assert parse_when("2024-05-01 10:00", "--until", now).tzinfo is UTC
    with pytest.raises(HuntInputError, match="--until 'soon'"):
        parse_when("soon", "--until", now)


def test_the_cli_default_pattern_is_the_hunts() -> None:
    from opsmedic.cli.logs import DEFAULT_PATTERN as CLI_PATTERN

    assert CLI_PATTERN == DEFAULT_PATTERN


def test_keys_a_range_evicted_are_counted_as_one_process_counts_them(tmp_path: Path) -> None:
    """Every line a distinct error and a table of 50 keys: each range evicts most of its
    keys, and the events and occurrences not shown are those one pass counts."""
    path = tmp_path / "app.log"
    path.write_text("".join(f"ERROR request {i:x}-{i * 7:x} failed\n" for i in range(3000)))
    options = HuntOptions(mode="exact", max_events=10, max_keys=50, context=0)
    one = hunt_paths([str(path)], options)
    two = hunt_paths([str(path)], replace(options, workers=2, parallel_bytes=1))
    assert two.events == one.events
    assert one.stats.unreported_events == 2990 == two.stats.unreported_events
    assert one.stats.unreported_occurrences == 2990 == two.stats.unreported_occurrences
    assert two.stats.evicted_keys == one.stats.evicted_keys > 0
