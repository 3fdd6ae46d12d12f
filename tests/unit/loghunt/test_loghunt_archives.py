"""Archives hunted member by member: members compressed themselves, odd members, corruption."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from opsmedic.archive.formats import Format, open_writer
from opsmedic.loghunt import HuntOptions, hunt_paths
from opsmedic.loghunt.archives import SKIPPED_NOTES

MEMBERS = {
    "logs/app.log": b"INFO a\nERROR plain 1\n",
    "logs/app.log.1.gz": gzip.compress(b"ERROR gz 2\n"),
    "logs/app.log.2.zst": zstandard.compress(b"ERROR zst 3\n"),
}


def _opsmedic_archive(path: Path, fmt: Format, members: dict[str, bytes]) -> Path:
    """Written by the same writer archive_logs uses."""
    with path.open("wb") as out:
        writer = open_writer(fmt, out, threads=1)
        for name, data in members.items():
            writer.add(io.BytesIO(data), name, len(data), 0, 0o644)
        writer.close()
    return path


def _found(path: Path) -> list[tuple[str, str]]:
    report = hunt_paths([str(path)], HuntOptions(context=0))
    return [(e.first.source, e.lines[0].text) for e in report.events]


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz", "zip"])
def test_members_compressed_themselves_are_decompressed(tmp_path: Path, fmt: Format) -> None:
    archive = _opsmedic_archive(tmp_path / f"a.{fmt}", fmt, MEMBERS)
    assert _found(archive) == [
        (f"{archive}:logs/app.log", "ERROR plain 1"),
        (f"{archive}:logs/app.log.1.gz", "ERROR gz 2"),
        (f"{archive}:logs/app.log.2.zst", "ERROR zst 3"),
    ]


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz", "zip"])
def test_the_bytes_read_of_an_archive_are_its_raw_bytes(tmp_path: Path, fmt: Format) -> None:
    """Each member is credited with the archive's bytes read for it (a zip's were 0: its
    file stood at the central directory's end when the member began)."""
    noise = random.Random(17).randbytes(300_000).hex().encode()  # incompressible enough
    members = {"a.log": noise + b"\nERROR a\n", "b.log": noise[::-1] + b"\nERROR b\n"}
    archive = _opsmedic_archive(tmp_path / f"a.{fmt}", fmt, members)
    report = hunt_paths([str(archive)], HuntOptions(context=0))
    assert [e.key for e in report.events] == ["ERROR a", "ERROR b"]
    size = archive.stat().st_size
    assert size * 0.9 <= report.stats.bytes_read <= size


def test_a_tgz_is_a_tar_gz(tmp_path: Path) -> None:
    archive = _opsmedic_archive(tmp_path / "a.tgz", "tar.gz", {"x.log": b"ERROR tgz\n"})
    assert _found(archive) == [(f"{archive}:x.log", "ERROR tgz")]


def test_non_regular_members_are_skipped_with_a_note(tmp_path: Path) -> None:
    tar_path = tmp_path / "odd.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        directory = tarfile.TarInfo("dir")
        directory.type = tarfile.DIRTYPE
        link = tarfile.TarInfo("dir/link.log")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        data = b"ERROR in tar\n"
        log = tarfile.TarInfo("dir/app.log")
        log.size = len(data)
        for info, content in ((directory, None), (link, None), (log, io.BytesIO(data))):
            tar.addfile(info, content)
    zip_path = tmp_path / "odd.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("dir/", b"")
        symlink = zipfile.ZipInfo("dir/link.log")
        symlink.external_attr = 0o120777 << 16
        zf.writestr(symlink, "/etc/passwd")
        zf.writestr("dir/app.log", b"ERROR in zip\n")
    report = hunt_paths([str(tar_path), str(zip_path)], HuntOptions(context=0))
    assert [e.lines[0].text for e in report.events] == ["ERROR in tar", "ERROR in zip"]
    assert report.stats.sources == [f"{tar_path}:dir/app.log", f"{zip_path}:dir/app.log"]
    assert report.stats.notes == [
        f"{tar_path}:dir: not a regular file, skipped",
        f"{tar_path}:dir/link.log: not a regular file, skipped",
        f"{zip_path}:dir/: not a regular file, skipped",
        f"{zip_path}:dir/link.log: not a regular file, skipped",
    ]


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz", "zip"])
def test_a_corrupt_archive_is_a_note_and_the_hunt_goes_on(tmp_path: Path, fmt: Format) -> None:
    bad = tmp_path / f"bad.{fmt}"
    bad.write_bytes(b"not an archive at all\n" * 50)
    good = tmp_path / "good.log"
    good.write_bytes(b"ERROR after\n")
    report = hunt_paths([str(bad), str(good)], HuntOptions(context=0))
    assert [e.lines[0].text for e in report.events] == ["ERROR after"]
    (note,) = report.stats.notes
    assert note.startswith(f"{bad}: unreadable after ")


@pytest.mark.parametrize("fmt", ["tar.zst", "tar.gz", "zip"])
def test_a_cut_archive_keeps_what_came_before_the_cut(tmp_path: Path, fmt: Format) -> None:
    first = b"".join(b"ERROR first %d\n" % (i % 2) for i in range(20_000))
    second = random.Random(0).randbytes(1 << 19)  # incompressible: the cut falls inside it
    whole = _opsmedic_archive(tmp_path / f"whole.{fmt}", fmt, {"a.log": first, "b.log": second})
    cut = tmp_path / f"cut.{fmt}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) * 3 // 4])
    after = tmp_path / "after.log"
    after.write_bytes(b"ERROR after\n")
    report = hunt_paths([str(cut), str(after)], HuntOptions(context=0))
    texts = [e.lines[0].text for e in report.events]
    if fmt == "zip":  # no central directory: zip cannot list its members at all
        assert texts == ["ERROR after"]
    else:  # a tar is read as a stream: the member before the cut is hunted whole
        assert texts == ["ERROR first 0", "ERROR after"]
        assert report.stats.occurrences == 20_001
    assert len(report.stats.notes) == 1
    assert "unreadable after" in report.stats.notes[0]


def test_an_encrypted_or_unreadable_zip_member_is_a_note_the_next_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("secret.log", b"ERROR hidden\n")
        zf.writestr("odd.log", b"ERROR odd method\n")
        zf.writestr("plain.log", b"ERROR plain\n")
    data = bytearray(path.read_bytes())
    first = data.index(b"PK\x01\x02")  # central directory entries, in member order
    second = data.index(b"PK\x01\x02", first + 1)
    data[first + 8] |= 1  # general purpose flags: encrypted
    data[second + 10 : second + 12] = (93).to_bytes(2, "little")  # method: zstd, unknown here
    path.write_bytes(bytes(data))
    report = hunt_paths([str(path)], HuntOptions(context=0))
    assert [e.lines[0].text for e in report.events] == ["ERROR plain"]
    assert [n.split(": ", 1)[0] for n in report.stats.notes] == [
        f"{path}:secret.log",
        f"{path}:odd.log",
    ]


def test_thousands_of_skipped_members_make_a_few_notes(tmp_path: Path) -> None:
    path = tmp_path / "dirs.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for n in range(1000):
            directory = tarfile.TarInfo(f"d{n}")
            directory.type = tarfile.DIRTYPE
            tar.addfile(directory)
    notes = hunt_paths([str(path)], HuntOptions()).stats.notes
    assert len(notes) == SKIPPED_NOTES + 2
    assert notes[-2:] == [
        f"{path}: holds no regular file",
        f"{path}: 980 more members not regular files, skipped",
    ]
