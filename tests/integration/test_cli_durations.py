"""Durations on the command line: a plain number is seconds, as everywhere (`--min-age 0`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

OPSMEDIC = [sys.executable, "-m", "opsmedic"]


def opsmedic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    return subprocess.run([*OPSMEDIC, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_archive_min_age_0_takes_a_file_just_written(tmp_path: Path) -> None:
    """`--min-age 0`: no age limit, so a log written a moment ago is archived too."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log.1").write_text("fresh\n" * 100)
    (tmp_path / "opsmedic.yaml").write_text("state_dir: state\n")
    args = ["archive", str(logs), "--include", "*.log*", "--to", "out", "-q"]
    default = opsmedic(*args, "--dry-run", cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert "min_age 300s" in default.stdout  # the default 5m keeps it: the test can tell
    result = opsmedic(*args, "--min-age", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "archived 1 files" in result.stdout
    assert list(logs.iterdir()) == []


def test_a_plain_number_of_seconds_is_a_min_age(tmp_path: Path) -> None:
    """`--min-age 60` is a minute: a file 2 minutes old goes, one just written stays."""
    logs = tmp_path / "logs"
    logs.mkdir()
    old, new = logs / "old.log.1", logs / "new.log.1"
    old.write_text("old\n")
    new.write_text("new\n")
    two_minutes_ago = time.time() - 120
    os.utime(old, (two_minutes_ago, two_minutes_ago))
    (tmp_path / "opsmedic.yaml").write_text("state_dir: state\n")
    result = opsmedic("archive", str(logs), "--include", "*.log*", "--to", "out", "-q",
                      "--min-age", "60", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in logs.iterdir()) == ["new.log.1"]
    bad = opsmedic("archive", str(logs), "--include", "*", "--to", "out", "--min-age", "nan",
                   cwd=tmp_path)  # fmt: skip
    assert bad.returncode == 2 and "not a duration" in bad.stderr
