"""`opsmedic archive` by hand: dry-run touches nothing, a run archives, bad options say where."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from cli_process import opsmedic
from opsmedic.runtime import build_registry

SECTIONS = build_registry(load_entry_points=False).settings()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """Three old rotated logs, a fresh live log, a database and a symlink out of the dir."""
    directory = tmp_path / "logs"
    directory.mkdir()
    old = time.time() - 3600
    for n in (1, 2, 3):
        path = directory / f"app.log.{n}"
        path.write_text(f"line {n}\n" * 20_000)
        os.utime(path, (old, old))
    (directory / "app.log").write_text("live\n")
    (directory / "app.db").write_bytes(b"SQLite format 3\0")
    (directory / "passwd.log.9").symlink_to("/etc/passwd")
    (tmp_path / "opsmedic.yaml").write_text("state_dir: state\n")
    return directory


def test_dry_run_lists_what_would_go_and_why_the_rest_stays(logs: Path) -> None:
    before = sorted(p.name for p in logs.iterdir())
    result = opsmedic("archive", str(logs), "--include", "*.log*", "--to", "out", "--dry-run",
                      cwd=logs.parent)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "would archive 3 files" in result.stdout
    assert "app.log.2" in result.stdout
    assert "symlink" in result.stdout and "min_age" in result.stdout
    assert sorted(p.name for p in logs.iterdir()) == before
    assert not (logs.parent / "out").exists()


@pytest.mark.parametrize("quiet", [True, False])
def test_a_run_archives_verifies_and_deletes_only_what_it_archived(logs: Path, quiet: bool) -> None:
    args = ["archive", str(logs), "--include", "*.log*", "--to", "out", "--min-age", "10m"]
    result = opsmedic(*args, *(["--quiet"] if quiet else []), cwd=logs.parent)
    assert result.returncode == 0, result.stderr
    assert "archived 3 files" in result.stdout
    assert sorted(p.name for p in logs.iterdir()) == ["app.db", "app.log", "passwd.log.9"]
    (archive,) = (logs.parent / "out").iterdir()
    assert archive.name.endswith(".tar.zst")
    with (
        archive.open("rb") as raw,
        zstandard.ZstdDecompressor().stream_reader(raw) as plain,
        tarfile.open(fileobj=plain, mode="r|") as tar,
    ):
        names = sorted(Path(m.name).name for m in tar)
    assert names == ["app.log.1", "app.log.2", "app.log.3"]


def test_a_bad_option_is_named_and_nothing_happens(logs: Path) -> None:
    result = opsmedic("archive", str(logs), "--include", "*.log*", "--to", "out",
                      "--format", "rar", cwd=logs.parent)  # fmt: skip
    assert result.returncode == 2
    assert "--format" in result.stderr
    assert len(list(logs.iterdir())) == 6


def test_a_missing_directory_fails_with_its_name(tmp_path: Path) -> None:
    result = opsmedic("archive", str(tmp_path / "nope"), "--include", "*.log", "--to", "out",
                      cwd=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert "nope" in result.stdout


def test_the_progress_bar_knows_its_total_once_files_are_selected(logs: Path) -> None:
    from rich.console import Console

    from opsmedic.actions.archive_logs import Params, archive
    from opsmedic.cli.archive import ArchiveBar
    from opsmedic.config.loader import load_config

    config, _ = load_config(logs.parent / "opsmedic.yaml", SECTIONS, environ={})
    params = Params.model_validate(
        {"dir": str(logs), "include": ["*.log.*"], "to": str(logs.parent / "out")}
    )
    selected = sum((logs / f"app.log.{n}").stat().st_size for n in (1, 2, 3))
    with ArchiveBar(Console(file=io.StringIO(), force_terminal=True, width=120)) as bar:
        (task,) = bar.progress.tasks
        assert task.total is None  # unknown until the files are selected
        run = archive(params, config, "h", time_limit=config.actions.timeout,
                      progress=bar.advance, on_total=bar.set_total)  # fmt: skip
        report = asyncio.run(run)
    assert report.error is None and len(report.archives) == 1
    # Written once and read back once: the bar ends full, so its ETA ran over the right total.
    assert task.total == 2 * selected
    assert task.completed == task.total
