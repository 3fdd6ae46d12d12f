"""Multi-line events kept whole (Python, Java, Go), context, and events cut at block edges."""

from __future__ import annotations

import pytest
from hunt_helpers import Hunt, PiecesSource, event_lines

from opsmedic.loghunt import HuntOptions, hunt
from opsmedic.loghunt.continuation import opens_record

PYTHON_CHAINED = """\
2024-05-01 10:00:00 INFO start
2024-05-01 10:00:01 ERROR job 7 failed
Traceback (most recent call last):
  File "/srv/app/jobs.py", line 40, in run
    int(x)
ValueError: invalid literal for int() with base 10: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/app/retry.py", line 7, in wrapper
RuntimeError: giving up after 3 attempts
2024-05-01 10:00:02 INFO next
"""

JAVA = """\
2024-05-01 10:00:01 ERROR [exec-1] c.e.OrderService - order failed
java.lang.IllegalStateException: inventory 12 not reserved
\tat com.example.OrderService.place(OrderService.java:120)
\tat com.example.OrderController.post(OrderController.java:57)
Caused by: java.sql.SQLTransientConnectionException: pool - timed out after 3000ms.
\tat com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)
\t... 42 more
2024-05-01 10:00:02 INFO next
"""

GO_PANIC = """\
panic: runtime error: invalid memory address or nil pointer dereference
[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]

goroutine 1 [running]:
main.(*Server).handle(0xc000012345, {0x7b1e20, 0xc0001a2000})
\t/srv/gateway/server.go:88 +0x1d
created by net/http.(*Server).Serve in goroutine 1
\t/usr/local/go/src/net/http/server.go:3285 +0x4b4
exit status 2
"""


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        (PYTHON_CHAINED, 2, 12),
        (JAVA, 1, 7),
        (GO_PANIC, 1, 8),
    ],
)
def test_a_trace_is_one_event_from_its_first_line_to_its_last(
    hunt_text: Hunt, text: str, first: int, last: int
) -> None:
    report = hunt_text(text, context=0)
    (event,) = report.events
    assert [ln.number for ln in event.lines] == list(range(first, last + 1))
    assert event.count == 1


def test_matches_inside_a_trace_are_part_of_it_not_new_events(hunt_text: Hunt) -> None:
    """The Traceback line matches the pattern too; it belongs to the ERROR line above it."""
    report = hunt_text(PYTHON_CHAINED * 3, context=0)
    (event,) = report.events
    assert event.count == 3
    assert report.stats.occurrences == 3


def test_context_comes_before_and_after_the_whole_event(hunt_text: Hunt) -> None:
    report = hunt_text(JAVA, context=2)
    (event,) = report.events
    assert [ln.kind for ln in event.lines] == ["match"] + ["event"] * 6 + ["context"]


def test_an_overlong_event_is_cut_counted_once_and_swallowed_whole(hunt_text: Hunt) -> None:
    """A trace past max_event_lines keeps its first lines; the rest is not a new event even
    where it matches, and the line after it is read as usual."""
    body = "".join(f"  frame {i} ERROR inside\n" for i in range(50))
    text = "ERROR head\n" + body + "ERROR next\n"
    for piece in (7, 64, 10_000):
        report = hunt(
            [PiecesSource(text.encode(), piece)],
            HuntOptions(context=1, max_event_lines=5, chunk_bytes=32),
        )
        assert [(e.first.line, e.cut, len(e.lines)) for e in report.events] == [
            (1, True, 5), (52, False, 2)]  # fmt: skip


def test_events_and_context_survive_every_block_edge() -> None:
    text = ("INFO a\n" * 5 + PYTHON_CHAINED + "INFO b\n" * 3 + JAVA + GO_PANIC) * 2
    whole = hunt([PiecesSource(text.encode(), len(text))], HuntOptions(context=2))
    for piece in (1, 3, 17, 100):
        split = hunt(
            [PiecesSource(text.encode(), piece)], HuntOptions(context=2, chunk_bytes=piece * 2)
        )
        assert split.events == whole.events
    assert [e.count for e in whole.events] == [2, 2, 2]


ROOT_CAUSES = "".join(
    f"""\
2024-05-01T10:00:00Z ERROR db write failed
Traceback (most recent call last):
  File "/srv/db.py", line 3, in write
    cur.execute(sql)
{cause}
2024-05-01T10:00:01Z INFO next
"""
    for cause in (
        'psycopg2.errors.UniqueViolation: duplicate key value violates "users_pkey"',
        "psycopg2.errors.ForeignKeyViolation: insert or update violates foreign key",
        "psycopg2.OperationalError: server closed the connection unexpectedly",
        "KeyboardInterrupt",
    )
)


def test_a_tracebacks_exception_ends_it_whatever_its_name(hunt_text: Hunt) -> None:
    """The first unindented line after a traceback's frames is its root cause: part of the
    event, so tracebacks from the same frame with different exceptions are apart."""
    report = hunt_text(ROOT_CAUSES, context=0, mode="exact")
    assert [e.count for e in report.events] == [1, 1, 1, 1]
    assert [lines[-1].split(":")[0] for lines in event_lines(report)] == [
        "psycopg2.errors.UniqueViolation",
        "psycopg2.errors.ForeignKeyViolation",
        "psycopg2.OperationalError",
        "KeyboardInterrupt",
    ]
    # A Traceback line that is itself the match, with no ERROR line above it.
    alone = hunt_text("Traceback (most recent call last):\n  File x\nnot.Named: y\nINFO\n")
    assert event_lines(alone) == [
        ["Traceback (most recent call last):", "  File x", "not.Named: y"]
    ]
    # A traceback cut short (no exception line): the next record is not taken for one.
    cut_short = hunt_text("Traceback (most recent call last):\n  File x\nERROR next\n")
    assert event_lines(cut_short) == [
        ["Traceback (most recent call last):", "  File x"],
        ["ERROR next"],
    ]
    # Indented lines outside a traceback (a wrapped message) take no next line with them.
    wrapped = hunt_text("ERROR a\n  more of a\nINFO b\n", context=0)
    assert event_lines(wrapped) == [["ERROR a", "  more of a"]]


def test_a_root_cause_is_kept_across_block_edges_and_range_cuts() -> None:
    """Where a block or a cut swallowing an overlong event falls does not change the event;
    no worker's range starts at a line after an indented one (it may be a root cause)."""
    text = ("INFO a\n" + ROOT_CAUSES) * 2
    whole = hunt([PiecesSource(text.encode(), len(text))], HuntOptions(context=1))
    for piece in (1, 3, 17, 100):
        for cut in (2, 500):
            options = HuntOptions(context=1, chunk_bytes=piece * 2, max_event_lines=cut)
            split = hunt([PiecesSource(text.encode(), piece)], options)
            alone = hunt([PiecesSource(text.encode(), len(text))], options)
            assert split.events == alone.events
    assert [e.count for e in whole.events] == [2, 2, 2, 2]
    line = b"  File x\npsycopg2.errors.UniqueViolation: y\n"
    assert not opens_record(line, 9, len(line), 0)
    assert opens_record(b"INFO x\n" + line[9:], 7, len(line) - 2, 0)


def test_a_blank_line_ends_an_event_unless_a_chain_goes_on(hunt_text: Hunt) -> None:
    report = hunt_text("ERROR one\n  detail\n\n  not part of it\nERROR two\n", context=0)
    assert event_lines(report) == [["ERROR one", "  detail"], ["ERROR two"]]


def test_the_last_line_without_a_newline_is_read(hunt_text: Hunt) -> None:
    report = hunt_text("INFO a\nERROR last", context=1)
    assert event_lines(report) == [["ERROR last"]]
    assert report.stats.lines_read == 2


@pytest.mark.parametrize("pattern", ["(?i)error", "(?i)(?x) error | fatal ", "(?i:error)"])
def test_a_pattern_may_start_with_global_flags(hunt_text: Hunt, pattern: str) -> None:
    report = hunt_text("error a\nINFO 0 errors\nError b\nINFO terror\n", pattern=pattern)
    assert [e.first.line for e in report.events] == [1, 3]


def test_crlf_lines_are_shown_without_their_cr(hunt_text: Hunt) -> None:
    report = hunt_text("INFO a\r\nERROR b 12\r\nERROR b 13\r\n", context=1)
    (event,) = report.events
    assert event.count == 2
    assert [ln.text for ln in event.lines] == ["INFO a", "ERROR b 12", "ERROR b 13"]


@pytest.mark.parametrize("mode", ["exact", "masked", "template"])
def test_crlf_and_lf_copies_of_an_event_are_one(hunt_text: Hunt, mode: str) -> None:
    report = hunt_text(b"ERROR x\r\n  at y\r\nERROR x\n  at y\n", mode=mode)
    assert [e.count for e in report.events] == [2]
