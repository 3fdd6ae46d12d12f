"""The opsmedic access-log format: parsing, tallying per backend, following a live file."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmedic.releases.access_log import (
    LOG_FORMAT,
    MAX_LINE,
    Attempt,
    BackendStats,
    LogFollower,
    MalformedLine,
    Request,
    Traffic,
    parse_line,
    tally,
)

A, B = "127.0.0.1:8001", "127.0.0.1:8002"


def line(at: float, status: int, addrs: str, statuses: str, times: str) -> str:
    return f"{at:.3f}\t{status}\t{addrs}\t{statuses}\t{times}\n"


def test_a_plain_request_has_one_attempt() -> None:
    assert parse_line(line(1.5, 200, A, "200", "0.012")) == Request(
        1.5, 200, (Attempt(A, 200, 0.012),)
    )


def test_a_retried_request_has_an_attempt_per_backend() -> None:
    parsed = parse_line(line(2.0, 200, f"{A}, {B}", "502, 200", "0.001, 0.020"))
    assert parsed.attempts == (Attempt(A, 502, 0.001), Attempt(B, 200, 0.02))
    redirected = parse_line(line(2.0, 200, f"{A} : {B}", "404 : 200", "0.001 : 0.002"))
    assert [a.backend for a in redirected.attempts] == [A, B]


def test_no_answer_and_no_backend() -> None:
    refused = parse_line(line(3.0, 502, A, "-", "-"))
    assert refused.attempts == (Attempt(A, None, None),)
    assert parse_line(line(3.0, 200, "-", "-", "-")).attempts == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("garbage", "1 tab-separated fields, 5 expected"),
        ("1.0\t200\ta\tb", "4 tab-separated fields, 5 expected"),
        ("x\t200\ta\t200\t0.1", "$msec 'x' or $status '200' is not a number"),
        ("nan\t200\ta\t200\t0.1", "$msec 'nan' is not a time"),
        (f"1.0\t200\t{A}, {B}\t200\t0.1", "2 upstream addresses, 1 statuses, 1 times"),
        (f"1.0\t200\t{A}\tOK\t0.1", "upstream status 'OK' is not a number"),
        (f"1.0\t200\t{A}\t200\tsoon", "upstream response time 'soon' is not a number"),
        (f"1.0\t200\t{A}\t200\t-1", "upstream response time '-1' is not a duration"),
    ],
)
def test_malformed_lines_say_which_field(text: str, message: str) -> None:
    with pytest.raises(MalformedLine) as caught:
        parse_line(text)
    assert str(caught.value) == message


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_malformed_never_crashes(text: str) -> None:
    with contextlib.suppress(MalformedLine):
        parse_line(text)


def test_tally_counts_a_retry_against_the_failed_backend_and_for_the_other() -> None:
    requests = [
        parse_line(line(10.0, 200, f"{A}, {B}", "500, 200", "0.001, 0.020")),
        parse_line(line(11.0, 200, B, "200", "0.030")),
        parse_line(line(12.0, 502, A, "-", "-")),
        parse_line(line(20.0, 200, A, "200", "0.010")),  # after the window
    ]
    stats = tally(requests, start=10.0, end=20.0)
    assert (stats[A].requests, stats[A].errors, stats[A].latencies) == (2, 2, [0.001])
    assert (stats[B].requests, stats[B].errors, stats[B].latencies) == (2, 0, [0.02, 0.03])
    assert stats[A].error_ratio == 1.0
    strict = tally(requests, is_error=lambda status: status != 200)
    assert strict[A].errors == 2 and strict[B].errors == 0


def test_backend_stats_summaries() -> None:
    empty = BackendStats()
    assert (empty.error_ratio, empty.p95(), empty.error_ratios(1.0)) == (None, None, [])
    stats = BackendStats(
        requests=4,
        errors=1,
        latencies=[float(i) for i in range(1, 101)],
        times=[0.1, 0.5, 1.2, 3.0],
        failed=[True, False, False, False],
    )
    assert stats.p95() == 95.0
    assert stats.error_ratios(1.0) == [0.5, 0.0, 0.0]


def test_the_follower_starts_at_the_end_and_keeps_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("old line\n")
    follower = LogFollower(log)
    assert follower.read() == []
    with log.open("a") as fh:
        fh.write("first\nsec")
        fh.flush()
        assert follower.read() == ["first"]
        fh.write("ond\n")
    assert follower.read() == ["second"]
    follower.close()


def test_the_follower_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("")
    follower = LogFollower(log)
    old = log.open("a")
    old.write("before\n")
    old.flush()
    log.rename(tmp_path / "access.log.1")  # logrotate's move
    old.write("late in the old file\n")  # nginx writes here until it reopens its logs
    old.flush()
    assert follower.read() == ["before", "late in the old file"]
    log.write_text("")  # logrotate's create
    old.write("still old\n")
    old.flush()
    assert follower.read() == ["still old"]
    old.write("last old\n")
    old.close()
    log.write_text("new\n")  # nginx reopened: the old file is read to its end first
    assert follower.read() == ["last old", "new"]
    with log.open("a") as fh:
        fh.write("newer\n")
    assert follower.read() == ["newer"]
    follower.close()


def test_a_rotation_between_two_reads_keeps_the_order(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("")
    follower = LogFollower(log)
    with log.open("a") as old:
        old.write("one\ntw")
        old.flush()
        assert follower.read() == ["one"]
        old.write("o\n")
        log.rename(tmp_path / "access.log.1")
        old.write("three\n")
    log.write_text("four\n")
    assert follower.read() == ["two", "three"]
    assert follower.read() == ["four"]
    follower.close()


def test_the_follower_survives_truncation_and_a_late_file(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    follower = LogFollower(log)  # not there yet
    assert follower.read() == []
    log.write_text("one\ntwo\n")
    assert follower.read() == ["one", "two"]  # a file created since is new traffic
    with log.open("r+") as fh:
        fh.truncate(0)  # copytruncate
    log.write_text("three\n")
    assert follower.read() == ["three"]
    follower.close()


def test_traffic_counts_malformed_lines_and_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("")
    traffic = Traffic(log, keep_s=5.0)
    with log.open("a") as fh:
        fh.write(line(1.0, 200, A, "200", "0.01"))
        fh.write("not our format\n")
        fh.write("x" * (MAX_LINE + 1) + "\n")
        fh.write(line(2.0, 200, B, "200", "0.01"))
        fh.write(line(9.0, 200, B, "200", "0.01"))
    assert traffic.poll() == 3
    assert traffic.malformed == 2
    assert traffic.last_error == "1 tab-separated fields, 5 expected"
    assert [r.at for r in traffic.requests] == [9.0]  # older than keep_s before the newest
    assert traffic.window(start=0.0)[B].requests == 1
    traffic.follower.close()


def test_an_endless_line_is_dropped_not_kept(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("")
    follower = LogFollower(log)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"y" * (MAX_LINE + 10))
    assert follower.read() == []
    os.write(fd, b"tail\nnext\n")
    os.close(fd)
    assert follower.read() == ["tail", "next"]  # the rest of the dropped line, then the next
    assert follower.malformed == 1
    follower.close()


def test_the_docs_show_the_log_format() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "releases.md").read_text()
    assert f"```nginx\n{LOG_FORMAT}\n" in doc
