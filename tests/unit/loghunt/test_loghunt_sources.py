"""Files, globs and rotated generations: read once each, in order, whatever happens to them."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import zstandard

from opsmedic.errors import HuntInputError
from opsmedic.loghunt import HuntOptions, hunt, hunt_paths, open_files

T = TypeVar("T")


def _write(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_rotated_generations_are_read_oldest_first_compressed_or_not(tmp_path: Path) -> None:
    _write(tmp_path / "app.log", "ERROR newest")
    _write(tmp_path / "app.log.1", "ERROR one")
    (tmp_path / "app.log.2.gz").write_bytes(gzip.compress(b"ERROR two\n"))
    (tmp_path / "app.log.3.zst").write_bytes(zstandard.compress(b"ERROR three\n"))
    _write(tmp_path / "other.log", "ERROR other")
    report = hunt_paths([str(tmp_path / "*.log*")], HuntOptions(context=0))
    assert [(Path(e.first.source).name, e.lines[0].text) for e in report.events] == [
        ("app.log.3.zst", "ERROR three"),
        ("app.log.2.gz", "ERROR two"),
        ("app.log.1", "ERROR one"),
        ("app.log", "ERROR newest"),
        ("other.log", "ERROR other"),
    ]


@pytest.mark.parametrize(
    "names",
    [
        ["app.log-20240429.gz", "app.log-20240430", "app.log-20240501", "app.log"],
        ["app.log-2024043023.gz", "app.log-2024050100", "app.log-2024050101", "app.log"],
        ["app.log-2024-04-30.zst", "app.log-2024-05-01", "app.log"],
        ["app.log.20240430", "app.log.20240501", "app.log"],
    ],
)
def test_date_suffixed_generations_are_read_oldest_first(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        data = f"ERROR in {name}\n".encode()
        compress = {".gz": gzip.compress, ".zst": zstandard.compress}.get(Path(name).suffix)
        (tmp_path / name).write_bytes(compress(data) if compress else data)
    sources, _ = open_files([str(tmp_path / "app.log*")])
    for source in sources:
        source.close()
    assert [Path(s.name).name for s in sources] == names


def test_a_file_named_twice_or_by_a_link_is_read_once(tmp_path: Path) -> None:
    log = _write(tmp_path / "app.log", "ERROR once")
    os.link(log, tmp_path / "hard.log")
    report = hunt_paths([str(log), str(tmp_path / "*.log")], HuntOptions())
    assert [e.count for e in report.events] == [1]
    assert any("read once" in note for note in report.stats.notes)


@pytest.mark.parametrize(
    ("arg", "message"),
    [("missing.log", "no such file"), ("*.nothing", "no file matches"), (".", "is a directory")],
)
def test_paths_that_name_nothing_are_refused_by_name(
    tmp_path: Path, arg: str, message: str
) -> None:
    with pytest.raises(HuntInputError, match=message) as caught:
        hunt_paths([str(tmp_path / arg)], HuntOptions())
    assert str(tmp_path) in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_log_rotated_after_it_was_opened_is_read_as_it_was(tmp_path: Path) -> None:
    """Renamed and replaced while we read: the open file is still the one we meant, and the
    new file is not read in its place (no double counting)."""
    log = _write(tmp_path / "app.log", "ERROR before rotation", "INFO x")
    (source,), _ = open_files([str(log)])
    log.rename(tmp_path / "app.log.1")
    _write(log, "ERROR after rotation")
    try:
        report = hunt([source], HuntOptions(context=0))
    finally:
        source.close()
    assert [e.lines[0].text for e in report.events] == ["ERROR before rotation"]


def test_a_log_truncated_while_read_stops_there_and_says_so(tmp_path: Path) -> None:
    """copytruncate empties the file under us: what was read counts, nothing is read twice."""
    log = _write(tmp_path / "app.log", *[f"ERROR line {i}" for i in range(10)])
    (source,), _ = open_files([str(log)])
    os.truncate(log, 0)
    try:
        report = hunt([source], HuntOptions())
    finally:
        source.close()
    assert report.stats.occurrences == 0
    assert any("truncated while read" in note for note in report.stats.notes)


def test_a_log_that_grows_while_read_is_read_as_it_was_when_opened(tmp_path: Path) -> None:
    log = _write(tmp_path / "app.log", "ERROR first")
    (source,), _ = open_files([str(log)])
    with log.open("a") as f:
        f.write("ERROR written later\n")
    try:
        report = hunt([source], HuntOptions())
    finally:
        source.close()
    assert [e.lines[0].text for e in report.events] == ["ERROR first"]


def test_a_corrupt_archive_ends_that_source_only(tmp_path: Path) -> None:
    whole = gzip.compress(b"".join(b"ERROR in archive %d\n" % i for i in range(5000)))
    (tmp_path / "app.log.1.gz").write_bytes(whole[: len(whole) // 2])
    _write(tmp_path / "app.log", "ERROR still found")
    report = hunt_paths([str(tmp_path / "app.log*")], HuntOptions(context=0))
    assert report.events[-1].lines[0].text == "ERROR still found"
    assert any("app.log.1.gz: unreadable" in note for note in report.stats.notes)


def test_binary_garbage_and_invalid_utf8_do_not_stop_the_hunt(tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 50 + b"\xff\xfe\x00ERROR \xc3\x28 bad utf8\n" + os.urandom(3000)
    log = tmp_path / "app.log"
    log.write_bytes(garbage + b"\nERROR after garbage\n")
    report = hunt_paths([str(log)], HuntOptions(context=0))
    texts = [e.lines[0].text for e in report.events]
    assert "ERROR after garbage" in texts
    assert any("\ufffd" in t and "bad utf8" in t for t in texts)


def test_a_line_without_end_is_split_so_memory_stays_flat(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"x" * (3 << 20) + b" ERROR at the end\nERROR next\n")
    report = hunt_paths([str(log)], HuntOptions(context=0, chunk_bytes=1 << 20))
    assert report.stats.split_lines >= 2
    assert [e.lines[0].text for e in report.events][-1] == "ERROR next"


def _within(seconds: float, work: Callable[[], T]) -> T:
    """`work()` on a daemon thread, failing the test (not hanging it) if it blocks: opening a
    FIFO for reading waits for a writer for ever."""
    done: list[T] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            done.append(work())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    if failed:
        raise failed[0]
    return done[0]


def test_a_fifo_named_as_a_path_is_refused_naming_it(tmp_path: Path) -> None:
    fifo = tmp_path / "app.log"
    os.mkfifo(fifo)
    with pytest.raises(HuntInputError, match=r"app\.log: a FIFO \(named pipe\), not a regular"):
        _within(30, lambda: hunt_paths([str(fifo)], HuntOptions()))


def test_a_fifo_or_a_device_a_glob_matches_is_skipped_with_a_note(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.log")
    (tmp_path / "null.log").symlink_to("/dev/null")
    _write(tmp_path / "app.log", "ERROR still read")
    report = _within(30, lambda: hunt_paths([str(tmp_path / "*.log")], HuntOptions(context=0)))
    assert [e.lines[0].text for e in report.events] == ["ERROR still read"]
    assert report.stats.notes == [
        f"{tmp_path / 'null.log'}: a character device, not a regular file, skipped",
        f"{tmp_path / 'pipe.log'}: a FIFO (named pipe), not a regular file, skipped",
    ]


def test_a_fifo_named_like_an_archive_is_refused_too(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "old.tar.zst")
    with pytest.raises(HuntInputError, match=r"old\.tar\.zst: a FIFO"):
        _within(30, lambda: open_files([str(tmp_path / "old.tar.zst")]))


def test_a_regular_file_is_read_blocking_after_the_non_blocking_open(tmp_path: Path) -> None:
    log = _write(tmp_path / "app.log", "ERROR x")
    (source,), _ = open_files([str(log)])
    try:
        assert os.get_blocking(source.raw.fileno())
    finally:
        source.close()
