"""File selection for archiving: globs, symlinks, containment, age, bounds, unreadable dirs."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsmedic.archive.select import OUR_ARCHIVE, Rules, Selection, select

OLD = time.time() - 3600  # an hour ago: past any min_age used here


def make(path: Path, text: str = "line\n", mtime: float = OLD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def chosen(sel: Selection) -> list[str]:
    return sorted(c.path.name for c in sel.candidates)


def reasons(sel: Selection) -> dict[str, str]:
    return {Path(s.path).name: s.reason for s in sel.skipped}


def test_it_takes_only_files_an_include_names(tmp_path: Path) -> None:
    """Database, binary and config files beside the logs are never chosen, nor mentioned."""
    for name in (
        "app.log",
        "app.log.1",
        "app.log.2.gz",
        "app.db",
        "app.db-wal",
        "tool",
        "app.conf",
    ):
        make(tmp_path / name)
    sel = select([tmp_path], Rules(["*.log*"]), time.time())
    assert chosen(sel) == ["app.log", "app.log.1", "app.log.2.gz"]
    assert sel.skipped == []
    assert sel.problems == []


def test_it_applies_excludes_after_includes(tmp_path: Path) -> None:
    for name in ("a.log", "a.log.1", "b.log.1"):
        make(tmp_path / name)
    sel = select([tmp_path], Rules(["*.log*"], exclude=["*.log", "b.*"]), time.time())
    assert chosen(sel) == ["a.log.1"]


def test_it_never_follows_a_symlink_to_a_file_elsewhere(tmp_path: Path) -> None:
    """A link named like a log is reported as skipped, and its target is not a candidate."""
    outside = make(tmp_path / "elsewhere" / "secret.log")
    logs = tmp_path / "logs"
    make(logs / "app.log.1")
    (logs / "evil.log.1").symlink_to(outside)
    sel = select([logs], Rules(["*.log*"]), time.time())
    assert chosen(sel) == ["app.log.1"]
    assert reasons(sel) == {"evil.log.1": "symlink (never followed)"}


def test_it_never_descends_a_symlinked_directory(tmp_path: Path) -> None:
    """Recursive selection enters real subdirectories only; names match relative paths."""
    outside = tmp_path / "elsewhere"
    make(outside / "other.log.1")
    logs = tmp_path / "logs"
    make(logs / "sub" / "deep.log.1")
    (logs / "linked").symlink_to(outside, target_is_directory=True)
    sel = select([logs], Rules(["*.log.*"], recursive=True), time.time())
    assert [c.arcname for c in sel.candidates] == [str(logs / "sub" / "deep.log.1").lstrip("/")]
    assert all(not str(c.path).startswith(str(outside)) for c in sel.candidates)
    sel = select([logs], Rules(["sub/*"], recursive=True), time.time())
    assert chosen(sel) == ["deep.log.1"]


def test_it_does_not_descend_without_recursive(tmp_path: Path) -> None:
    make(tmp_path / "sub" / "deep.log.1")
    make(tmp_path / "top.log.1")
    sel = select([tmp_path], Rules(["*"]), time.time())
    assert chosen(sel) == ["top.log.1"]
    assert reasons(sel) == {"sub": "directory (recursive is off)"}


def test_a_configured_directory_reached_through_a_symlink_is_its_real_path(tmp_path: Path) -> None:
    """The operator's own path may be a link; files are then named by the real directory."""
    make(tmp_path / "real" / "a.log.1")
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    sel = select([tmp_path / "alias"], Rules(["*.log.*"]), time.time())
    assert [c.path for c in sel.candidates] == [tmp_path / "real" / "a.log.1"]


def test_a_file_reached_twice_is_taken_once(tmp_path: Path) -> None:
    make(tmp_path / "sub" / "a.log")
    sel = select([tmp_path, tmp_path / "sub"], Rules(["*.log"], recursive=True), time.time())
    assert [c.path for c in sel.candidates] == [tmp_path / "sub" / "a.log"]


def test_it_skips_files_modified_within_min_age_unless_just_rotated(tmp_path: Path) -> None:
    now = time.time()
    make(tmp_path / "old.log.1", mtime=now - 600)
    young = make(tmp_path / "young.log.1", mtime=now - 10)
    sel = select([tmp_path], Rules(["*.log.*"], min_age=300), now)
    assert chosen(sel) == ["old.log.1"]
    assert reasons(sel) == {"young.log.1": "modified 10s ago (min_age 300s)"}
    sel = select([tmp_path], Rules(["*.log.*"], min_age=300), now, fresh=frozenset({young}))
    assert chosen(sel) == ["old.log.1", "young.log.1"]


def test_it_never_reselects_archives_it_made(tmp_path: Path) -> None:
    """Even when the destination is the log directory and the include would match them."""
    names = [
        "web-1-app-20261122T101500Z-1a2b3c4d.tar.zst",
        "web-1-app.log.1-20261122T101500Z-1a2b3c4d.tar.gz",
        "web-1-app.log.1-20261122T101500Z-1a2b3c4d.zip.part",
    ]
    for name in [*names, "app.log.1"]:
        make(tmp_path / name)
    assert all(OUR_ARCHIVE.search(name) for name in names)
    sel = select([tmp_path], Rules(["*app*"]), time.time())
    assert chosen(sel) == ["app.log.1"]


def test_it_skips_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.log")
    sel = select([tmp_path], Rules(["*.log"]), time.time())
    assert sel.candidates == []
    assert reasons(sel) == {"pipe.log": "not a regular file"}
    assert sel.matched == 1


def test_it_bounds_files_and_bytes_per_run_oldest_first(tmp_path: Path) -> None:
    for i in range(5):
        make(tmp_path / f"f{i}.log", "x" * 100, mtime=OLD + i)
    sel = select([tmp_path], Rules(["*.log"], max_files=3), time.time())
    assert [c.path.name for c in sel.candidates] == ["f0.log", "f1.log", "f2.log"]
    assert reasons(sel) == {
        "f3.log": "over max_files (3) this run",
        "f4.log": "over max_files (3) this run",
    }
    sel = select([tmp_path], Rules(["*.log"], max_bytes=250), time.time())
    assert chosen(sel) == ["f0.log", "f1.log"]
    assert sel.total_bytes == 200
    assert reasons(sel)["f2.log"] == "over max_bytes (250) this run"


def test_it_records_each_candidates_identity(tmp_path: Path) -> None:
    path = make(tmp_path / "a.log", "abc")
    (c,) = select([tmp_path], Rules(["*.log"]), time.time()).candidates
    st = path.stat()
    assert (c.identity.dev, c.identity.ino, c.identity.size, c.identity.mtime_ns) == (
        st.st_dev, st.st_ino, 3, st.st_mtime_ns,
    )  # fmt: skip
    assert c.arcname == str(path).lstrip("/")


def test_it_skips_files_open_for_writing_and_names_the_writer(tmp_path: Path) -> None:
    """The scanner's holders decide: a writer skips the file, a reader does not."""
    from opsmedic.archive.openfiles import Holder

    written = make(tmp_path / "live.log")
    read = make(tmp_path / "read.log")
    key = {p.name: (p.stat().st_dev, p.stat().st_ino) for p in (written, read)}

    def scan(ids: set[tuple[int, int]]) -> dict[tuple[int, int], list[Holder]]:
        assert ids == set(key.values())
        return {
            key["live.log"]: [Holder(pid=42, fd=3, writing=True, command="nginx")],
            key["read.log"]: [Holder(pid=43, fd=4, writing=False, command="tail")],
        }

    sel = select([tmp_path], Rules(["*.log"]), time.time(), scan_open=scan)
    assert chosen(sel) == ["read.log"]
    assert reasons(sel) == {"live.log": "open for writing by pid 42 (nginx)"}
    unchecked = Rules(["*.log"], skip_open_for_writing=False)
    assert chosen(select([tmp_path], unchecked, time.time(), scan_open=scan)) == [
        "live.log",
        "read.log",
    ]


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_directory_that_is_missing_or_not_one_is_a_problem(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "nope"
    if kind == "file":
        make(target)
    sel = select([target, tmp_path], Rules(["*"]), time.time())
    expected = "directory does not exist" if kind == "missing" else "not a directory"
    assert sel.problems == [f"{target}: {expected}"]


def test_a_directory_that_cannot_be_read_is_a_problem(tmp_path: Path) -> None:
    """Checked in a child without root's power to read anything (CAP_DAC_* dropped)."""
    closed = tmp_path / "closed"
    make(closed / "a.log")
    closed.chmod(0o000)
    code = (
        "import json, sys, time; from pathlib import Path; "
        "from opsmedic.archive.select import Rules, select; "
        "s = select([Path(sys.argv[1])], Rules(['*']), time.time()); "
        "print(json.dumps([s.problems, len(s.candidates)]))"
    )
    argv = [sys.executable, "-c", code, str(closed)]
    if os.geteuid() == 0:
        capsh = shutil.which("capsh")
        if capsh is None:
            pytest.skip("running as root and capsh (libcap2-bin) is missing to drop CAP_DAC_*")
        argv = [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", shlex.join(argv)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
    finally:
        closed.chmod(0o700)
    problems, count = json.loads(done.stdout)
    assert problems == [f"{closed}: directory is not readable: Permission denied"]
    assert count == 0


def test_hard_linked_files_are_skipped_unless_included(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    make(logs / "one.log")
    os.link(make(logs / "two.log"), tmp_path / "other-name")
    sel = select([logs], Rules(["*.log"]), time.time())
    assert chosen(sel) == ["one.log"]
    assert reasons(sel)["two.log"].startswith("2 hard links")
    both = select([logs], Rules(["*.log"], include_hardlinked=True), time.time())
    assert chosen(both) == ["one.log", "two.log"]


def test_names_that_are_not_utf8_are_skipped_only_when_utf8_is_needed(tmp_path: Path) -> None:
    make(tmp_path / "good.log")
    odd = os.path.join(os.fsencode(tmp_path), b"bad\xe9.log")
    with open(odd, "wb"):
        pass
    os.utime(odd, (OLD, OLD))
    sel = select([tmp_path], Rules(["*.log"], utf8_names=True), time.time())
    assert chosen(sel) == ["good.log"]
    (skip,) = sel.skipped
    assert os.fsencode(skip.path) == odd and "not valid UTF-8" in skip.reason
    assert len(select([tmp_path], Rules(["*.log"]), time.time()).candidates) == 2
