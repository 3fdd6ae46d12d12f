"""The path_size probe on real trees: du's figures, no symlink followed, bounds, permissions."""

from __future__ import annotations

import os
import pickle
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from opsmedic.archive import tree
from opsmedic.archive.tree import measure
from opsmedic.clock import SystemClock
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext
from opsmedic.probes.path_size import Params, check, walk_all
from tmpfs import tmpfs

NOBODY = 65534


async def size_of(path: Path, **params: Any) -> Observation:
    params.setdefault("max_bytes", "1GiB")
    ctx = ProbeContext(SystemClock(), structlog.get_logger(), base_dir=path.parent)
    [obs] = await check(Params(paths=[str(path)], **params), ctx)
    return obs


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sbx", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """logs/ with a big file in app/, small ones in old/, a hard link and a symlink to /."""
    root = tmp_path / "logs"
    (root / "app").mkdir(parents=True)
    (root / "old/deeper").mkdir(parents=True)
    (root / "app/big.log").write_bytes(b"x" * 300_000)
    for i in range(20):
        (root / f"old/deeper/{i}.log").write_bytes(b"y" * 1000)
    (root / "top.log").write_bytes(b"z" * 5000)
    os.link(root / "top.log", root / "old/top-again.log")
    (root / "everything").symlink_to("/")
    return root


async def test_a_tree_counts_as_du_does_and_names_its_largest(logs: Path) -> None:
    obs = await size_of(logs, max_bytes="200KB", top=2)
    assert not obs.ok and obs.value == du(logs)  # the symlink to / counted as a link, once
    assert obs.details["files"] == 23  # 20 + big + top + the symlink; the hard link once
    assert obs.message == f"{obs.details['bytes'] / 1024:.1f} KiB > 195.3 KiB"
    assert [e["path"] for e in obs.details["largest_files"]] == [
        f"{logs}/app/big.log",
        f"{logs}/top.log",
    ]
    assert [e["path"] for e in obs.details["largest_dirs"]] == [f"{logs}/app", f"{logs}/old"]
    assert obs.labels["complete"] == "true"


async def test_under_both_thresholds_is_ok_and_a_single_file_is_measured(logs: Path) -> None:
    obs = await size_of(logs, max_bytes="1MB", max_files=23)
    assert obs.ok, obs.message
    one = await size_of(logs / "app/big.log", max_bytes="100KB")
    assert not one.ok and one.value == 300_000 and one.details["files"] == 1
    many = await size_of(logs, max_bytes=None, max_files=22)
    assert not many.ok and many.message == "23 files > 22"


async def test_a_symlinked_path_is_never_followed(logs: Path) -> None:
    """A directory replaced by a symlink between checks: refused, not walked to where it leads."""
    assert (await size_of(logs)).ok
    moved = logs.parent / "moved"
    os.rename(logs, moved)
    os.symlink("/usr", logs)
    obs = await size_of(logs)
    assert not obs.ok and obs.value is None
    assert obs.message == f"cannot check {logs}: is a symlink (never followed)"
    assert obs.labels == {"error": "ELOOP"}
    missing = await size_of(logs.parent / "nowhere")
    assert missing.labels == {"error": "ENOENT"}


def test_a_subdirectory_swapped_for_a_symlink_during_the_walk_is_not_entered(
    logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listed as a directory, a symlink by the time it is entered: an error, never followed."""
    listed = tree._Walk._list

    def swap_after_listing(self: tree._Walk, frame: tree._Frame) -> None:
        listed(self, frame)
        if frame.depth == 0:
            shutil.rmtree(logs / "old")
            (logs / "old").symlink_to("/usr")

    monkeypatch.setattr(tree._Walk, "_list", swap_after_listing)
    size = measure(str(logs), max_entries=1000, max_seconds=60)
    assert size.complete and size.errors == 1
    assert size.errors_named == [
        {"path": f"{logs}/old", "error": "replaced during the walk (not entered)"}
    ]
    assert size.files < 1000  # /usr was not walked


def test_another_filesystem_is_not_crossed(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with tmpfs(mnt, "size=1m"):
        (mnt / "inside").write_bytes(b"i" * 100_000)
        size = measure(str(tmp_path), max_entries=1000, max_seconds=60)
    assert size.other_filesystems == 1 and size.other_filesystems_named == [str(mnt)]
    assert size.bytes < 100_000


async def test_a_tree_over_the_entry_bound_is_reported_incomplete(tmp_path: Path) -> None:
    for i in range(3000):
        (tmp_path / f"{i}.tmp").touch()
    obs = await size_of(tmp_path, max_entries=1000, max_files=10)
    assert not obs.ok and obs.value is None
    assert obs.message.startswith("incomplete: ")
    assert "stopped by max_entries (1000); already over: " in obs.message
    assert obs.details["complete"] is False and "bytes" not in obs.details
    assert 1000 <= obs.details["files_at_least"] < 3000
    assert obs.labels["stopped"] == "max_entries (1000)"


def test_a_tree_over_the_time_bound_is_reported_incomplete(tmp_path: Path) -> None:
    for i in range(2100):
        (tmp_path / f"{i}.tmp").touch()
    ticks = iter(range(10_000))
    size = measure(str(tmp_path), max_entries=10**6, max_seconds=1.5,
                   clock=lambda: float(next(ticks)))  # fmt: skip
    assert not size.complete and size.stopped == "time"
    [obs] = walk_all(Params(paths=[str(tmp_path)], max_files=1), "/", budget=0)
    assert obs.message.startswith("incomplete: ") and "stopped by time" in obs.message


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory `nobody` may enter (tmp_path's parents are root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="opsmedic-path-size-"))
    top.chmod(0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def _as_nobody(path: Path) -> Observation:
    """walk_all in a child that has become `nobody`, so permissions bite as for a real user."""
    obs: Observation = _nobody_does(
        lambda: walk_all(Params(paths=[str(path)], max_bytes="1GiB"), "/", 60)[0]
    )
    return obs


def _nobody_does(work: Callable[[], object]) -> Any:
    """`work()`'s result, run in a child that has become `nobody`."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(reader)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(writer, pickle.dumps(work()))
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as answer:
        data = answer.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


def test_unreadable_directories_inside_are_counted_and_named(shared: Path) -> None:
    for name in ("a", "secret", "b/hidden"):
        (shared / name).mkdir(parents=True)
        (shared / name / "f").write_bytes(b"f" * 10)
    (shared / "secret").chmod(0o700)
    (shared / "b/hidden").chmod(0o000)
    obs = _as_nobody(shared)
    assert obs.ok and obs.details["complete"] is True
    assert obs.details["errors"] == 2 and obs.labels["errors"] == "2"
    assert sorted(e["path"] for e in obs.details["errors_named"]) == [
        f"{shared}/b/hidden",
        f"{shared}/secret",
    ]
    assert {e["error"] for e in obs.details["errors_named"]} == {"Permission denied"}
    assert obs.message.endswith("; 2 entries unreadable")
    assert obs.details["files"] == 1  # a/f; the rest could not be listed
    (shared / "secret").chmod(0o000)
    shared.chmod(0o700)
    top = _as_nobody(shared)
    assert not top.ok and top.labels == {"error": "EACCES"}


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"paths": ["/var/log"]}, "set max_bytes, max_files or both"),
        ({"paths": [], "max_files": 1}, "at least 1 item"),
        ({"paths": ["/a", "/a"], "max_files": 1}, "paths[1] '/a' is listed twice"),
        ({"paths": ["/a\0"], "max_files": 1}, "paths[0] is empty or holds a NUL byte"),
        ({"paths": ["/a"], "max_bytes": "lots"}, "could not parse"),
        ({"paths": ["/a"], "max_files": 1, "top": 51}, "less than or equal to 50"),
        ({"paths": ["/a"], "max_files": 1, "max_seconds": "0s"}, "greater than 0"),
    ],
)
def test_bad_params_are_refused(params: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error.replace("[", r"\[").replace("(", r"\(")):
        Params.model_validate(params)


async def test_a_fifo_or_a_device_is_looked_at_never_opened(tmp_path: Path) -> None:
    """A path naming a fifo (nobody writing) or a device is one file; no read blocks on it."""
    os.mkfifo(tmp_path / "pipe")
    for path in (tmp_path / "pipe", Path("/dev/null")):
        obs = await size_of(path)
        assert obs.ok and obs.details["files"] == 1 and obs.value == 0


def random_tree(root: Path, seed: int) -> None:
    """Nested directories of files of random sizes, hard links within and across the walked
    directory's subdirectories, symlinks to / and to files, an empty directory."""
    rng = random.Random(seed)
    files: list[Path] = []
    dirs = [root]
    for i in range(rng.randrange(2, 7)):
        parent = rng.choice(dirs)
        if len(parent.relative_to(root).parts) < 3:
            (parent / f"d{i}").mkdir()
            dirs.append(parent / f"d{i}")
    for i in range(rng.randrange(20, 120)):
        where = rng.choice(dirs) / f"f{i}"
        where.write_bytes(b"x" * rng.choice([0, 1, rng.randrange(5000), rng.randrange(10**6)]))
        files.append(where)
    for i in range(rng.randrange(0, 8)):
        os.link(rng.choice(files), rng.choice(dirs) / f"h{i}")
    (rng.choice(dirs) / "up").symlink_to("/")
    (rng.choice(dirs) / "sibling").symlink_to(rng.choice(files))


def summary(size: tree.TreeSize) -> tuple[Any, ...]:
    """What two walks of one tree must agree on (a hard link's path depends on the order)."""
    return (
        size.bytes, size.files, size.dirs, size.complete, size.errors,
        sorted((e["path"], e["error"]) for e in size.errors_named),
        [e.bytes for e in size.largest_files],
        [(e.path, e.bytes) for e in size.largest_dirs],
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_parallel_workers_count_exactly_as_one_walk_and_du(tmp_path: Path, seed: int) -> None:
    random_tree(tmp_path, seed)
    one = measure(str(tmp_path), max_entries=10**6, max_seconds=60, workers=1)
    for workers in (2, 3, 8):
        many = measure(str(tmp_path), max_entries=10**6, max_seconds=60, workers=workers)
        assert summary(many) == summary(one)
    assert one.bytes == du(tmp_path) and one.complete and one.errors == 0


def test_a_file_linked_under_two_workers_subtrees_is_counted_once(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    (tmp_path / "a/big").write_bytes(b"x" * 100_000)
    os.link(tmp_path / "a/big", tmp_path / "b/big")
    os.link(tmp_path / "a/big", tmp_path / "c/big")
    size = measure(str(tmp_path), max_entries=1000, max_seconds=60, workers=3)
    assert size.files == 1 and size.bytes == du(tmp_path)
    [largest] = size.largest_files
    assert largest.bytes == 100_000 and largest.path in {f"{tmp_path}/{n}/big" for n in "abc"}


def test_unreadable_directories_are_counted_alike_by_parallel_workers(shared: Path) -> None:
    for name in ("a/in", "secret", "b/hidden", "c"):
        (shared / name).mkdir(parents=True)
        (shared / name / "f").write_bytes(b"f" * 10)
    (shared / "secret").chmod(0o700)
    (shared / "b/hidden").chmod(0o000)
    one, two = (
        _nobody_does(lambda w=w: measure(str(shared), max_entries=100, max_seconds=60, workers=w))
        for w in (1, 2)
    )
    assert summary(two) == summary(one)
    assert one.errors == 2 and one.files == 2


def test_the_entry_bound_is_shared_by_parallel_workers(tmp_path: Path) -> None:
    for d in range(3):
        (tmp_path / str(d)).mkdir()
        for i in range(3000):
            (tmp_path / str(d) / str(i)).touch()
    size = measure(str(tmp_path), max_entries=2500, max_seconds=60, workers=2)
    assert not size.complete and size.stopped == "max_entries (2500)"
    assert 2500 <= size.entries < 9004


def _raise(self: tree._Walk, root: tree._Frame) -> None:
    raise MemoryError


def _die(self: tree._Walk, root: tree._Frame) -> None:
    os._exit(3)


@pytest.mark.parametrize(("failure", "why"), [(_raise, "MemoryError()"), (_die, "exit status 768")])
def test_a_failed_worker_makes_the_walk_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Any, why: str
) -> None:
    """Never a silent partial number: a walker that fails or dies is reported, the walk
    incomplete."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(tree._Walk, "descend", failure)
    size = measure(str(tmp_path), max_entries=1000, max_seconds=60, workers=2)
    assert not size.complete and size.stopped == "a walker failed"
    assert size.errors_named[0] == {"path": str(tmp_path), "error": f"a walker failed: {why}"}


def test_workers_default_to_two_at_most() -> None:
    params = Params(paths=["/a"], max_files=1)
    assert params.workers == min(2, os.cpu_count() or 1)
    with pytest.raises(ValidationError, match="workers"):
        Params(paths=["/a"], max_files=1, workers=0)


def test_the_time_bound_holds_in_parallel_workers(tmp_path: Path) -> None:
    for d in range(2):
        (tmp_path / str(d)).mkdir()
        for i in range(2100):
            (tmp_path / str(d) / str(i)).touch()
    ticks = iter(range(10_000))
    size = measure(str(tmp_path), max_entries=10**6, max_seconds=1.5, workers=2,
                   clock=lambda: float(next(ticks)))  # fmt: skip
    assert not size.complete and size.stopped == "time" and size.files < 4200
