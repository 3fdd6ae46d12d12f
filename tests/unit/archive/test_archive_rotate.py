"""Rotating a live log with a real writer: rename + reopen loses nothing, copytruncate says lossy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from opsmedic.archive.rotate import RotateParams, RotateResult, rotate
from processes import all_gone, pids_in

NOW = datetime(2026, 11, 22, 10, 15, 0, tzinfo=UTC)
SUFFIX = "20261122T101500Z"

# Appends numbered lines (O_APPEND, one write each); SIGUSR1 reopens the path, SIGTERM stops.
WRITER = """
import signal, sys, time
path, flags = sys.argv[1], {"reopen": False, "stop": False}
signal.signal(signal.SIGUSR1, lambda *_: flags.update(reopen=True))
signal.signal(signal.SIGTERM, lambda *_: flags.update(stop=True))
log, n = open(path, "a", buffering=1), 0
while not flags["stop"]:
    if flags["reopen"]:
        flags["reopen"] = False
        log.close()
        log = open(path, "a", buffering=1)
        print("reopened", flush=True)
    log.write(f"{n}\\n")
    n += 1
    if n == 1:
        print("ready", flush=True)
    time.sleep(0.001)
log.close()
print(f"stopped {n}", flush=True)
"""


class Writer:
    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
        )
        assert self.next_line() == "ready"

    def next_line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def stop(self) -> int:
        """SIGTERM; the number of lines it wrote in all."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate()
        return int(out.split()[-1])


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Writer]:
    w = Writer(tmp_path / "app.log")
    yield w
    if w.proc.poll() is None:
        w.proc.kill()
        w.proc.communicate()


def numbers(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().splitlines()]


def params(**raw: Any) -> RotateParams:
    return RotateParams.model_validate({"files": ["app.log"], **raw})


def test_rename_then_reopen_loses_no_line(tmp_path: Path, writer: Writer) -> None:
    result = rotate(tmp_path, params(reopen=["kill", "-USR1", str(writer.proc.pid)]), NOW)

    rotated = tmp_path / f"app.log.{SUFFIX}"
    assert result == RotateResult([rotated], lossy=False, messages=[])
    assert writer.next_line() == "reopened"
    total = writer.stop()
    old, new = numbers(rotated), numbers(tmp_path / "app.log")
    assert old and new
    assert old + new == list(range(total))


def test_copytruncate_copies_truncates_and_says_it_is_lossy(tmp_path: Path, writer: Writer) -> None:
    result = rotate(tmp_path, params(mode="copytruncate"), NOW)

    rotated = tmp_path / f"app.log.{SUFFIX}"
    assert result.rotated == [rotated]
    assert result.lossy
    assert result.messages == [
        f"copytruncate (app.log.{SUFFIX}): lines written between the copy and the truncate "
        "are lost; mode rename with reopen loses none"
    ]
    total = writer.stop()
    old, new = numbers(rotated), numbers(tmp_path / "app.log")  # O_APPEND: no NUL bytes
    assert old == list(range(len(old)))
    assert new == list(range(total - len(new), total))
    assert rotated.stat().st_mode == (tmp_path / "app.log").stat().st_mode


def test_rename_without_reopen_names_the_process_still_writing(
    tmp_path: Path, writer: Writer
) -> None:
    result = rotate(tmp_path, params(), NOW)

    assert result.rotated == [tmp_path / f"app.log.{SUFFIX}"]
    assert result.messages == [
        f"app.log.{SUFFIX} still open for writing by pid {writer.proc.pid} "
        f"({Path(sys.executable).name[:15]}); without reopen the writer stays on the renamed "
        "file"
    ]


def test_a_failing_reopen_says_the_writer_may_still_hold_the_file(
    tmp_path: Path, writer: Writer
) -> None:
    result = rotate(tmp_path, params(reopen=["sh", "-c", "echo no such pid >&2; exit 3"]), NOW)

    assert result.rotated == [tmp_path / f"app.log.{SUFFIX}"]
    assert result.messages == [
        "reopen command `sh -c echo no such pid >&2; exit 3` failed (exit 3): no such pid; "
        f"the writer may still hold app.log.{SUFFIX}"
    ]


def test_a_reopen_command_that_cannot_start_is_reported(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("1\n")
    result = rotate(tmp_path, params(reopen=[str(tmp_path / "missing-program")]), NOW)
    assert result.rotated == [tmp_path / f"app.log.{SUFFIX}"]
    assert "could not start: No such file or directory" in result.messages[0]


def test_a_hanging_reopen_is_killed_with_its_children(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("1\n")
    pids = tmp_path / "pids"
    hang = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(60)\n"
    )
    result = rotate(tmp_path, params(reopen=[sys.executable, "-c", hang], reopen_timeout=0.5), NOW)

    assert "did not finish within 0.5 s and was killed" in result.messages[0]
    assert all_gone(pids_in(pids))


def test_it_never_rotates_over_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("live\n")
    (tmp_path / f"app.log.{SUFFIX}").write_text("earlier\n")
    for mode in ("rename", "copytruncate"):
        result = rotate(tmp_path, params(mode=mode), NOW)
        assert result == RotateResult(
            [],
            False,
            [f"{tmp_path}/app.log.{SUFFIX} exists already; {tmp_path}/app.log not rotated"],
        )
        assert (tmp_path / "app.log").read_text() == "live\n"
        assert (tmp_path / f"app.log.{SUFFIX}").read_text() == "earlier\n"


def test_symlinks_other_kinds_missing_and_empty_logs_are_left_alone(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.write_text("not ours\n")
    (tmp_path / "link.log").symlink_to(outside)
    os.mkfifo(tmp_path / "fifo.log")
    (tmp_path / "empty.log").write_text("")
    names = ["link.log", "fifo.log", "missing.log", "empty.log"]

    result = rotate(tmp_path, RotateParams(files=names), NOW)

    assert result == RotateResult(
        [],
        False,
        [
            f"{tmp_path}/link.log: a symlink (never followed); not rotated",
            f"{tmp_path}/fifo.log: not a regular file; not rotated",
            f"{tmp_path}/missing.log: not found; not rotated",
        ],
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*names[:2], "empty.log", "elsewhere"]
    )
    assert outside.read_text() == "not ours\n"


def test_the_suffix_is_utc_and_the_time_must_say_its_zone(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("1\n")
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    assert rotate(tmp_path, params(), local).rotated == [tmp_path / f"app.log.{SUFFIX}"]
    with pytest.raises(ValueError, match="timezone-aware"):
        rotate(tmp_path, params(), NOW.replace(tzinfo=None))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"files": []}, "at least 1 item"),
        ({"files": ["../etc/passwd"]}, "item 0 '../etc/passwd' is not a file name"),
        ({"files": ["a.log", "sub/b.log"]}, "item 1 'sub/b.log' is not a file name"),
        ({"files": [".."]}, "is not a file name"),
        ({"files": [""]}, "is not a file name"),
        ({"files": ["a.log"], "reopen": []}, "at least 1 item"),
        ({"files": ["a.log"], "reopen": [""]}, "the program"),
        ({"files": ["a.log"], "reopen": ["kill", "\0"]}, "NUL byte"),
        ({"files": ["a.log"], "mode": "copytruncate", "reopen": ["x"]}, "reopen is for mode"),
        ({"files": ["a.log"], "mode": "move"}, "'rename' or 'copytruncate'"),
        ({"files": ["a.log"], "reopen_timeout": 0}, "greater than 0"),
        ({"files": ["a.log"], "compress": True}, "Extra inputs are not permitted"),
    ],
)
def test_bad_params_are_refused_with_the_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RotateParams.model_validate(raw)
