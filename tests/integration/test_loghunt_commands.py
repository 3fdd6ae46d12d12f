"""A command's output hunted as a log: real processes, timeouts, an output cap, failures."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from opsmedic.loghunt import HuntOptions, hunt
from opsmedic.loghunt.commands import CommandSource
from processes import all_gone, pids_in, wait_written

TRACEBACK = """
import sys
print("2024-05-01T10:00:00Z INFO start")
print("2024-05-01T10:00:01Z ERROR charge failed")
print("Traceback (most recent call last):")
print('  File "/srv/pay.py", line 3, in charge')
print("ValueError: card 4411")
print("2024-05-01T10:00:02Z INFO done")
print("a warning on stderr", file=sys.stderr)
sys.exit(3)
"""


def _hunt(source: CommandSource, **options: object) -> tuple[list[list[str]], list[str]]:
    try:
        report = hunt([source], HuntOptions(context=0, **options))  # type: ignore[arg-type]
    finally:
        source.close()
    return [[line.text for line in e.lines] for e in report.events], report.stats.notes


def test_printf_output_is_hunted_with_the_command_as_its_source() -> None:
    source = CommandSource(["printf", "%s\\n", "INFO a", "ERROR b 1", "ERROR b 2"], 30, 1 << 20)
    report = hunt([source], HuntOptions(context=0))
    source.close()
    (event,) = report.events
    assert (event.count, event.first.source, event.first.line) == (
        2,
        "printf '%s\\n' 'INFO a' 'ERROR b 1' 'ERROR b 2'",
        2,
    )
    assert report.stats.notes == []
    assert report.stats.bytes_read == len("INFO a\nERROR b 1\nERROR b 2\n")


def test_a_traceback_whole_and_exit_code_and_stderr_in_notes() -> None:
    events, notes = _hunt(CommandSource([sys.executable, "-c", TRACEBACK], 30, 1 << 20, name="pay"))
    assert events == [[
        "2024-05-01T10:00:01Z ERROR charge failed",
        "Traceback (most recent call last):",
        '  File "/srv/pay.py", line 3, in charge',
        "ValueError: card 4411",
    ]]  # fmt: skip
    assert notes == ["pay: exit 3", "pay: stderr: a warning on stderr"]


def test_a_command_past_its_timeout_is_killed_and_what_it_printed_is_hunted(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "print('ERROR before the sleep', flush=True)\n"
        "time.sleep(300)\n"
    )
    events, notes = _hunt(CommandSource([sys.executable, "-c", script], 1, 1 << 20, name="s"))
    assert events == [["ERROR before the sleep"]]
    assert notes == ["s: timed out after 1 s; its process group was killed"]
    assert all_gone(pids_in(pids))  # its child too: the whole group


def test_output_past_max_bytes_is_cut_there_and_the_command_stopped(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        f"import os; open({str(pids)!r}, 'w').write(str(os.getpid()))\n"
        "line = b'ERROR again and again\\n'\n"
        "while True: os.write(1, line * 1000)\n"  # forever: only the cap ends it
    )
    cap = 4545 * len(b"ERROR again and again\n")
    source = CommandSource([sys.executable, "-c", script], 60, cap, name="loop")
    report = hunt([source], HuntOptions(context=0))
    source.close()
    assert report.stats.bytes_read == cap
    (event,) = report.events
    assert event.count == 4545
    assert report.stats.notes == [
        f"loop: more than {cap} bytes of output: the first {cap} hunted, the command stopped there"
    ]
    assert all_gone(pids_in(pids))


def test_a_program_that_cannot_start_is_a_note() -> None:
    events, notes = _hunt(CommandSource(["/nonexistent/tool", "logs"], 30, 1000))
    assert events == []
    assert notes == [
        "/nonexistent/tool logs: cannot start /nonexistent/tool: No such file or directory"
    ]


def test_a_hunt_stopped_early_stops_the_command(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = (
        f"import os, time; open({str(pids)!r}, 'w').write(str(os.getpid()))\n"
        "while True:\n"
        "    print('ERROR slowly', flush=True); time.sleep(0.05)\n"
    )
    source = CommandSource([sys.executable, "-c", script], 300, 1 << 20)
    report = hunt([source], HuntOptions(context=0, time_budget_s=0.5, chunk_bytes=1))
    source.close()
    assert report.stats.stopped is not None
    assert all_gone(pids_in(pids))


def test_an_aborted_command_is_killed_and_its_hunt_ends_with_a_note(tmp_path: Path) -> None:
    """abort() from another thread (a step given up on): the group killed at once, the hunt
    reading it ends, and says why; a command aborted before it started never starts."""
    pids = tmp_path / "pids"
    script = (
        "import os; print('ERROR before', flush=True)\n"
        f"open({str(pids)!r}, 'w').write(str(os.getpid())); os.execvp('sleep', ['sleep', '600'])\n"
    )
    source = CommandSource([sys.executable, "-c", script], 600, 1 << 20, name="s")
    marker = tmp_path / "ran"
    never = CommandSource(["touch", str(marker)], 600, 1000, name="t")
    threading.Thread(target=_abort_once_written, args=(pids, [source, never])).start()
    try:
        report = hunt([source, never], HuntOptions(context=0))
    finally:
        source.close()
        never.close()
    assert [e.lines[0].text for e in report.events] == ["ERROR before"]
    assert report.stats.notes == ["s: killed: the hunt was stopped",
                                  "t: not run: the hunt was stopped first"]  # fmt: skip
    assert all_gone(pids_in(pids))
    assert not marker.exists()


def _abort_once_written(pids: Path, sources: list[CommandSource]) -> None:
    """Once the command runs and the hunt has read its first line."""
    wait_written(pids)
    deadline = time.monotonic() + 30
    while sources[0].position == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    for source in sources:
        source.abort()
