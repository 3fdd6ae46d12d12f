"""Command and journal sources run over SSH against a real OpenSSH server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsmedic.config.schema import SSHHost
from opsmedic.loghunt import HuntOptions, HuntReport, hunt
from opsmedic.loghunt.commands import CommandSource, SshCommandSource
from opsmedic.loghunt.journal import JournalSource
from processes import all_gone, pids_in
from services import SSHServer


def host_of(sshd: SSHServer, **changes: Any) -> SSHHost:
    return SSHHost.model_validate(sshd.host_entry(**changes))


def hunted(source: CommandSource | JournalSource, **options: Any) -> HuntReport:
    try:
        return hunt([source], HuntOptions(context=0, **options))
    finally:
        source.close()


def test_a_remote_file_read_with_cat(sshd: SSHServer, shared_dir: Path) -> None:
    log = shared_dir / "app.log"
    log.write_text(  # world-readable: the login user reads it
        'INFO up\nERROR db down 1\nTraceback (most recent call last):\n  File "x.py"\n'
        "KeyError: 'a'\nERROR db down 2\nTraceback (most recent call last):\n  File \"x.py\"\n"
        "KeyError: 'a'\n"
    )
    source = SshCommandSource(host_of(sshd), ["cat", str(log)], 30, 1 << 20, label="box")
    report = hunted(source)
    (event,) = report.events
    assert (event.count, event.first.source, event.first.line, event.last.line) == (
        2, f"box:cat {log}", 2, 6,
    )  # fmt: skip
    assert [line.text for line in event.lines][-1] == "KeyError: 'a'"
    assert report.stats.notes == []
    assert report.stats.bytes_read == log.stat().st_size  # the wrapper's pid line taken out


def test_a_remote_command_failing_says_so_in_notes(sshd: SSHServer) -> None:
    script = "import sys; print('FATAL gone'); print('no such log', file=sys.stderr); sys.exit(2)"
    source = SshCommandSource(host_of(sshd), ["python3", "-c", script], 30, 1000, name="r")
    report = hunted(source)
    assert [e.lines[0].text for e in report.events] == ["FATAL gone"]
    assert report.stats.notes == ["r: exit 2", "r: stderr: no such log"]


def test_a_remote_command_past_its_timeout_has_its_group_killed(
    sshd: SSHServer, shared_dir: Path
) -> None:
    pids = shared_dir / "pids"
    script = (
        "import os, subprocess, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "print('ERROR then silence', flush=True)\n"
        "time.sleep(300)\n"
    )
    source = SshCommandSource(host_of(sshd), ["python3", "-c", script], 2, 1000, name="r")
    report = hunted(source)
    assert [e.lines[0].text for e in report.events] == ["ERROR then silence"]
    assert report.stats.notes == ["r: timed out after 2 s; its process group was killed"]
    assert all_gone(pids_in(pids))


def test_remote_output_past_max_bytes_is_cut_and_the_command_stopped(
    sshd: SSHServer, shared_dir: Path
) -> None:
    pids = shared_dir / "pids"
    script = (
        f"import os; open({str(pids)!r}, 'w').write(str(os.getpid()))\n"
        "while True: os.write(1, b'ERROR flood\\n' * 1000)\n"
    )
    cap = 10_000 * len(b"ERROR flood\n")
    source = SshCommandSource(host_of(sshd), ["python3", "-c", script], 60, cap, name="r")
    report = hunted(source)
    assert report.stats.bytes_read == cap
    assert report.events[0].count == 10_000
    assert report.stats.notes == [
        f"r: more than {cap} bytes of output: the first {cap} hunted, the command stopped there"
    ]
    assert all_gone(pids_in(pids))


def test_an_unknown_host_key_is_refused_in_a_note_never_accepted(
    sshd: SSHServer, shared_dir: Path
) -> None:
    empty = shared_dir / "known_hosts"
    empty.write_text("")
    marker = shared_dir / "ran"
    source = SshCommandSource(
        host_of(sshd, known_hosts=str(empty)), ["touch", str(marker)], 30, 1000, name="r"
    )
    report = hunted(source)
    assert report.events == ()
    (note,) = report.stats.notes
    assert note.startswith("r: ") and "host key not trusted" in note
    assert not marker.exists()


def test_the_journal_over_ssh(sshd: SSHServer, shared_dir: Path) -> None:
    """journalctl stood in for by a program printing one recorded entry (no journal here)."""
    program = shared_dir / "journalctl"
    entry = (
        '{"__REALTIME_TIMESTAMP":"1714557601000000","_PID":"7","_SYSTEMD_UNIT":"pay.service",'
        '"MESSAGE":"ERROR over ssh"}'
    )
    program.write_text(f"#!/bin/sh\necho '{entry}'\n")
    program.chmod(0o755)  # readable and runnable by the login user
    source = JournalSource("pay.service", host=host_of(sshd), label="box", program=str(program))
    report = hunted(source)
    (event,) = report.events
    assert event.first.source == "box:journal:pay.service"
    assert event.lines[0].text == "2024-05-01T10:00:01.000000Z pay.service[7]: ERROR over ssh"
    assert report.stats.notes == []
