"""Logs that archive_logs moved into an archive are still hunted, member by member."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from action_context import make_action_context
from opsmedic.actions import archive_logs
from opsmedic.archive.formats import Format
from opsmedic.loghunt import HuntOptions, hunt_paths

OLD = time.time() - 3600


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz", "zip"])
async def test_logs_moved_away_by_archive_logs_are_hunted_in_their_archive(
    tmp_path: Path, fmt: Format
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    trace = 'Traceback (most recent call last):\n  File "a.py", line 1\nValueError: x\n'
    for name, text in {
        "app.log.1": f"2026-11-22T10:15:00Z INFO up\n2026-11-22T10:15:01Z ERROR db down 41\n{trace}",
        "app.log.2": f"2026-11-22T10:16:00Z ERROR db down 42\n{trace}2026-11-22T10:16:01Z INFO\n",
    }.items():
        (logs / name).write_text(text)
        os.utime(logs / name, (OLD, OLD))
    ctx = make_action_context("archive_logs", state_dir=str(tmp_path / "state"))
    params = archive_logs.Params.model_validate(
        {"dir": str(logs), "include": ["*.log*"], "to": str(tmp_path / "dest"), "format": fmt}
    )
    outcome = await archive_logs.run(params, ctx)
    assert outcome.ok, outcome.message
    assert list(logs.iterdir()) == []  # the logs are gone from where they were
    (archive,) = (tmp_path / "dest").iterdir()

    report = hunt_paths([str(tmp_path / "dest" / f"*.{fmt}")], HuntOptions(context=1))

    member = str(logs / "app.log.1").lstrip("/")
    assert report.stats.sources == [f"{archive}:{member}", f"{archive}:{member[:-1]}2"]
    (event,) = report.events
    assert (event.count, event.first.source, event.first.line) == (2, f"{archive}:{member}", 2)
    assert event.last.source == f"{archive}:{member[:-1]}2"
    assert [line.text for line in event.lines][-1] == "ValueError: x"
    assert report.stats.notes == []
