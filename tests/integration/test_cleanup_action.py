"""The cleanup action on real files: roots, protection, open files, races, leash, space freed."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import ValidationError

from action_context import execute_rule, make_action_context
from opsmedic.actions import cleanup
from opsmedic.actions.cleanup_settings import CleanupConfig
from opsmedic.archive.pipeline import Control
from opsmedic.archive.sweep import Guard, delete
from opsmedic.config.located import Located
from opsmedic.config.sections import validate_sections
from opsmedic.model import Event, Outcome, RunState
from opsmedic.runtime import plugin_sections
from processes import file_holders
from tmpfs import bind_mount, tmpfs

OLD = time.time() - 7200
PAGE = 4096


def put(path: Path, size: int = 10 * PAGE, mtime: float = OLD, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"t" * size)
    path.chmod(mode)
    os.utime(path, (mtime, mtime))
    return path


def names(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if not p.is_dir())


async def clean(root: Path, dry_run: bool = False, config: dict[str, Any] | None = None,
                **params: Any) -> Outcome:  # fmt: skip
    params.setdefault("dir", str(root / "tmp"))
    params.setdefault("include", ["*"])
    ctx = make_action_context(
        "cleanup", dry_run=dry_run, cleanup=config or {"roots": [str(root)]},
        state_dir=str(root / "state"),
    )  # fmt: skip
    return await cleanup.run(cleanup.Params.model_validate(params), ctx)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of our own, so the free space measured moves only with our deletions."""
    with tmpfs(tmp_path, "size=1m") as mnt:
        yield mnt


@pytest.fixture
def holder() -> Iterator[Callable[[Path, str], subprocess.Popen[str]]]:
    with file_holders() as start:
        yield start


async def test_leashed_by_default_it_only_says_what_it_would_delete(root: Path) -> None:
    put(root / "tmp/a.tmp")
    put(root / "tmp/core.1234")
    outcome = await clean(root)
    assert outcome.ok, outcome.message
    assert outcome.message == ("leashed: would delete 2 files (0.1 MB) — set enforce: true to act")
    assert outcome.details["would_delete"] == [str(root / "tmp/a.tmp"), str(root / "tmp/core.1234")]
    assert outcome.details["would_delete_bytes"] == 20 * PAGE
    assert names(root / "tmp") == ["a.tmp", "core.1234"]
    dry = await clean(root, dry_run=True, enforce=True)
    assert dry.message.startswith("dry-run: would delete 2 files") and dry.ok
    assert names(root / "tmp") == ["a.tmp", "core.1234"]


async def test_enforced_it_deletes_and_reports_the_space_really_freed(root: Path) -> None:
    put(root / "tmp/a.tmp")
    put(root / "tmp/sub/b.tmp", 5 * PAGE)
    put(root / "tmp/young.tmp", mtime=time.time())
    outcome = await clean(root, enforce=True, recursive=True, include=["*.tmp", "sub/*.tmp"])
    assert outcome.ok, outcome.message
    assert names(root / "tmp") == ["young.tmp"]
    assert outcome.details["bytes_deleted"] == 15 * PAGE
    assert outcome.details["bytes_freed"] == 15 * PAGE  # statvfs before and after, on our tmpfs
    assert outcome.message == "deleted 2 files (0.1 MB); freed 0.1 MB; 1 skipped"
    (skip,) = outcome.details["files_skipped"]
    assert skip["path"] == str(root / "tmp/young.tmp") and "min_age 3600s" in skip["reason"]


async def test_protected_files_are_never_touched(root: Path) -> None:
    """Built-in (databases, executables, a PostgreSQL data dir, state_dir) and configured."""
    keep = [
        put(root / "tmp/app.db"),
        put(root / "tmp/app.sqlite-wal"),
        put(root / "tmp/0001.WAL"),
        put(root / "tmp/tool", mode=0o755),
        put(root / "tmp/pg/base/1/1259"),
        put(root / "tmp/pg/PG_VERSION"),
        put(root / "tmp/mine.keep"),
        put(root / "tmp/reports/r.tmp"),
    ]
    put(root / "tmp/gone.tmp")
    config = {"roots": [str(root)], "protected": ["*.keep", f"{root}/tmp/reports"]}
    outcome = await clean(root, config=config, enforce=True, recursive=True, include=["**"])
    assert outcome.ok, outcome.message
    assert all(p.exists() for p in keep)
    assert not (root / "tmp/gone.tmp").exists()
    reasons = {s["path"]: s["reason"] for s in outcome.details["files_skipped"]}
    assert reasons[str(root / "tmp/app.db")].endswith("(*.db, built in)")
    assert reasons[str(root / "tmp/0001.WAL")].endswith("(*.wal, built in)")
    assert reasons[str(root / "tmp/tool")] == "protected: executable (built in)"
    assert reasons[str(root / "tmp/pg/base/1/1259")] == (
        f"protected: inside a database data directory ({root}/tmp/pg/PG_VERSION, built in)"
    )
    assert reasons[str(root / "tmp/mine.keep")] == "protected: *.keep (cleanup.protected)"
    assert reasons[str(root / "tmp/reports/r.tmp")].endswith("(cleanup.protected)")


async def test_opsmedic_state_dir_is_protected(root: Path) -> None:
    put(root / "state/intents/x.json")
    outcome = await clean(root, dir=str(root / "state"), enforce=True, recursive=True,
                          include=["**"])  # fmt: skip
    assert outcome.details["files_deleted"] == 0
    assert "opsmedic's state_dir" in outcome.details["files_skipped"][0]["reason"]


async def test_symlinks_are_never_followed_nor_deleted_as_their_target(root: Path) -> None:
    outside = put(root / "elsewhere/precious.tmp")
    (root / "tmp").mkdir()
    (root / "tmp/link.tmp").symlink_to(outside)
    (root / "tmp/dirlink").symlink_to(root / "elsewhere")
    outcome = await clean(root, enforce=True, recursive=True, include=["*", "*/*"])
    assert outside.exists() and (root / "tmp/link.tmp").is_symlink()
    reasons = {s["path"]: s["reason"] for s in outcome.details["files_skipped"]}
    assert reasons[str(root / "tmp/link.tmp")] == "symlink (never followed)"


@pytest.mark.parametrize(
    ("config", "directory", "error"),
    [
        ({"roots": []}, "tmp", "no cleanup.roots configured"),
        ({"roots": ["{root}/tmp/inner"]}, "tmp", "outside cleanup.roots"),
        ({"roots": ["{root}/tmp"]}, "tmp/escape", "outside cleanup.roots"),  # a link to ../
        ({"roots": ["{root}/tmp"]}, "tmp/etc", "in /etc: never cleaned"),  # a link to /etc
        ({"roots": ["{root}/rootlink"]}, "rootlink", "in /usr: never cleaned"),
    ],
)
async def test_a_directory_outside_the_roots_is_refused_before_anything_is_read(
    root: Path, config: dict[str, Any], directory: str, error: str
) -> None:
    put(root / "tmp/a.tmp")
    put(root / "victim.tmp")
    (root / "tmp/escape").symlink_to(root)
    (root / "tmp/etc").symlink_to("/etc")
    (root / "rootlink").symlink_to("/usr")  # a root the operator made a link to /usr
    config = {"roots": [r.format(root=root) for r in config["roots"]]}
    outcome = await clean(root, config=config, dir=str(root / directory), enforce=True)
    assert not outcome.ok and outcome.message.startswith("refused: ")
    assert error in outcome.message
    assert (root / "victim.tmp").exists() and (root / "tmp/a.tmp").exists()


async def test_a_file_open_for_writing_is_skipped_with_its_writer(
    root: Path, holder: Callable[[Path, str], subprocess.Popen[str]]
) -> None:
    live = put(root / "tmp/live.tmp")
    read = put(root / "tmp/read.tmp")
    writer, reader = holder(live, "a"), holder(read, "r")
    outcome = await clean(root, enforce=True)
    assert outcome.ok, outcome.message
    assert live.exists() and not read.exists()
    (skip,) = outcome.details["files_skipped"]
    assert skip["reason"].startswith(f"open for writing by pid {writer.pid} (python")
    (held,) = outcome.details["held_open"]
    assert (held["path"], held["pid"]) == (str(read), reader.pid)
    assert outcome.details["bytes_freed"] == 0  # the reader keeps the blocks
    assert f"still open by pid {reader.pid}" in outcome.message


async def test_max_files_takes_the_oldest_first(root: Path) -> None:
    for i in range(5):
        put(root / f"tmp/{i}.tmp", PAGE, mtime=OLD - i)
    outcome = await clean(root, enforce=True, max_files=2)
    assert names(root / "tmp") == ["0.tmp", "1.tmp", "2.tmp"]
    assert [s["reason"] for s in outcome.details["files_skipped"]] == [
        "over max_files (2) this run"
    ] * 3


def _planned(root: Path) -> cleanup.Report:
    params = cleanup.Params(dir=[str(root / "tmp")], include=["*", "d/*"], recursive=True,
                            enforce=True)  # fmt: skip
    report = cleanup.confined(params, CleanupConfig(roots=[str(root)]), root)
    cleanup.plan(report, params, Guard([], root / "state"), time.time(), ample())
    return report


def ample() -> Control:
    return Control(time.monotonic() + 3600)


def test_a_file_replaced_by_a_symlink_after_selection_is_left(root: Path) -> None:
    target = put(root / "precious.tmp")
    victim = put(root / "tmp/a.tmp")
    grown = put(root / "tmp/b.tmp")
    report = _planned(root)
    assert len(report.selection.candidates) == 2
    victim.unlink()
    victim.symlink_to(target)
    with grown.open("ab") as f:
        f.write(b"more")
    cleanup.sweep(report, ample())
    assert report.sweep.deleted == []
    assert {s.reason for s in report.sweep.kept} == {
        "changed since selected: now a symlink",
        "changed since selected (another file, size or mtime)",
    }
    assert target.exists() and victim.is_symlink() and grown.exists()


def test_a_directory_replaced_by_a_symlink_after_selection_is_not_entered(root: Path) -> None:
    put(root / "tmp/d/a.tmp")
    twin = put(root / "elsewhere/a.tmp")
    report = _planned(root)
    (candidate,) = report.selection.candidates
    shutil.move(root / "tmp/d", root / "moved")
    (root / "tmp/d").symlink_to(root / "elsewhere")
    os.utime(twin, ns=(candidate.identity.mtime_ns, candidate.identity.mtime_ns))
    cleanup.sweep(report, ample())
    assert report.sweep.deleted == [] and twin.exists()
    (kept,) = report.sweep.kept
    assert (
        kept.reason == "changed since selected: its directory is now a symlink or not a directory"
    )


@pytest.mark.parametrize("label", ["../victim", "..", "link", "link/x", "a/../../victim"])
async def test_a_hostile_label_in_a_templated_dir_fails_before_anything_is_deleted(
    tmp_path: Path, label: str
) -> None:
    for d in ("tmp/app", "victim"):
        put(tmp_path / d / "a.tmp")
    (tmp_path / "tmp/link").symlink_to(tmp_path / "victim")
    (tmp_path / "rules.yaml").write_text(
        "- name: clean-app\n  when: {source: disk}\n  do:\n    - cleanup:\n"
        f"        dir: '{tmp_path}/tmp/{{{{ event.labels.app }}}}'\n"
        "        include: ['*']\n        enforce: true\n"
    )
    settings = {"cleanup": CleanupConfig(roots=[str(tmp_path / "tmp")])}
    event = Event(source="disk", labels={"app": label})
    run = await execute_rule(tmp_path / "rules.yaml", event, tmp_path / "state", settings)
    assert run.state is RunState.FAILED
    assert run.steps[0].message.startswith("bad parameters"), run.steps[0].message
    assert (tmp_path / "victim/a.tmp").exists() and (tmp_path / "tmp/app/a.tmp").exists()
    good = await execute_rule(tmp_path / "rules.yaml", Event(source="disk", labels={"app": "app"}),
                              tmp_path / "state", settings)  # fmt: skip
    assert good.state is RunState.SUCCEEDED, good.steps[0].message
    assert not (tmp_path / "tmp/app/a.tmp").exists() and (tmp_path / "victim/a.tmp").exists()


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ({"roots": ["/"]}, "roots[0] '/' is, holds or lies inside /"),
        ({"roots": ["/var"]}, "holds or lies inside /var/lib/mysql"),
        ({"roots": ["/etc/app"]}, "lies inside /etc"),
        ({"roots": ["tmp"]}, "roots[0] 'tmp' is not an absolute path"),
        ({"roots": ["/srv/../etc"]}, "has a '..' segment"),
        ({"protected": [" "]}, "protected[0]: Value error, empty"),
        ({"protected": ["keep/x"]}, "protected[0]: Value error, 'keep/x' holds a '/' but is not"),
        ({"protected": ["/srv/../etc"]}, "protected[0]: Value error, '/srv/../etc' has a '..'"),
        ({"roots": ["/srv/tmp"], "rootz": []}, "rootz"),
    ],
)
def test_a_bad_cleanup_section_is_an_error_naming_where(
    section: dict[str, Any], error: str
) -> None:
    data = {"cleanup": section}
    _, problems = validate_sections(data, Located("opsmedic.yaml", data), plugin_sections(False))
    assert problems and error in str(problems[0]), problems


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"include": ["*"]}, "dir"),
        ({"dir": "/srv/tmp", "include": []}, "include"),
        ({"dir": "/srv/tmp", "include": ["*"], "max_files": 0}, "max_files"),
        ({"dir": "/srv/tmp", "include": ["*"], "min_age": "soon"}, "min_age"),
        ({"dir": "/srv/tmp", "include": ["*"], "force": True}, "force"),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        cleanup.Params.model_validate(params)


@pytest.mark.parametrize("same_fs", [True, False], ids=["bind-same-fs", "other-fs"])
async def test_a_mount_point_inside_a_root_is_never_entered(
    root: Path, tmp_path: Path, same_fs: bool
) -> None:
    # A bind mount of the same tmpfs has the same st_dev: only the mount table tells.
    elsewhere = root / "P" if same_fs else tmp_path.parent / f"{tmp_path.name}-P"
    precious = put(elsewhere / "important.conf")
    put(root / "tmp/a.tmp")
    try:
        with bind_mount(elsewhere, root / "tmp/mnt"):
            outcome = await clean(root, recursive=True, enforce=True)
            assert outcome.ok, outcome.message
            assert outcome.details["deleted"] == [str(root / "tmp/a.tmp")]
            assert {"path": str(root / "tmp/mnt"), "reason": (
                "a mount point (another filesystem or a bind mount): never entered or taken"
            )} in outcome.details["files_skipped"]  # fmt: skip
        assert precious.exists()
    finally:
        if not same_fs:
            shutil.rmtree(elsewhere)


def test_deleting_stops_between_files_once_told_and_counts_what_it_did(root: Path) -> None:
    for i in range(5):
        put(root / f"tmp/{i}.tmp", PAGE)
    candidates = _planned(root).selection.candidates
    asked = iter([None, None, None, "timed out"])
    done = delete(root, candidates, lambda: next(asked))
    assert [c.path.name for c in done.deleted] == ["0.tmp", "1.tmp", "2.tmp"]
    assert done.stopped == "timed out" and names(root / "tmp") == ["3.tmp", "4.tmp"]


def test_a_sweep_past_its_timeout_deletes_nothing_more_and_the_outcome_says_timed_out(
    root: Path,
) -> None:
    put(root / "tmp/a.tmp")
    put(root / "tmp/b.tmp")
    report = _planned(root)
    cleanup.sweep(report, Control(time.monotonic() - 1))
    outcome = cleanup.outcome_of(report, cleanup.Params(dir=str(root / "tmp"), include=["*"],
                                                        enforce=True), dry_run=False)  # fmt: skip
    assert not outcome.ok and outcome.details["timed_out"] is True
    assert outcome.details["files_deleted"] == 0 and outcome.details["files_not_reached"] == 2
    assert outcome.message.startswith("timed out: deleted 0 files"), outcome.message
    assert names(root / "tmp") == ["a.tmp", "b.tmp"]


async def test_a_step_out_of_time_stops_its_walk_and_is_recorded_timed_out(root: Path) -> None:
    for i in range(3):
        put(root / f"tmp/{i}.tmp", PAGE)
    ctx = make_action_context("cleanup", cleanup={"roots": [str(root)]},
                              state_dir=str(root / "state"))  # fmt: skip
    params = cleanup.Params(dir=str(root / "tmp"), include=["*"], enforce=True)
    outcome = await cleanup.run(params, dataclasses.replace(ctx, timeout=0.0))
    assert not outcome.ok and outcome.details["timed_out"] is True, outcome.message
    assert outcome.details["walk_incomplete"] == "walk timed out after 0 entries"
    assert names(root / "tmp") == ["0.tmp", "1.tmp", "2.tmp"]


async def test_the_walk_stops_at_max_entries_and_cleans_the_oldest_it_saw(root: Path) -> None:
    for i in range(5):
        put(root / f"tmp/{i}.tmp", PAGE, mtime=OLD - i)
    outcome = await clean(root, enforce=True, max_entries=3)
    assert outcome.ok, outcome.message
    assert outcome.details["walk_incomplete"] == "walk stopped at max_entries (3)"
    assert names(root / "tmp") == ["3.tmp", "4.tmp"]
    assert "walk stopped at max_entries (3): the oldest of what it saw chosen" in outcome.message


@pytest.mark.parametrize(
    "pattern",
    ["{root}/tmp/keep/", "{root}//tmp//keep", "{root}/link/keep", "{root}/link/k*", "*.KEEP"],
    ids=["trailing-slash", "double-slash", "symlinked-dir", "symlinked-dir-glob", "case"],
)
async def test_a_protected_pattern_written_loosely_still_protects(root: Path, pattern: str) -> None:
    kept = put(root / "tmp/keep/a.keep")
    (root / "link").symlink_to(root / "tmp")
    put(root / "tmp/b.tmp")
    config = {"roots": [str(root)], "protected": [pattern.format(root=root)]}
    outcome = await clean(root, config=config, recursive=True, enforce=True)
    assert outcome.ok, outcome.message
    assert outcome.details["deleted"] == [str(root / "tmp/b.tmp")]
    assert kept.exists()


def test_check_refuses_a_relative_protected_path_at_file_line_col(tmp_path: Path) -> None:
    (tmp_path / "opsmedic.yaml").write_text(
        "cleanup:\n  roots: [/srv/tmp]\n  protected: [a.keep, keep/x]\n"
    )
    result = subprocess.run([sys.executable, "-m", "opsmedic", "check"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert (
        "opsmedic.yaml:3:23: cleanup.protected[1]: Value error, 'keep/x' holds" in result.stderr
    ), result.stderr


@pytest.mark.parametrize(
    ("victim", "markers", "reason"),
    [
        ("mongo/diagnostic.data/metrics.interim", ["mongo/WiredTiger"], "mongo/WiredTiger"),
        ("mongo/collection-0-1.wt", [], "(*.wt"),
        ("mongo/WiredTiger.turtle", [], "(wiredtiger*"),
        ("etcd/member/snap/0000-0001.snap", ["etcd/member/wal/0.wal"], "etcd/member/wal"),
        ("etcd/member/snap/db", [], "etcd/member/snap/db"),
        ("prom/wal/00000001", ["prom/chunks_head/000001"], "prom/wal+chunks_head"),
        ("prom/01HBLOCK/chunks/000001", ["prom/01HBLOCK/meta.json", "prom/01HBLOCK/index"],
         "prom/01HBLOCK/meta.json+index+chunks"),
        ("es/nodes/0/indices/x/0/index/_0.cfs", ["es/nodes/0/_state/state-1.st"],
         "es/nodes/0/_state+indices"),
        ("app.sqlite3.tmp", [], "(*.sqlite3*"),
        ("app.DB.bak", [], "(*.db"),
        ("orders.ibd.bak.bak", [], "(*.ibd"),
    ],
)  # fmt: skip
async def test_common_datastores_are_protected_built_in(
    root: Path, victim: str, markers: list[str], reason: str
) -> None:
    for marker in markers:
        put(root / "tmp" / marker, 64)
    kept = put(root / "tmp" / victim, 64)
    put(root / "tmp/gone.tmp", 64)
    outcome = await clean(root, enforce=True, recursive=True, include=["**"])
    assert outcome.ok, outcome.message
    assert kept.exists() and not (root / "tmp/gone.tmp").exists()
    why = {s["path"]: s["reason"] for s in outcome.details["files_skipped"]}[str(kept)]
    assert why.startswith("protected: ") and why.endswith(f"{reason}, built in)"), why


def _mapping_writer(path: Path) -> subprocess.Popen[str]:
    """A process that maps `path` shared and writable, then closes every fd it had on it."""
    code = (
        "import mmap, os, sys, time\n"
        "f = open(sys.argv[1], 'r+b'); m = mmap.mmap(f.fileno(), 0); f.close()\n"
        "os.closerange(3, 4096)  # mmap keeps a dup of the fd: gone too, the mapping stays\n"
        "print('ready', flush=True); time.sleep(60)"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip


async def test_a_file_mapped_shared_and_writable_with_its_fd_closed_is_skipped(root: Path) -> None:
    mapped = put(root / "tmp/shm.tmp", PAGE)
    with _mapping_writer(mapped) as writer:
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
            assert not [f for f in os.listdir(f"/proc/{writer.pid}/fd") if int(f) > 2]
            outcome = await clean(root, enforce=True)
            assert outcome.ok, outcome.message
            name = psutil.Process(writer.pid).name()  # python or python3: how it was started
            reason = f"open for writing by pid {writer.pid} ({name})"
            assert outcome.details["files_skipped"] == [{"path": str(mapped), "reason": reason}]
            assert mapped.exists()
        finally:
            writer.kill()
