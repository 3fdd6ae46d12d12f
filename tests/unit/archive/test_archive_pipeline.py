"""The archive sequence on real files: verify before delete, changed files kept, recovery."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from opsmedic.archive.formats import Format, verify
from opsmedic.archive.intents import Intent, IntentJournal
from opsmedic.archive.local import LocalDestination
from opsmedic.archive.pipeline import (
    ArchiveFailed,
    Cancelled,
    Control,
    archive_name,
    delete_originals,
    in_thread,
    recover_intent,
    write_archive,
)
from opsmedic.archive.select import OUR_ARCHIVE, Candidate, Rules, select
from opsmedic.errors import ActionError

FORMATS: list[Format] = ["tar.zst", "tar.gz", "zip"]
OLD = time.time() - 3600


class Killed(BaseException):
    """Stands in for SIGKILL at one point of the sequence: nothing after it runs."""


def write_logs(directory: Path, sizes: dict[str, int]) -> dict[Path, str]:
    """Varied log lines of about the given sizes, an hour old; path → SHA-256."""
    directory.mkdir(parents=True, exist_ok=True)
    digests = {}
    for i, (name, size) in enumerate(sizes.items()):
        line = f"2026-11-22T10:15:{i:02d}Z {name} request id=%08d took=%dms\n"
        block = "".join(line % (n, n % 977) for n in range(min(size, 1 << 16) // len(line) + 1))
        path = directory / name
        path.write_text((block * (size // len(block) + 1))[:size])
        os.utime(path, (OLD + i, OLD + i))
        digests[path] = sha256(path)
    return digests


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def candidates(directory: Path) -> list[Candidate]:
    return select([directory], Rules(["*.log*"]), time.time()).candidates


def control(progress: Callable[[int], None] | None = None) -> Control:
    return Control(time.monotonic() + 60, progress=progress)


@pytest.fixture
def journal(tmp_path: Path) -> IntentJournal:
    return IntentJournal(tmp_path / "state")


@pytest.fixture
def dest(tmp_path: Path) -> LocalDestination:
    return LocalDestination(tmp_path / "dest")


def new_intent(
    dest: LocalDestination, files: list[Candidate], fmt: Format = "tar.zst", delete: bool = True
) -> Intent:
    name = archive_name("web-1", "app", "20261122T101500Z", fmt, os.urandom(4).hex())
    return Intent(name, str(dest.dir), fmt, delete, files)


def left_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def assert_untouched(digests: dict[Path, str]) -> None:
    for path, digest in digests.items():
        assert sha256(path) == digest, path


# --- the normal sequence -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_commits_a_verified_archive_then_deletes_the_originals(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination, fmt: Format
) -> None:
    digests = write_logs(tmp_path / "logs", {"a.log.1": 300_000, "b.log.1": 1, "c.log": 0})
    intent = new_intent(dest, candidates(tmp_path / "logs"), fmt)
    seen: list[int] = []
    written = write_archive(dest, journal, intent, None, control(progress=seen.append))
    assert left_in(dest.dir) == [intent.name]
    assert written.bytes_out == (dest.dir / intent.name).stat().st_size
    by_name = {m.arcname: m.sha256 for m in written.members}
    assert by_name == {str(p).lstrip("/"): d for p, d in digests.items()}
    with (dest.dir / intent.name).open("rb") as src:
        verify(fmt, src, written.members)
    assert written.deletion is not None
    assert sorted(c.path for c in written.deletion.deleted) == sorted(digests)
    assert left_in(tmp_path / "logs") == []
    assert left_in(journal.dir) == [".lock"] or left_in(journal.dir) == []
    assert sum(seen) == 2 * 300_001  # every input byte once written, once verified


def test_without_delete_the_originals_stay(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    digests = write_logs(tmp_path / "logs", {"a.log": 5000})
    intent = new_intent(dest, candidates(tmp_path / "logs"), delete=False)
    written = write_archive(dest, journal, intent, None, control())
    assert written.deletion is None
    assert left_in(dest.dir) == [intent.name]
    assert_untouched(digests)


def test_archive_names_sort_by_host_label_time_and_are_never_reselected() -> None:
    name = archive_name("web 1/x", "app.log.1", "20261122T101500Z", "tar.gz", "1a2b3c4d")
    assert name == "web_1_x-app.log.1-20261122T101500Z-1a2b3c4d.tar.gz"
    assert OUR_ARCHIVE.search(name)
    assert OUR_ARCHIVE.search(name + ".part")


def test_a_destination_that_exists_already_is_never_overwritten(
    tmp_path: Path, dest: LocalDestination
) -> None:
    (dest.dir / "x.tar.zst").write_text("precious")
    dest.open_part("x.tar.zst").close()
    with pytest.raises(FileExistsError):
        dest.commit("x.tar.zst")
    assert (dest.dir / "x.tar.zst").read_text() == "precious"
    with pytest.raises(FileExistsError):
        dest.open_part("x.tar.zst")


# --- what goes wrong before the commit ---------------------------------------------------------


class FlippingDestination(LocalDestination):
    """Flips one byte of the part once it is synced: the read-back must catch it."""

    def sync_close(self, part: BinaryIO) -> None:
        super().sync_close(part)
        (path,) = self.dir.glob("*.part")
        with path.open("r+b") as f:
            f.seek(path.stat().st_size // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_corrupted_part_fails_verification_and_nothing_is_deleted(
    tmp_path: Path, journal: IntentJournal, fmt: Format
) -> None:
    digests = write_logs(tmp_path / "logs", {"a.log": 200_000, "b.log": 100_000})
    dest = FlippingDestination(tmp_path / "dest")
    intent = new_intent(dest, candidates(tmp_path / "logs"), fmt)
    with pytest.raises(ArchiveFailed, match="nothing deleted") as failed:
        write_archive(dest, journal, intent, None, control())
    assert intent.name in str(failed.value)
    assert_untouched(digests)
    assert left_in(dest.dir) == []
    assert journal.pending() == ([], [])


def truncating(paths: list[Path]) -> Callable[[int], None]:
    """A progress callback that truncates each of `paths` in turn, one per archive attempt."""
    todo = list(paths)

    def progress(n: int) -> None:
        if todo and n:
            os.truncate(todo.pop(0), 0)

    return progress


def test_a_file_truncated_while_read_is_left_out_and_the_rest_archived(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    """The part is discarded and written again once without that file."""
    logs = tmp_path / "logs"
    digests = write_logs(logs, {"big.log": 4 << 20, "small.log": 1000})
    intent = new_intent(dest, candidates(logs))
    written = write_archive(
        dest, journal, intent, None, control(progress=truncating([logs / "big.log"]))
    )
    assert [m.arcname for m in written.members] == [str(logs / "small.log").lstrip("/")]
    assert [s.path for s in written.dropped] == [str(logs / "big.log")]
    assert "changed while read" in written.dropped[0].reason
    assert left_in(logs) == ["big.log"]  # truncated by the test, but never deleted
    assert left_in(dest.dir) == [intent.name]
    # small.log's bytes are in the archive, verified against what was on disk
    assert [m.sha256 for m in written.members] == [digests[logs / "small.log"]]


def test_files_that_keep_changing_fail_the_archive(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    logs = tmp_path / "logs"
    write_logs(logs, {"a.log": 4 << 20, "b.log": 4 << 20, "c.log": 10})
    intent = new_intent(dest, candidates(logs))
    progress = truncating([logs / "a.log", logs / "b.log"])
    with pytest.raises(ArchiveFailed, match="kept changing"):
        write_archive(dest, journal, intent, None, control(progress=progress))
    assert left_in(logs) == ["a.log", "b.log", "c.log"]
    assert left_in(dest.dir) == []
    assert journal.pending() == ([], [])


def test_a_file_that_grew_after_selection_is_archived_as_selected_and_kept(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    logs = tmp_path / "logs"
    digests = write_logs(logs, {"grows.log": 50_000, "still.log": 50_000})
    intent = new_intent(dest, candidates(logs))
    with (logs / "grows.log").open("a") as f:
        f.write("one more line\n")
    written = write_archive(dest, journal, intent, None, control())
    member = next(m for m in written.members if m.arcname.endswith("grows.log"))
    assert (member.size, member.sha256) == (50_000, digests[logs / "grows.log"])
    assert written.deletion is not None
    assert [s.path for s in written.deletion.kept] == [str(logs / "grows.log")]
    assert "grew since read (50000 → 50014 bytes)" in written.deletion.kept[0].reason
    assert left_in(logs) == ["grows.log"]


def test_a_file_replaced_or_removed_since_selection_is_left_out(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    logs = tmp_path / "logs"
    write_logs(logs, {"replaced.log": 100, "removed.log": 100, "kept.log": 100})
    intent = new_intent(dest, candidates(logs))
    (logs / "new").write_text("a new file under the old name\n")
    (logs / "new").rename(logs / "replaced.log")
    (logs / "removed.log").unlink()
    written = write_archive(dest, journal, intent, None, control())
    assert {Path(s.path).name: s.reason for s in written.dropped} == {
        "removed.log": f"cannot open since selection: No such file or directory ({logs / 'removed.log'})",
        "replaced.log": "replaced by another file since selection",
    }
    assert (logs / "replaced.log").read_text() == "a new file under the old name\n"
    assert left_in(logs) == ["replaced.log"]


def test_out_of_time_before_the_commit_deletes_nothing(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    digests = write_logs(tmp_path / "logs", {"a.log": 1000})
    intent = new_intent(dest, candidates(tmp_path / "logs"))
    with pytest.raises(Cancelled, match="timed out before the archive was committed"):
        write_archive(dest, journal, intent, None, Control(time.monotonic() - 1))
    assert_untouched(digests)
    assert left_in(dest.dir) == []
    assert journal.pending() == ([], [])


async def test_a_cancelled_run_stops_its_thread_before_anything_is_deleted(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    """in_thread waits for the worker to notice, so no work outlives the cancelled run."""
    digests = write_logs(tmp_path / "logs", {"a.log": 3 << 20})
    intent = new_intent(dest, candidates(tmp_path / "logs"))
    started, release = threading.Event(), threading.Event()

    def progress(n: int) -> None:
        started.set()
        release.wait()

    ctl = control(progress=progress)
    task = asyncio.ensure_future(in_thread(ctl, write_archive, dest, journal, intent, None, ctl))
    await asyncio.to_thread(started.wait)
    task.cancel()
    await asyncio.to_thread(ctl.cancel.wait)  # in_thread got the cancellation: only then go on
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ctl.cancel.is_set()
    assert_untouched(digests)
    assert left_in(dest.dir) == []
    assert journal.pending() == ([], [])


def test_originals_whose_directory_became_a_symlink_are_kept(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    logs = tmp_path / "logs"
    write_logs(logs, {"a.log": 100})
    files = candidates(logs)
    intent = new_intent(dest, files, delete=False)
    written = write_archive(dest, journal, intent, None, control())
    logs.rename(tmp_path / "moved")
    logs.symlink_to(tmp_path / "moved", target_is_directory=True)
    deletion = delete_originals(files, written.members)
    assert deletion.deleted == []
    assert "reached through a symlink" in deletion.kept[0].reason
    assert left_in(tmp_path / "moved") == ["a.log"]


# --- recovery ----------------------------------------------------------------------------------


class DyingDestination(LocalDestination):
    """Dies inside commit: before it (`before`), between link and unlink, or after it."""

    def __init__(self, directory: Path, when: str) -> None:
        super().__init__(directory)
        self.when = when

    def commit(self, name: str) -> None:
        if self.when == "before":
            raise Killed
        if self.when == "linked":
            os.link(self.dir / f"{name}.part", self.dir / name)
            raise Killed
        super().commit(name)
        raise Killed


def killed_at(tmp_path: Path, journal: IntentJournal, when: str) -> tuple[Intent, dict[Path, str]]:
    digests = write_logs(tmp_path / "logs", {"a.log": 100_000, "b.log": 2000, "c.log": 30})
    dest = DyingDestination(tmp_path / "dest", when)
    intent = new_intent(dest, candidates(tmp_path / "logs"))
    with pytest.raises(Killed):
        write_archive(dest, journal, intent, None, control())
    (pending,), problems = journal.pending()
    assert problems == []
    assert pending.members is not None
    return pending, digests


def test_recovery_undoes_an_intent_that_never_verified(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    digests = write_logs(tmp_path / "logs", {"a.log": 1000})
    intent = new_intent(dest, candidates(tmp_path / "logs"))
    journal.save(intent)
    with dest.open_part(intent.name) as part:
        part.write(b"half an archive")
    done = recover_intent(dest, journal, journal.pending()[0][0], control())
    assert (done.action, done.deletion) == ("undone", None)
    assert left_in(dest.dir) == []
    assert journal.pending() == ([], [])
    assert_untouched(digests)


def test_recovery_undoes_a_verified_intent_that_was_never_committed(
    tmp_path: Path, journal: IntentJournal
) -> None:
    pending, digests = killed_at(tmp_path, journal, "before")
    dest = LocalDestination(tmp_path / "dest")
    assert left_in(dest.dir) == [f"{pending.name}.part"]
    done = recover_intent(dest, journal, pending, control())
    assert done.action == "undone"
    assert left_in(dest.dir) == []
    assert_untouched(digests)


@pytest.mark.parametrize("when", ["linked", "after"])
def test_recovery_finishes_a_committed_archive_and_deletes_what_is_left(
    tmp_path: Path, journal: IntentJournal, when: str
) -> None:
    pending, digests = killed_at(tmp_path, journal, when)
    logs = tmp_path / "logs"
    (logs / "a.log").unlink()  # the killed run had deleted this one already
    with (logs / "c.log").open("a") as f:
        f.write("written after the archive\n")
    dest = LocalDestination(tmp_path / "dest")
    done = recover_intent(dest, journal, pending, control())
    assert done.action == "finished"
    assert done.deletion is not None
    assert [c.path.name for c in done.deletion.deleted] == ["b.log"]
    assert done.deletion.gone == [str(logs / "a.log")]
    assert [Path(s.path).name for s in done.deletion.kept] == ["c.log"]
    assert left_in(dest.dir) == [pending.name]
    assert left_in(logs) == ["c.log"]
    assert journal.pending() == ([], [])
    with (dest.dir / pending.name).open("rb") as src:
        verify(pending.format, src, pending.members or [])
    assert {m.sha256 for m in pending.members or []} == set(digests.values())


def test_recovery_keeps_originals_and_intent_when_the_archive_fails_verification(
    tmp_path: Path, journal: IntentJournal
) -> None:
    pending, digests = killed_at(tmp_path, journal, "after")
    dest = LocalDestination(tmp_path / "dest")
    archive = dest.dir / pending.name
    archive.write_bytes(archive.read_bytes()[:-20])
    done = recover_intent(dest, journal, pending, control())
    assert done.action == "kept"
    assert "fails verification" in done.message
    assert_untouched(digests)
    assert [i.name for i in journal.pending()[0]] == [pending.name]


def test_pending_reports_unreadable_intents_and_clears_torn_temporaries(
    journal: IntentJournal,
) -> None:
    journal.dir.mkdir(parents=True)
    (journal.dir / "x.tar.zst.intent.json").write_text("{not json")
    (journal.dir / "y.intent.json").write_text(json.dumps({"version": 99}))
    (journal.dir / ".z.intent.json.abc123.part").write_text("{")
    intents, problems = journal.pending()
    assert intents == []
    assert len(problems) == 2
    assert all("unreadable intent, left for a human" in p for p in problems)
    assert "unknown intent version 99" in problems[1]
    assert left_in(journal.dir) == ["x.tar.zst.intent.json", "y.intent.json"]


async def test_one_archive_run_at_a_time_per_state_dir(journal: IntentJournal) -> None:
    async with journal.locked(time.monotonic() + 5):
        with pytest.raises(ActionError, match="another archive run holds"):
            async with journal.locked(time.monotonic() + 0.1):
                pass
    async with journal.locked(time.monotonic()):
        pass


# --- found in review: inputs that must fail cleanly, never hang or crash ---------------------


def test_a_fifo_swapped_in_after_selection_is_left_out_without_blocking(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    """Opening a FIFO for reading blocks until a writer comes; the archiver must not wait."""
    digests = write_logs(tmp_path / "logs", {"a.log.1": 1000, "b.log.1": 1000})
    files = candidates(tmp_path / "logs")
    swapped = tmp_path / "logs" / "b.log.1"
    swapped.unlink()
    os.mkfifo(swapped)
    written = write_archive(dest, journal, new_intent(dest, files), None, control())
    assert [m.arcname.rsplit("/", 1)[-1] for m in written.members] == ["a.log.1"]
    assert [s.reason for s in written.dropped] == ["no longer a regular file"]
    assert swapped.exists()  # the FIFO itself is never deleted
    del digests[swapped]


def test_a_name_zip_cannot_store_fails_the_archive_and_deletes_nothing(
    tmp_path: Path, journal: IntentJournal, dest: LocalDestination
) -> None:
    logs = tmp_path / "logs"
    digests = write_logs(logs, {"a.log.1": 1000})
    bad = os.path.join(os.fsencode(logs), b"b\xff.log.1")
    with open(bad, "wb") as f:
        f.write(b"not utf-8 named\n")
    os.utime(bad, (time.time() - 3600, time.time() - 3600))  # past min_age, like the others
    with pytest.raises(ArchiveFailed, match="UTF-8"):
        write_archive(dest, journal, new_intent(dest, candidates(logs), "zip"), None, control())
    assert_untouched(digests)
    assert os.path.exists(bad)
    assert left_in(dest.dir) == []
    assert journal.pending() == ([], [])  # no intent left, none unreadable
