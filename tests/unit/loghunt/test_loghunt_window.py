"""The time window: which timestamp is a line's, the year of one without it, absurd values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hunt_helpers import Hunt, PiecesSource

from opsmedic.errors import HuntInputError
from opsmedic.loghunt import HuntOptions, hunt
from opsmedic.loghunt.timestamps import line_time, near, parse_when

MAY = near(datetime(2024, 5, 1, tzinfo=UTC), None, datetime(2030, 1, 1, tzinfo=UTC))
T = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "when"),
    [
        (b"2024-05-01T10:30:00Z INFO renewing", T),
        (b"2024-05-01 12:30:00,000+02:00 ERROR x", T),
        (b"ERROR 2024-05-01T10:30:00Z x", T),
        (b"[ERROR] 2024-05-01 10:30:00 x", T),
        (b"<13>1 2024-05-01T10:30:00Z host app - - x", T),
        (b'time="2024-05-01T10:30:00Z" level=error msg=x', T),
        (b'{"ts":"2024-05-01T10:30:00Z","msg":"x"}', T),
        (b'10.0.0.1 - bob [01/May/2024:12:30:00 +0200] "GET / HTTP/1.1" 500', T),
        (b"May  1 10:30:00 host app: ERROR x", T),
        (b"2024/05/01 10:30:00 [error] 12#0: x", T),  # Go's log, nginx's error log
        (b"E0501 10:30:00.000000    1 main.go:12] x", T),  # klog
        (b"1714559400 ERROR x", T),  # epoch seconds
        (b"ts=1714559400.5 level=error", T.replace(microsecond=500_000)),
        # A timestamp in the message is not the line's time.
        (b"ERROR cert expired at 2023-01-01T00:00:00Z", None),
        (b"ERROR job 17 failed at May  1 10:30:00", None),
        (b"Traceback (most recent call last): 2024-05-01T10:30:00Z", None),
        (b"ERROR request 1714559400 failed", None),
        (b"2024-13-01T10:30:00Z ERROR not a month", None),
    ],
)
def test_the_time_of_a_line_is_the_timestamp_at_its_start(line: bytes, when: datetime) -> None:
    assert line_time(line, MAY) == when


def test_a_timestamp_in_the_message_does_not_date_the_line(hunt_text: Hunt) -> None:
    text = "2024-05-01T10:30:00Z INFO renewing\nERROR cert expired at 2023-01-01T00:00:00Z\n"
    report = hunt_text(text, context=0, since=datetime(2024, 5, 1, 10, tzinfo=UTC))
    assert [e.first.line for e in report.events] == [2]
    assert report.stats.outside_window == 0


def test_a_yearless_date_takes_the_year_nearest_the_window(hunt_text: Hunt) -> None:
    text = (
        "Dec 31 23:40:00 h a: ERROR before\n"
        "Dec 31 23:55:00 h a: ERROR y\n"
        "Jan  1 00:05:00 h a: ERROR z\n"
        "Jan  1 00:20:00 h a: ERROR after\n"
    )
    report = hunt_text(
        text,
        context=0,
        since=datetime(2024, 12, 31, 23, 50, tzinfo=UTC),
        until=datetime(2025, 1, 1, 0, 10, tzinfo=UTC),
    )
    assert [(e.first.line, e.first.time) for e in report.events] == [
        (2, datetime(2024, 12, 31, 23, 55, tzinfo=UTC)),
        (3, datetime(2025, 1, 1, 0, 5, tzinfo=UTC)),
    ]
    assert report.stats.outside_window == 2
    # A window of its own New Year: the same, placed from --since alone or --until alone.
    since_only = hunt_text(text, context=0, since=datetime(2024, 12, 31, 23, 50, tzinfo=UTC))
    assert [e.first.line for e in since_only.events] == [2, 3, 4]
    until_only = hunt_text(text, context=0, until=datetime(2025, 1, 1, 0, 10, tzinfo=UTC))
    assert [e.first.line for e in until_only.events] == [1, 2, 3]


def test_feb_29_without_a_year_is_placed_in_a_leap_year() -> None:
    around = near(datetime(2025, 3, 1, tzinfo=UTC), None, datetime(2030, 1, 1, tzinfo=UTC))
    assert line_time(b"Feb 29 10:00:00 h a: x", around) == datetime(2024, 2, 29, 10, tzinfo=UTC)


@pytest.mark.parametrize("value", ["1000000d", "99999999999d", "99999999999999999999s"])
def test_an_age_too_old_for_a_date_is_refused_naming_the_option(value: str) -> None:
    with pytest.raises(HuntInputError, match=f"--since '{value}'"):
        parse_when(value, "--since", datetime(2024, 5, 1, tzinfo=UTC))


@pytest.mark.parametrize("context", [0, 3])
def test_an_undated_line_takes_the_time_above_it_across_a_block_edge(context: int) -> None:
    before = b"2024-05-01T09:00:00Z INFO filler\n" * 30 + b"INFO undated\n" * 3
    data = before + b"ERROR no time\n"
    window = datetime(2024, 5, 1, 10, tzinfo=UTC)
    for piece in (len(before), len(data)):  # a block ends just before the ERROR line, or not
        report = hunt(
            [PiecesSource(data, piece)],
            HuntOptions(context=context, chunk_bytes=len(before), since=window),
        )
        assert (report.events, report.stats.outside_window) == ((), 1)
