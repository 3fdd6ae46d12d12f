"""archive_logs end to end on real files, processes, a tmpfs and an SFTP server."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import pwd
import re
import shutil
import subprocess
import tarfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import zstandard
from pydantic import ValidationError

from action_context import make_action_context
from opsmedic.actions import archive_logs
from opsmedic.archive.formats import Format
from opsmedic.archive.intents import Intent, IntentJournal
from opsmedic.archive.local import LocalDestination
from opsmedic.archive.select import Rules, select
from opsmedic.model import Outcome
from opsmedic.plugins import ActionContext
from processes import file_holders
from services import SSHServer, free_port
from tmpfs import bind_mount

OLD = time.time() - 3600


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """logs/ (the source), dest/ (the archives) and state/ side by side."""
    (tmp_path / "logs").mkdir()
    return tmp_path


def ctx_for(box: Path, dry_run: bool = False, **config: Any) -> ActionContext:
    return make_action_context(
        "archive_logs", dry_run=dry_run, state_dir=str(box / "state"), **config
    )


async def run(box: Path, ctx: ActionContext | None = None, **raw: Any) -> Outcome:
    raw = {"dir": str(box / "logs"), "include": ["*.log*"], "to": str(box / "dest"), **raw}
    params = archive_logs.Params.model_validate(raw)
    return await archive_logs.run(params, ctx or ctx_for(box))


def write(path: Path, data: bytes | str = b"", mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    os.utime(path, (mtime, mtime))
    return path


def log_lines(n: int, tag: str = "app") -> str:
    return "".join(
        f"2026-11-22T10:15:00Z {tag} GET /api/v1/orders/{i} 200 {i % 97}ms\n" for i in range(n)
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def contents(archive: Path) -> dict[str, bytes]:
    """Member name → bytes, read with the standard library (zstd through python-zstandard)."""
    raw = archive.read_bytes()
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            return {info.filename: zf.read(info) for info in zf.infolist()}
    if archive.name.endswith(".tar.zst"):
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        return {ti.name: tf.extractfile(ti).read() for ti in tf if ti.isfile()}


def archives(box: Path) -> list[Path]:
    return sorted((box / "dest").iterdir()) if (box / "dest").exists() else []


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- what is taken, and what never is ----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz", "zip"])
async def test_it_archives_logs_verified_then_deletes_them(box: Path, fmt: Format) -> None:
    logs = box / "logs"
    originals = {
        p: p.read_bytes()
        for p in (write(logs / "app.log.1", log_lines(20_000)), write(logs / "app.log.2", "x"))
    }
    outcome = await run(box, format=fmt)
    assert outcome.ok, outcome.message
    (archive,) = archives(box)
    assert archive.name.startswith(f"{os.uname().nodename}-logs-")
    assert archive.name.endswith(f".{fmt}")
    assert contents(archive) == {str(p).lstrip("/"): data for p, data in originals.items()}
    assert names(logs) == []
    d = outcome.details
    assert d["archives"] == [archive.name]
    assert d["destination"] == str(box / "dest")
    assert (d["files_archived"], d["files_deleted"]) == (2, 2)
    assert d["bytes_in"] == sum(map(len, originals.values()))
    assert d["bytes_out"] == archive.stat().st_size
    assert d["ratio"] > 1
    assert d["bytes_freed"] >= 0
    assert d["held_open"] == []
    assert "skipped" not in d  # the executor would record the step as skipped
    assert outcome.message.startswith("archived 2 files")
    assert names(box / "state" / "archive") == [".lock"]


async def test_a_symlink_to_a_file_elsewhere_is_neither_archived_nor_deleted(box: Path) -> None:
    target = write(box / "elsewhere" / "precious.log", "do not touch\n")
    before = (sha(target), target.stat().st_mtime_ns)
    (box / "logs" / "evil.log").symlink_to(target)
    write(box / "logs" / "app.log.1", log_lines(10))
    outcome = await run(box)
    assert outcome.ok, outcome.message
    (archive,) = archives(box)
    assert list(contents(archive)) == [str(box / "logs" / "app.log.1").lstrip("/")]
    assert (sha(target), target.stat().st_mtime_ns) == before
    assert (box / "logs" / "evil.log").is_symlink()
    assert outcome.details["files_skipped"] == [
        {"path": str(box / "logs" / "evil.log"), "reason": "symlink (never followed)"}
    ]


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
async def test_a_name_that_is_not_utf8_never_stops_the_rest(box: Path, fmt: Format) -> None:
    """zip skips it at selection, saying why, and archives and deletes the rest; tar keeps it."""
    good = write(box / "logs" / "app.log.1", log_lines(10))
    odd = write(box / "logs" / os.fsdecode(b"app\xff.log.1"), b"named in latin-1\n")
    outcome = await run(box, format=fmt)
    assert outcome.ok, outcome.message
    assert not good.exists()
    (archive,) = archives(box)
    if fmt == "zip":
        assert list(contents(archive)) == [str(good).lstrip("/")]
        assert odd.exists()
        (skip,) = outcome.details["files_skipped"]
        assert skip["path"] == str(odd)
        assert skip["reason"].startswith("name is not valid UTF-8, which zip cannot store")
    else:
        assert len(contents(archive)) == 2
        assert not odd.exists()
        assert outcome.details["files_skipped"] == []


@pytest.mark.parametrize("include_hardlinked", [False, True])
async def test_a_file_with_other_hard_links_is_skipped_unless_asked(
    box: Path, include_hardlinked: bool
) -> None:
    """Deleting one name of several frees nothing: skipped with why, or taken on request."""
    single = write(box / "logs" / "app.log.1", log_lines(10))
    linked = write(box / "logs" / "app.log.2", log_lines(20))
    other = box / "elsewhere" / "kept.log"
    other.parent.mkdir()
    os.link(linked, other)
    data = other.read_bytes()
    outcome = await run(box, include_hardlinked=include_hardlinked)
    assert outcome.ok, outcome.message
    (archive,) = archives(box)
    assert not single.exists()
    assert other.read_bytes() == data  # the other name always keeps the data
    if include_hardlinked:
        assert sorted(contents(archive)) == sorted(str(p).lstrip("/") for p in (single, linked))
        assert not linked.exists()
    else:
        assert list(contents(archive)) == [str(single).lstrip("/")]
        assert linked.exists()
        (skip,) = outcome.details["files_skipped"]
        assert skip["path"] == str(linked)
        assert skip["reason"].startswith("2 hard links: another name keeps the data")


async def test_database_binary_and_config_files_beside_the_logs_stay_put(box: Path) -> None:
    logs = box / "logs"
    others = [
        write(logs / "app.db", b"SQLite format 3\x00" + os.urandom(4096)),
        write(logs / "app.db-wal", os.urandom(512)),
        write(logs / "agent", b"\x7fELF" + os.urandom(1024)),
        write(logs / "app.conf", "level = debug\n"),
    ]
    before = {p: sha(p) for p in others}
    write(logs / "app.log.1", log_lines(100))
    outcome = await run(box)
    assert outcome.ok, outcome.message
    assert {p: sha(p) for p in others} == before
    assert names(logs) == ["agent", "app.conf", "app.db", "app.db-wal"]
    assert outcome.details["files_skipped_count"] == 0  # never even mentioned


async def test_a_symlinked_directory_is_not_followed(box: Path) -> None:
    outside = write(box / "elsewhere" / "other.log.1", "outside\n")
    write(box / "logs" / "sub" / "inner.log.1", "inside\n")
    (box / "logs" / "linked").symlink_to(outside.parent, target_is_directory=True)
    outcome = await run(box, recursive=True)
    assert outcome.ok, outcome.message
    (archive,) = archives(box)
    assert list(contents(archive)) == [str(box / "logs" / "sub" / "inner.log.1").lstrip("/")]
    assert outside.read_text() == "outside\n"


@pytest.fixture
def holder() -> Iterator[Callable[[Path, str], subprocess.Popen[str]]]:
    with file_holders() as start:
        yield start


async def test_a_file_open_for_writing_is_skipped_and_its_writer_named(
    box: Path, holder: Callable[[Path, str], subprocess.Popen[str]]
) -> None:
    live = write(box / "logs" / "live.log", log_lines(10))
    write(box / "logs" / "old.log.1", log_lines(10))
    writer = holder(live, "a")
    outcome = await run(box)
    assert outcome.ok, outcome.message
    (skip,) = outcome.details["files_skipped"]
    assert skip["path"] == str(live)
    assert skip["reason"].startswith(f"open for writing by pid {writer.pid} (python")
    assert names(box / "logs") == ["live.log"]


async def test_a_deleted_file_still_held_open_is_reported_with_its_pid(
    box: Path, holder: Callable[[Path, str], subprocess.Popen[str]]
) -> None:
    """A reader does not stop the archive, but its open file keeps the space."""
    held = write(box / "logs" / "read.log.1", log_lines(1000))
    reader = holder(held, "r")
    outcome = await run(box)
    assert outcome.ok, outcome.message
    assert names(box / "logs") == []
    (entry,) = outcome.details["held_open"]
    assert (entry["path"], entry["pid"]) == (str(held), reader.pid)
    assert f"still open by pid {reader.pid}" in outcome.message


async def test_files_modified_within_min_age_are_skipped(box: Path) -> None:
    write(box / "logs" / "old.log.1", "old\n")
    write(box / "logs" / "young.log.1", "young\n", mtime=time.time() - 30)
    outcome = await run(box, min_age="10m")
    assert outcome.ok, outcome.message
    assert names(box / "logs") == ["young.log.1"]
    (skip,) = outcome.details["files_skipped"]
    assert "min_age 600s" in skip["reason"]


async def test_per_file_makes_one_archive_for_each(box: Path) -> None:
    for i in range(3):
        write(box / "logs" / f"app.log.{i}", log_lines(50, f"n{i}"), mtime=OLD + i)
    outcome = await run(box, per="file", format="tar.gz")
    assert outcome.ok, outcome.message
    made = archives(box)
    assert len(made) == 3
    assert outcome.details["archives"] == [a.name for a in made]  # names sort in age order
    for i, archive in enumerate(made):
        assert f"-app.log.{i}-" in archive.name
        assert list(contents(archive)) == [str(box / "logs" / f"app.log.{i}").lstrip("/")]


async def test_a_dry_run_only_plans(box: Path) -> None:
    write(box / "logs" / "a.log.1", "a\n")
    write(box / "logs" / "b.log.1", "b\n", mtime=time.time())
    outcome = await run(box, ctx_for(box, dry_run=True))
    assert outcome.ok, outcome.message
    assert (
        outcome.message == f"dry-run: would archive 1 files (0.0 MB) to {box / 'dest'}; 1 skipped"
    )
    assert outcome.details["would_archive"] == [str(box / "logs" / "a.log.1")]
    assert names(box / "logs") == ["a.log.1", "b.log.1"]
    assert not (box / "dest").exists()
    assert not (box / "state").exists()


# --- bad input: a clear outcome, nothing lost -------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "a file"])
async def test_a_directory_that_is_missing_or_not_one_fails(box: Path, kind: str) -> None:
    target = box / "nope"
    if kind == "a file":
        write(target, "x")
    outcome = await run(box, dir=str(target))
    assert not outcome.ok
    expected = "directory does not exist" if kind == "missing" else "not a directory"
    assert outcome.message == f"{target}: {expected}"


async def test_a_pattern_that_matches_nothing_is_a_skip_with_the_reason(box: Path) -> None:
    write(box / "logs" / "app.txt", "x")
    outcome = await run(box, include=["*.log"])
    assert outcome.ok
    assert outcome.details["skipped"] == f"no file in {box / 'logs'} matches include"
    assert outcome.message.startswith("nothing to archive: no file in")
    assert not (box / "dest").exists()


async def test_files_that_match_but_cannot_be_taken_now_are_a_skip_that_says_why(box: Path) -> None:
    write(box / "logs" / "young.log", "x", mtime=time.time())
    outcome = await run(box)
    assert outcome.ok
    assert outcome.details["skipped"].startswith(
        "1 files match, none can be archived now (young.log: modified"
    )


@pytest.fixture
def tiny_tmpfs(box: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs as the destination (root only)."""
    mount = box / "dest"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


async def test_a_full_destination_fails_and_keeps_every_original(
    box: Path, tiny_tmpfs: Path
) -> None:
    data = os.urandom(3 << 20)  # random: does not compress below the 1 MiB the tmpfs holds
    log = write(box / "logs" / "big.log.1", data)
    outcome = await run(box)
    assert not outcome.ok
    assert "No space left on device" in outcome.message
    assert "nothing deleted" in outcome.message
    assert log.read_bytes() == data
    assert names(tiny_tmpfs) == []
    assert names(box / "state" / "archive") == [".lock"]


async def test_a_part_corrupted_on_its_way_fails_verification_and_nothing_is_deleted(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def flipping(self: LocalDestination, part: BinaryIO) -> None:
        part.flush()
        part.seek(part.tell() // 2)
        part.write(b"\x00\x01")
        part.close()

    monkeypatch.setattr(LocalDestination, "sync_close", flipping)
    log = write(box / "logs" / "app.log.1", log_lines(5000))
    before = sha(log)
    outcome = await run(box)
    assert not outcome.ok
    assert "nothing deleted" in outcome.message
    assert sha(log) == before
    assert names(box / "dest") == []


async def test_an_unreachable_sftp_destination_fails_and_keeps_the_originals(
    box: Path, sshd: SSHServer
) -> None:
    log = write(box / "logs" / "app.log.1", "x\n")
    hosts = {
        "backup": {
            "host": "127.0.0.1",
            "port": free_port(),
            "user": "x",
            "known_hosts": str(sshd.known_hosts),
            "connect_timeout": 5,
        }
    }
    outcome = await run(box, ctx_for(box, ssh_hosts=hosts), to="sftp://backup/tmp/archive")
    assert not outcome.ok
    assert outcome.message.startswith("destination sftp://backup/tmp/archive: ")
    assert "cannot connect" in outcome.message
    assert log.read_text() == "x\n"


async def test_a_state_dir_that_cannot_hold_intents_fails_before_anything_is_done(
    box: Path,
) -> None:
    log = write(box / "logs" / "app.log.1", "x\n")
    write(box / "state", "a file where the state directory should be")
    outcome = await run(box)
    assert not outcome.ok
    assert outcome.message == f"archive run failed: Not a directory ({box / 'state' / 'archive'})"
    assert log.read_text() == "x\n"
    assert not (box / "dest").exists()


async def test_a_run_out_of_time_deletes_nothing(box: Path) -> None:
    log = write(box / "logs" / "app.log.1", log_lines(1000))
    ctx = ctx_for(box)
    ctx.timeout = 1e-9
    outcome = await run(box, ctx)
    assert not outcome.ok
    assert outcome.details["timed_out"] is True
    assert "nothing deleted" in outcome.message
    assert names(box / "logs") == [log.name]
    assert names(box / "dest") == []


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"include": []}, "at least 1 item"),
        ({"include": [""]}, "item 0 is empty"),
        ({"dir": []}, "at least 1 item"),
        ({"level": 30}, "level 30 is out of range for tar.zst (1-22)"),
        ({"level": 12, "format": "zip"}, "level 12 is out of range for zip (0-9)"),
        ({"format": "rar"}, "'tar.zst', 'tar.gz' or 'zip'"),
        ({"per": "day"}, "'run' or 'file'"),
        ({"min_age": "soon"}, "not a duration"),
        ({"max_files": 0}, "greater than or equal to 1"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        (
            {"rotate": {"files": ["app.log"], "mode": "copytruncate", "reopen": ["x"]}},
            "reopen is for mode rename",
        ),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(raw: dict[str, Any], fragment: str) -> None:
    """The error names the parameter and says what is wrong."""
    with pytest.raises(ValidationError, match=re.escape(fragment)) as refused:
        archive_logs.Params.model_validate(
            {"dir": "/var/log/app", "include": ["*.log.*"], "to": "/b", **raw}
        )
    (error,) = refused.value.errors()
    assert error["loc"][0] == next(iter(raw))


def test_one_directory_may_be_given_as_a_string() -> None:
    params = archive_logs.Params.model_validate(
        {"dir": "/var/log/app", "include": ["*.log"], "to": "/b"}
    )
    assert params.dir == ["/var/log/app"]
    assert (params.format, params.per, params.min_age, params.delete) == (
        "tar.zst",
        "run",
        300.0,
        True,
    )


# --- recovery, rotation, SFTP -------------------------------------------------------------------


async def test_each_run_first_undoes_what_a_killed_run_left(box: Path) -> None:
    log = write(box / "logs" / "app.log.1", log_lines(100))
    files = select([box / "logs"], Rules(["*.log*"]), time.time()).candidates
    journal = IntentJournal(box / "state")
    dest = LocalDestination(box / "dest")
    intent = Intent(
        "web-1-logs-20261122T101500Z-00000000.tar.zst", str(box / "dest"), "tar.zst", True, files
    )
    journal.save(intent)
    with dest.open_part(intent.name) as part:
        part.write(b"torn")
    outcome = await run(box)
    assert outcome.ok, outcome.message
    assert outcome.details["recovered"] == [
        {
            "archive": intent.name,
            "action": "undone",
            "message": "never committed: part removed, originals kept",
        }
    ]
    (archive,) = archives(box)
    assert archive.name != intent.name
    assert list(contents(archive)) == [str(log).lstrip("/")]


async def test_rotate_rename_takes_the_live_log_at_once(box: Path) -> None:
    live = write(box / "logs" / "app.log", log_lines(100), mtime=time.time())
    data = live.read_bytes()
    outcome = await run(box, include=["app.log.*"], rotate={"files": ["app.log"]})
    assert outcome.ok, outcome.message
    (rotated,) = outcome.details["rotated"]
    assert Path(rotated).name.startswith("app.log.")
    assert outcome.details["lossy"] is False
    (archive,) = archives(box)
    assert contents(archive) == {rotated.lstrip("/"): data}
    assert names(box / "logs") == []


async def test_rotate_copytruncate_says_it_is_lossy(box: Path) -> None:
    live = write(box / "logs" / "app.log", log_lines(100), mtime=time.time())
    outcome = await run(
        box, include=["app.log.*"], rotate={"files": ["app.log"], "mode": "copytruncate"}
    )
    assert outcome.ok, outcome.message
    assert outcome.details["lossy"] is True
    assert "copytruncate rotation is lossy" in outcome.message
    assert live.stat().st_size == 0


async def test_archives_go_to_an_sftp_server_verified(box: Path, sshd: SSHServer) -> None:
    """The archive is read back over SFTP before any original is deleted."""
    remote = f"opsmedic-archive-{uuid.uuid4().hex[:12]}"
    home = Path(pwd.getpwnam(sshd.user).pw_dir)
    hosts = {
        "backup": {
            "host": sshd.host,
            "port": sshd.port,
            "user": sshd.user,
            "key_file": str(sshd.key_file),
            "known_hosts": str(sshd.known_hosts),
        }
    }
    log = write(box / "logs" / "app.log.1", log_lines(30_000))
    data = log.read_bytes()
    try:
        outcome = await run(box, ctx_for(box, ssh_hosts=hosts), to=f"sftp://backup/~/{remote}")
        assert outcome.ok, outcome.message
        (name,) = outcome.details["archives"]
        assert names(home / remote) == [name]
        assert contents(home / remote / name) == {str(log).lstrip("/"): data}
        assert names(box / "logs") == []
    finally:
        shutil.rmtree(home / remote, ignore_errors=True)


async def test_two_runs_at_once_take_turns(box: Path) -> None:
    """The second waits for the journal lock instead of undoing the first one's intent."""
    for i in range(4):
        write(box / "logs" / f"app.log.{i}", log_lines(20_000, str(i)), mtime=OLD + i)
    first, second = await asyncio.gather(run(box, max_files=2), run(box, max_files=2))
    assert first.ok and second.ok, (first.message, second.message)
    assert first.details["files_archived"] + second.details["files_archived"] == 4
    assert len(archives(box)) == 2
    assert names(box / "logs") == []


async def test_a_bind_mount_inside_the_logs_is_not_entered(box: Path) -> None:
    outside = write(box / "elsewhere" / "other.log.1", "outside\n")
    write(box / "logs" / "inner.log.1", "inside\n")
    with bind_mount(outside.parent, box / "logs" / "mnt"):
        outcome = await run(box, recursive=True)
        assert outcome.ok, outcome.message
        (archive,) = archives(box)
        assert list(contents(archive)) == [str(box / "logs" / "inner.log.1").lstrip("/")]
    assert outside.read_text() == "outside\n"
