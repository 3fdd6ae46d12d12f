"""Every bug of the seed's `grep -C 3 error | nl | sort -u | sort -n` (REFERENCE §4), got right."""

from __future__ import annotations

from hunt_helpers import Hunt, event_lines, shown


def test_it_keeps_events_that_share_a_second_word(hunt_text: Hunt) -> None:
    """sort -u -k2,2 compared only "db" and "cache": three events became two (11 of 200 MB)."""
    report = hunt_text("ERROR db down host=a\nERROR db down host=b\nERROR cache miss\n")
    assert event_lines(report) == [
        ["ERROR db down host=a"],
        ["ERROR db down host=b"],
        ["ERROR cache miss"],
    ]


def test_it_never_takes_another_level_for_a_duplicate(hunt_text: Hunt) -> None:
    """nl -s':' glued the level to the number, so `ERROR x` and `WARN x` were duplicates."""
    report = hunt_text("ERROR x\nWARN x\n", pattern="ERROR|WARN")
    assert [e.count for e in report.events] == [1, 1]
    assert event_lines(report) == [["ERROR x"], ["WARN x"]]


def test_blank_lines_keep_their_place_in_the_context(hunt_text: Hunt) -> None:
    """nl left blank lines unnumbered, and sort put them at the top."""
    report = hunt_text("a\n\nb\nERROR x\nc\n\nd\n", context=3)
    assert shown(report) == [(1, "a"), (2, ""), (3, "b"), (4, "ERROR x"), (5, "c"), (6, ""),
                             (7, "d")]  # fmt: skip


def test_lines_that_look_like_nl_section_markers_keep_the_order(hunt_text: Hunt) -> None:
    """A line `\\:` restarted nl's count at 1 and scrambled the order (1:e1, 1:e3, 2:e2)."""
    text = "ERROR e1\n\\:\nERROR e2\n\\:\\:\nERROR e3\n"
    report = hunt_text(text, context=0, mode="exact")
    assert [(e.first.line, e.lines[0].text) for e in report.events] == [
        (1, "ERROR e1"), (3, "ERROR e2"), (5, "ERROR e3")]  # fmt: skip
    both = hunt_text(text, context=1, mode="exact")
    assert shown(both) == list(enumerate(text.splitlines(), 1))


def test_it_invents_no_separator_lines(hunt_text: Hunt) -> None:
    """grep's `--` between groups became a log line of its own."""
    lines = [f"info {i}" for i in range(30)]
    lines[5], lines[25] = "ERROR first", "ERROR second"
    report = hunt_text("\n".join(lines) + "\n", context=2)
    assert all(text == lines[n - 1] for n, text in shown(report))
    assert "--" not in [text for _, text in shown(report)]


def test_levels_match_as_words_and_in_capitals(hunt_text: Hunt) -> None:
    """Without -i grep missed ERROR; with -i it took `0 errors`, terror.example.com and
    ErrorBoundary for errors."""
    text = (
        "INFO batch done, 0 errors\n"
        "INFO resolved terror.example.com\n"
        "INFO rendered ErrorBoundary\n"
        "INFO error_rate=0.1\n"
        "2024-05-01 ERROR real one\n"
        "FATAL down\n"
        "CRITICAL disk\n"
        "panic: nil map\n"
    )
    report = hunt_text(text, context=0)
    assert [e.lines[0].text for e in report.events] == [
        "2024-05-01 ERROR real one", "FATAL down", "CRITICAL disk", "panic: nil map"]  # fmt: skip


def test_a_long_stack_trace_is_kept_whole_whatever_the_context(hunt_text: Hunt) -> None:
    """-C 3 cut a 20-frame trace and lost the root cause at its end."""
    frames = [f'  File "/srv/app/m{i}.py", line {i}, in f{i}\n    call{i}()' for i in range(20)]
    text = (
        "INFO before\n2024-05-01 ERROR job failed\nTraceback (most recent call last):\n"
        + "\n".join(frames)
        + "\nConnectionRefusedError: [Errno 111] root cause\nINFO after\n"
    )
    report = hunt_text(text, context=1)
    (event,) = event_lines(report)
    assert len(event) == 2 + 40 + 1
    assert event[-1] == "ConnectionRefusedError: [Errno 111] root cause"
    assert [ln.text for ln in report.events[0].lines if ln.kind == "context"] == [
        "INFO before", "INFO after"]  # fmt: skip


def test_duplicates_are_judged_on_bytes_not_on_a_locale(hunt_text: Hunt) -> None:
    """sort -u in a UTF-8 locale compares by collation: lines that collate alike merged."""
    report = hunt_text("ERROR x\u2013y\nERROR x-y\nERROR cafe\u0301\nERROR caf\u00e9\n",
                       mode="exact")  # fmt: skip
    assert len(report.events) == 4


def test_masked_mode_sees_through_timestamps_and_ids(hunt_text: Hunt) -> None:
    """Exact dedup removed only 38 %: timestamps make every line unique. Masked keeps one,
    with its count and first and last sighting."""
    text = "".join(
        f"2024-05-01T10:00:{s:02d}.{s * 7:03d}Z ERROR request {s * 977} from 10.0.0.{s} "
        f"id=3f{s:02x}c0de-aaaa-4bbb-8ccc-{s:012d} failed in {s * 13}ms\n"
        for s in range(1, 40)
    )
    exact = hunt_text(text, mode="exact")
    masked = hunt_text(text, mode="masked")
    assert len(exact.events) == 39
    (event,) = masked.events
    assert event.count == 39
    assert (event.first.line, event.last.line) == (1, 39)
    assert event.first.time is not None and event.first.time.second == 1
    assert event.last.time is not None and event.last.time.second == 39


def test_line_numbers_past_999_stay_right(hunt_text: Hunt) -> None:
    """nl -w3 past 999 only lost its alignment (refuted as a bug): numbers are numbers."""
    lines = [f"info {i}" for i in range(1, 1501)]
    lines[1233] = "ERROR late"
    report = hunt_text("\n".join(lines) + "\n", context=0)
    assert report.events[0].first.line == 1234
