"""The journal as a log: journalctl's JSON made lines (recorded output, in the documented
format of systemd.io/JOURNAL_EXPORT_FORMATS), and the argv journalctl is given.

This machine runs no systemd journal and has no tool to write a journal file, so the
entries come from a stand-in program printing recorded `journalctl -o json` output; the
real journalctl is run where installed, to check that it accepts the argv.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsmedic.errors import HuntInputError
from opsmedic.loghunt import HuntOptions, hunt
from opsmedic.loghunt.journal import MAX_ENTRY_BYTES, JournalSource, entry_line, journal_argv

TRACE = (
    "charge failed\nTraceback (most recent call last):\n"
    '  File "/srv/pay.py", line 3, in charge\nValueError: card 4411\n'
)
ENTRIES = [
    {  # what `journalctl -o json` prints for a line a service wrote to stdout
        "__CURSOR": "s=739ad463348b4ceca5a9e69c95a3c93f;i=4ece7;b=6c7c6013a8e24ae7add7c0e6e8e2e0c2;"
        "m=139f5b2cc1;t=5e5a0e9c9b0c0;x=9fd5ec9d0b3d3c2e",
        "__REALTIME_TIMESTAMP": "1714557600000000",
        "__MONOTONIC_TIMESTAMP": "84284289217",
        "_BOOT_ID": "6c7c6013a8e24ae7add7c0e6e8e2e0c2",
        "PRIORITY": "6",
        "_TRANSPORT": "stdout",
        "_UID": "33",
        "_COMM": "python3",
        "SYSLOG_IDENTIFIER": "pay",
        "_PID": "4242",
        "_SYSTEMD_UNIT": "pay.service",
        "MESSAGE": "INFO started",
    },
    {  # a traceback logged as one entry: one MESSAGE of several lines
        "__REALTIME_TIMESTAMP": "1714557601123456",
        "_PID": "4242",
        "_SYSTEMD_UNIT": "pay.service",
        "PRIORITY": "3",
        "MESSAGE": "ERROR " + TRACE,
    },
    {  # not UTF-8: the value is an array of byte values
        "__REALTIME_TIMESTAMP": "1714557602000000",
        "_PID": "4242",
        "_SYSTEMD_UNIT": "pay.service",
        "MESSAGE": list(b"ERROR bad byte \xff in input"),
    },
    {  # systemd about the unit: logged by PID 1 with UNIT= naming it
        "__REALTIME_TIMESTAMP": "1714561200000000",
        "_PID": "1",
        "_SYSTEMD_UNIT": "init.scope",
        "UNIT": "pay.service",
        "MESSAGE": "pay.service: Main process exited, code=exited, status=1/FAILURE",
    },
    {  # a field given twice, and one over 4096 bytes printed null (no --all)
        "__REALTIME_TIMESTAMP": "1714561201000000",
        "MESSAGE": ["FATAL first value", list(b"second \xfe")],
        "CODE_FILE": None,
    },
]
START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)  # = 1714557600


def test_entries_become_lines_with_time_unit_pid_and_message() -> None:
    assert [entry_line(e, "pay.service") for e in ENTRIES] == [
        b"2024-05-01T10:00:00.000000Z pay.service[4242]: INFO started\n",
        b"2024-05-01T10:00:01.123456Z pay.service[4242]: ERROR " + TRACE.rstrip().encode() + b"\n",
        b"2024-05-01T10:00:02.000000Z pay.service[4242]: ERROR bad byte \xff in input\n",
        b"2024-05-01T11:00:00.000000Z init.scope[1]: pay.service: Main process exited, "
        b"code=exited, status=1/FAILURE\n",
        b"2024-05-01T11:00:01.000000Z pay.service: FATAL first value\nsecond \xfe\n",
    ]


def test_the_argv_is_journalctl_json_for_the_unit_and_the_window_in_epoch_seconds() -> None:
    since, until = START, datetime(2024, 5, 1, 10, 15, 0, 500_000, tzinfo=UTC)
    assert journal_argv("pay.service", since, until) == [
        "journalctl", "--output=json", "--all", "--no-pager", "--unit=pay.service",
        "--since=@1714557600", "--until=@1714558501",
    ]  # fmt: skip
    assert journal_argv("pay", None, None)[-1] == "--unit=pay"


@pytest.mark.parametrize("unit", ["", "-f", "a b", "x\0"])
def test_a_bad_unit_is_refused_naming_the_option(unit: str) -> None:
    with pytest.raises(HuntInputError, match="--journal"):
        journal_argv(unit, None, None)


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in journalctl printing the recorded entries (and a line that is none), and
    the file where it writes the argv it was given."""
    output = tmp_path / "journal.json"
    output.write_text("".join(json.dumps(e) + "\n" for e in ENTRIES) + "-- cursor: s=2\n")
    argv_file = tmp_path / "argv.json"
    program = tmp_path / "journalctl"
    program.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(argv_file)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"sys.stdout.buffer.write(open({str(output)!r}, 'rb').read())\n"
    )
    program.chmod(0o755)
    return program, argv_file


def test_a_hunt_over_the_journal_keeps_tracebacks_whole_and_the_window(
    recorded: tuple[Path, Path],
) -> None:
    program, argv_file = recorded
    until = datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    source = JournalSource("pay.service", START, until, program=str(program))
    try:
        report = hunt([source], HuntOptions(context=0, since=START, until=until))
    finally:
        source.close()
    assert json.loads(argv_file.read_text())[-3:] == [
        "--unit=pay.service", "--since=@1714557600", "--until=@1714559400",
    ]  # fmt: skip
    assert [[(line.kind, line.text) for line in e.lines] for e in report.events] == [
        [
            ("match", "2024-05-01T10:00:01.123456Z pay.service[4242]: ERROR charge failed"),
            ("event", "Traceback (most recent call last):"),
            ("event", '  File "/srv/pay.py", line 3, in charge'),
            ("event", "ValueError: card 4411"),
        ],
        [
            (
                "match",
                "2024-05-01T10:00:02.000000Z pay.service[4242]: ERROR bad byte \ufffd in input",
            )
        ],
    ]
    assert report.events[0].first.source == "journal:pay.service"
    assert report.stats.outside_window == 1  # the FATAL of 11:00
    assert report.stats.notes == [
        "journal:pay.service: 1 line of its output not a journal entry, skipped"
    ]


def test_an_entry_too_long_to_hold_is_skipped_with_a_note(tmp_path: Path) -> None:
    big = {"__REALTIME_TIMESTAMP": "1714557601000000", "MESSAGE": "ERROR " + "x" * (9 << 20)}
    small = {"__REALTIME_TIMESTAMP": "1714557602000000", "MESSAGE": "ERROR small"}
    output = tmp_path / "journal.json"
    output.write_text(json.dumps(big) + "\n" + json.dumps(small) + "\n")
    program = tmp_path / "journalctl"
    program.write_text(f"#!/bin/sh\nexec cat {output}\n")
    program.chmod(0o755)
    source = JournalSource("pay.service", program=str(program))
    try:
        report = hunt([source], HuntOptions(context=0))
    finally:
        source.close()
    assert [e.lines[0].text for e in report.events] == [
        "2024-05-01T10:00:02.000000Z pay.service: ERROR small"
    ]
    assert report.stats.notes == [
        f"journal:pay.service: 1 entry over {MAX_ENTRY_BYTES} bytes skipped"
    ]


@pytest.mark.skipif(shutil.which("journalctl") is None, reason="journalctl is not installed")
def test_the_real_journalctl_accepts_the_argv() -> None:
    """No journal here: journalctl finds no entry, and no complaint about its arguments."""
    source = JournalSource("pay.service", START, datetime(2024, 5, 2, tzinfo=UTC))
    try:
        report = hunt([source], HuntOptions())
    finally:
        source.close()
    assert report.events == ()
    assert not [n for n in report.stats.notes if "exit" in n or "parse" in n.lower()]
