"""`opsmedic logs hunt` as an operator runs it: text, JSON, and bad input named with exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli_process import opsmedic

LOG = """\
2024-05-01T10:00:00Z INFO start
2024-05-01T10:00:01Z ERROR db down host=a
2024-05-01T10:00:02Z ERROR db down host=a
2024-05-01T10:00:03Z ERROR payment 4411 failed
Traceback (most recent call last):
  File "/srv/pay.py", line 3, in charge
ValueError: card 4411
2024-05-01T10:00:04Z INFO done
"""


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text(LOG)
    return path


def test_it_prints_each_event_once_with_its_count_and_lines(log: Path) -> None:
    done = opsmedic("logs", "hunt", str(log), "-C", "1", cwd=log.parent)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"== 2 times, first {log}:2 2024-05-01T10:00:01+00:00 last {log}:3 2024-05-01T10:00:02+00:00"
    )
    assert f"{log}:2: 2024-05-01T10:00:01Z ERROR db down host=a" in lines
    assert f"{log}:7: ValueError: card 4411" in lines
    assert lines[-1].startswith("2 events reported; 3 occurrences; 8 lines")


def test_json_has_the_events_and_the_stats(log: Path) -> None:
    done = opsmedic("logs", "hunt", str(log), "--json", "--mode", "exact", cwd=log.parent)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [e["count"] for e in report["events"]] == [1, 1, 1]
    assert report["events"][2]["lines"][-1] == {
        "source": str(log), "line": 8, "kind": "context", "text": "2024-05-01T10:00:04Z INFO done"}  # fmt: skip
    assert report["stats"]["occurrences"] == 3
    assert report["options"]["mode"] == "exact"


def test_the_window_options_take_times_and_ages(log: Path) -> None:
    done = opsmedic("logs", "hunt", str(log), "--since", "2024-05-01T10:00:03Z", "--json",
                    cwd=log.parent)  # fmt: skip
    assert [e["first"]["line"] for e in json.loads(done.stdout)["events"]] == [4]
    done = opsmedic("logs", "hunt", str(log), "--since", "15m", "--json", cwd=log.parent)
    assert json.loads(done.stdout)["events"] == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["missing.log"], "missing.log: no such file"),
        (["*.nothing"], "*.nothing: no file matches"),
        (["app.log", "--pattern", "(x"], "--pattern '(x'"),
        (["app.log", "--since", "yesterday"], "--since 'yesterday'"),
        (["app.log", "--since", "1000000d"], "--since '1000000d'"),
        (["app.log", "--until", "99999999999d"], "--until '99999999999d'"),
        (["app.log", "--mode", "fuzzy"], "--mode 'fuzzy'"),
        (["app.log", "--context", "-1"], "--context -1"),
    ],
)
def test_bad_input_exits_2_naming_the_option_or_path(
    log: Path, args: list[str], named: str
) -> None:
    done = opsmedic("logs", "hunt", *args, cwd=log.parent)
    assert done.returncode == 2
    assert named in done.stderr
    assert done.stdout == ""


def test_a_fifo_is_refused_by_name_and_skipped_in_a_glob_never_waited_on(log: Path) -> None:
    """Opening a FIFO for reading would wait for a writer for ever (the helper's timeout
    fails the test if it does)."""
    os.mkfifo(log.parent / "pipe.log")
    named = opsmedic("logs", "hunt", "pipe.log", cwd=log.parent)
    assert named.returncode == 2
    assert "pipe.log: a FIFO (named pipe), not a regular file" in named.stderr
    globbed = opsmedic("logs", "hunt", "*.log", "--json", cwd=log.parent)
    assert globbed.returncode == 0, globbed.stderr
    report = json.loads(globbed.stdout)
    assert report["stats"]["notes"] == [
        "pipe.log: a FIFO (named pipe), not a regular file, skipped"
    ]
    assert report["stats"]["sources"] == ["app.log"]


def test_one_process_by_default_more_when_asked(log: Path) -> None:
    """One: the same output and memory bound whatever the machine's load (two processes
    each hold a table of keys)."""
    default = opsmedic("logs", "hunt", str(log), "--json", cwd=log.parent)
    given = opsmedic("logs", "hunt", str(log), "--json", "--workers", "3", cwd=log.parent)
    assert json.loads(default.stdout)["options"]["workers"] == 1
    assert json.loads(given.stdout)["options"]["workers"] == 3
