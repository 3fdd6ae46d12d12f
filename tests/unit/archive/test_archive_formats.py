"""Archive formats: round trips, byte-exact verification, damage caught, bounded memory."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import random
import tarfile
import threading
import time
import zipfile
import zlib

import psutil
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmedic.archive.deflate import BLOCK, parallel_deflate
from opsmedic.archive.formats import (
    EXTENSIONS,
    FileChanged,
    Format,
    Member,
    VerifyError,
    open_writer,
    verify,
)
from opsmedic.archive.zipwriter import ZIP64_LIMIT, ZipWriter, dos_time

FORMATS: list[Format] = ["tar.zst", "tar.gz", "zip"]
MTIME = 1_700_000_000.0
Files = list[tuple[str, bytes]]


class Sink(io.RawIOBase):
    """A write-only, unseekable destination (like an SFTP upload): seeking fails the test."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


class Source(io.RawIOBase):
    """A read-only, unseekable file that hands out short reads of random sizes."""

    def __init__(self, data: bytes, seed: int = 0, max_read: int | None = None) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._rng = random.Random(seed)
        self._max = max_read

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        left = len(self._data) - self._pos
        n = left if size < 0 else min(size, left)
        if self._max is not None and n:
            n = self._rng.randint(1, min(n, self._max))
        piece = bytes(self._data[self._pos : self._pos + n])
        self._pos += n
        return piece


def logs(size: int, seed: int) -> bytes:
    """Log-like text with some random noise, so deflate and zstd have real work to do."""
    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        line = f"2024-05-01T12:{rng.randrange(60):02d} GET /api/{rng.randrange(10**6)} 200\n"
        lines.append(line.encode())
        total += len(lines[-1])
    return b"".join(lines)[:size]


def write(fmt: Format, files: Files, **options: int) -> tuple[bytes, list[Member]]:
    sink = Sink()
    writer = open_writer(fmt, sink, **options)  # type: ignore[arg-type]
    members = [writer.add(Source(data), name, len(data), MTIME, 0o640) for name, data in files]
    writer.close()
    return bytes(sink.data), members


def contents(fmt: Format, archive: bytes) -> dict[str, bytes]:
    """The members as Python's own tarfile/zipfile read them: an independent reader."""
    if fmt == "zip":
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            assert zf.testzip() is None
            return {info.filename: zf.read(info) for info in zf.infolist()}
    if fmt == "tar.zst":
        archive = unzstd(archive)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        return {ti.name: tf.extractfile(ti).read() for ti in tf}  # type: ignore[union-attr]


def unzstd(archive: bytes) -> bytes:
    """All the frames, decompressed by python-zstandard's reader rather than ours."""
    reader = zstandard.ZstdDecompressor().stream_reader(archive, read_across_frames=True)
    return reader.read()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BIG = logs(3 * BLOCK + 12_345, 1) + os.urandom(BLOCK // 2)
FILES: Files = [
    ("empty.log", b""),
    ("app/big.log", BIG),
    ("été/日本語-журнал.log", "ünïcødé ✓\n".encode() * 50),
    ("deep/" + "x" * 120 + ".log", b"long name\n"),
    ("tiny", b"1"),
]


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_round_trips_every_kind_of_file(fmt: Format) -> None:
    """Empty, multi-block, Unicode- and long-named files come back byte for byte."""
    archive, members = write(fmt, FILES)
    assert members == [Member(name, len(data), sha(data)) for name, data in FILES]
    verify(fmt, Source(archive, max_read=100_000), members)
    assert contents(fmt, archive) == dict(FILES)


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_stores_mode_and_mtime(fmt: Format) -> None:
    """The mode bits and the modification time travel with each member."""
    archive, _ = write(fmt, [("a.log", b"x")])
    if fmt == "zip":
        info = zipfile.ZipFile(io.BytesIO(archive)).getinfo("a.log")
        assert info.external_attr >> 16 == 0o100640
        assert info.date_time == time.localtime(MTIME)[:6]
        assert info.flag_bits & 0x800  # UTF-8 names
    else:
        raw = zlib.decompress(archive, 31) if fmt == "tar.gz" else unzstd(archive)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            (info,) = tf.getmembers()
        assert (info.mode, info.mtime, info.size) == (0o640, MTIME, 1)


def test_zip_clamps_times_to_what_dos_can_hold() -> None:
    """A 1970 file gets 1980-01-01 in a zip rather than a bogus date."""
    assert dos_time(0) == (0, 1 << 5 | 1)
    assert dos_time(2**40)[1] >> 9 == 2107 - 1980


@pytest.mark.parametrize("fmt", FORMATS)
def test_it_reports_progress_while_writing_and_verifying(fmt: Format) -> None:
    """progress(n) adds up to the member bytes, on the way in and on the way back."""
    sink = Sink()
    writer = open_writer(fmt, sink)
    written: list[int] = []
    member = writer.add(Source(BIG), "big.log", len(BIG), MTIME, 0o600, written.append)
    writer.close()
    checked: list[int] = []
    verify(fmt, Source(bytes(sink.data)), [member], checked.append)
    assert sum(written) == sum(checked) == len(BIG)
    assert len(written) > 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_growing_log_is_archived_up_to_the_size_seen(fmt: Format) -> None:
    """Bytes appended after selection are not read: the member is exactly `size` bytes."""
    sink = Sink()
    writer = open_writer(fmt, sink)
    member = writer.add(Source(b"selected\nappended later\n"), "app.log", 9, MTIME, 0o600)
    writer.close()
    assert member == Member("app.log", 9, sha(b"selected\n"))
    assert contents(fmt, bytes(sink.data)) == {"app.log": b"selected\n"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("level", [1, 9])
def test_levels_and_threads_change_speed_not_content(fmt: Format, threads: int, level: int) -> None:
    """Any level and thread count give an archive holding the same bytes."""
    archive, members = write(fmt, FILES[:3], level=level, threads=threads)
    verify(fmt, Source(archive), members)
    assert contents(fmt, archive) == dict(FILES[:3])


@st.composite
def archives(draw: st.DrawFn) -> tuple[Format, Files, int]:
    fmt = draw(st.sampled_from(FORMATS))
    alphabet = st.characters(codec="utf-8", exclude_characters="/\0", exclude_categories=["Cs"])
    names = draw(st.lists(st.text(alphabet, min_size=1, max_size=30), max_size=5, unique=True))
    chunks = st.binary(max_size=300) | st.builds(
        lambda b, n: b * n, st.binary(max_size=20), st.integers(0, 2000)
    )
    datas = draw(st.lists(chunks, min_size=len(names), max_size=len(names)))
    return fmt, list(zip(names, datas, strict=True)), draw(st.integers(0, 2**32))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(archives())
def test_any_names_contents_and_read_sizes_round_trip(case: tuple[Format, Files, int]) -> None:
    """Random names, random contents, sources and archives read in random short pieces."""
    fmt, files, seed = case
    files = [(name, data) for name, data in files if name not in (".", "..")]
    sink = Sink()
    writer = open_writer(fmt, sink, threads=2)
    members = [
        writer.add(Source(data, seed, max_read=97), name, len(data), MTIME, 0o600)
        for name, data in files
    ]
    writer.close()
    verify(fmt, Source(bytes(sink.data), seed, max_read=61), members)
    assert contents(fmt, bytes(sink.data)) == dict(files)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.binary(max_size=3000) | st.just(b"a" * 5000), max_size=8),
    st.integers(1, 4),
    st.integers(64, 4096),
)
def test_parallel_deflate_blocks_chain_into_one_stream(
    pieces: list[bytes], threads: int, block: int
) -> None:
    """pigz-style blocks, fed in any pieces, concatenate into one raw deflate stream."""
    out = Sink()
    deflate = parallel_deflate(out, 6, threads, block=block)  # type: ignore[arg-type]
    for piece in pieces:
        deflate.feed(piece)
    crc, size = deflate.end_stream()
    deflate.close()
    data = b"".join(pieces)
    assert zlib.decompress(bytes(out.data), -15) == data
    assert (crc, size) == (zlib.crc32(data), len(data))


# --- verification catches damage --------------------------------------------------------------

SMALL: Files = [("a.log", logs(700, 2)), ("b/é.log", b"second\n" * 30), ("c.log", b"")]


def flipped(archive: bytes, pos: int) -> bytes:
    damaged = bytearray(archive)
    damaged[pos] ^= 0x40
    return bytes(damaged)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_truncation_is_caught(fmt: Format) -> None:
    """An archive cut at any byte fails, whatever was cut: content, directory or checksum."""
    archive, members = write(fmt, SMALL)
    for cut in range(len(archive)):
        with pytest.raises(VerifyError):
            verify(fmt, Source(archive[:cut]), members)


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_flipped_byte_changes_content_unnoticed(fmt: Format) -> None:
    """A flip anywhere either fails verification or leaves every member's bytes as they were
    (gzip's mtime and OS bytes, a zip entry's "made by" version: nothing a reader uses)."""
    archive, members = write(fmt, SMALL)
    unnoticed = []
    for pos in range(len(archive)):
        damaged = flipped(archive, pos)
        try:
            verify(fmt, Source(damaged), members)
        except VerifyError:
            continue
        unnoticed.append(pos)
        assert contents(fmt, damaged) == dict(SMALL), pos
    assert len(unnoticed) < len(archive) // 20


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_a_flipped_byte_in_a_big_member_is_caught(fmt: Format, where: float) -> None:
    """Damage deep inside a multi-block member is found and the member named (or the stream)."""
    archive, members = write(fmt, [("big.log", BIG)])
    with pytest.raises(VerifyError, match=r"big\.log|stream|frame|CRC"):
        verify(fmt, Source(flipped(archive, int(len(archive) * where))), members)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_missing_member_is_named(fmt: Format) -> None:
    archive, members = write(fmt, SMALL)
    ghost = Member("ghost.log", 1, sha(b"x"))
    with pytest.raises(VerifyError, match=r"^ghost\.log: missing from the archive$"):
        verify(fmt, Source(archive), [*members, ghost])


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_extra_member_is_named(fmt: Format) -> None:
    archive, members = write(fmt, SMALL)
    with pytest.raises(VerifyError, match=r"^b/é\.log: in the archive but not expected"):
        verify(fmt, Source(archive), [members[0], members[2]])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_wrong_size_is_named(fmt: Format) -> None:
    archive, members = write(fmt, SMALL)
    wrong = dataclasses.replace(members[1], size=members[1].size + 1)
    with pytest.raises(VerifyError, match=r"^b/é\.log: 210 bytes in the archive, expected 211$"):
        verify(fmt, Source(archive), [members[0], wrong, members[2]])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_wrong_hash_is_named(fmt: Format) -> None:
    archive, members = write(fmt, SMALL)
    wrong = dataclasses.replace(members[0], sha256=sha(b"something else"))
    with pytest.raises(VerifyError, match=r"^a\.log: SHA-256 of the archived bytes differs$"):
        verify(fmt, Source(archive), [wrong, *members[1:]])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("extra", [b"\0", b"garbage after it"])
def test_data_after_the_archive_is_caught(fmt: Format, extra: bytes) -> None:
    """Nothing may follow the end (for zstd, anything after a frame must be another frame)."""
    archive, members = write(fmt, SMALL)
    with pytest.raises(VerifyError, match=r"after the end|zstd frame"):
        verify(fmt, Source(archive + extra), members)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("other", FORMATS)
def test_the_wrong_format_or_no_bytes_fail_cleanly(fmt: Format, other: Format) -> None:
    archive, members = write(other, SMALL)
    with pytest.raises(VerifyError):
        verify(fmt, Source(b""), members)
    if other != fmt:
        with pytest.raises(VerifyError):
            verify(fmt, Source(archive), members)


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_empty_archive_verifies_against_nothing(fmt: Format) -> None:
    archive, members = write(fmt, [])
    assert members == []
    verify(fmt, Source(archive), [])
    with pytest.raises(VerifyError, match="missing"):
        verify(fmt, Source(archive), [Member("a", 0, sha(b""))])


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_verify_leaves_no_thread_behind(fmt: Format) -> None:
    """The reader thread stops and is joined even when the check gives up at the first member."""
    archive, _ = write(fmt, [("big.log", BIG)])
    before = threading.active_count()
    with pytest.raises(VerifyError, match="not expected"):
        verify(fmt, Source(archive), [])
    assert threading.active_count() == before


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_source_that_ends_early_raises_file_changed(fmt: Format) -> None:
    """A file that shrank since selection is named with how much it gave; no thread leaks."""
    before = threading.active_count()
    writer = open_writer(fmt, Sink())
    writer.add(Source(b"ok"), "first.log", 2, MTIME, 0o600)
    with pytest.raises(FileChanged, match=r"^shrunk\.log: source ended after 5 of 9 bytes$"):
        writer.add(Source(b"12345"), "shrunk.log", 9, MTIME, 0o600)
    assert threading.active_count() == before


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("name", "size", "message"),
    [
        ("", 0, "must be relative"),
        ("/etc/passwd", 0, "must be relative"),
        ("a/../../b", 0, "must be relative"),
        ("nul\0name", 0, "must be relative"),
        ("dup.log", 0, "already in this archive"),
        ("neg.log", -1, "negative size"),
    ],
)
def test_bad_member_names_and_sizes_are_refused(
    fmt: Format, name: str, size: int, message: str
) -> None:
    writer = open_writer(fmt, Sink())
    writer.add(Source(b""), "dup.log", 0, MTIME, 0o600)
    with pytest.raises(ValueError, match=message):
        writer.add(Source(b""), name, size, MTIME, 0o600)
    writer.close()


@pytest.mark.parametrize(
    ("fmt", "options", "message"),
    [
        ("rar", {}, "unknown archive format 'rar'; known: tar.zst, tar.gz, zip"),
        ("tar.zst", {"level": 0}, "zstd level must be 1 to 22"),
        ("tar.zst", {"level": 23}, "zstd level must be 1 to 22"),
        ("tar.gz", {"level": 10}, "deflate level must be 0 to 9, not 10"),
        ("zip", {"level": -1}, "deflate level must be 0 to 9, not -1"),
        ("zip", {"threads": -1}, "threads must be 0"),
    ],
)
def test_bad_writer_options_are_refused(fmt: str, options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_writer(fmt, Sink(), **options)  # type: ignore[arg-type]


def test_zip_refuses_a_name_that_is_not_utf8() -> None:
    """A file name with undecodable bytes (surrogate-escaped) cannot be a UTF-8 zip name."""
    writer = open_writer("zip", Sink())
    with pytest.raises(ValueError, match="not valid UTF-8"):
        writer.add(Source(b""), "bad-\udcff.log", 0, MTIME, 0o600)
    writer.add(Source(b""), "bad-\udcff.log".encode(errors="replace").decode(), 0, MTIME, 0o600)
    writer.close()


def test_tar_keeps_a_name_that_is_not_utf8() -> None:
    """Tar stores raw name bytes, so an undecodable file name round-trips as it was."""
    archive, members = write("tar.gz", [("bad-\udcff.log", b"x")])
    verify("tar.gz", Source(archive), members)


def test_verify_accepts_only_archives_shaped_like_ours() -> None:
    """Foreign archives fail clearly rather than half-checked: a zip without data descriptors,
    a zstd stream without checksums, one huge zstd frame (as `zstd` itself writes)."""
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.log", b"x")
    with pytest.raises(VerifyError, match=r"^a\.log: unexpected local header"):
        verify("zip", Source(plain.getvalue()), [Member("a.log", 1, sha(b"x"))])
    tar, _ = write("tar.zst", [("a.log", b"x")])
    content = unzstd(tar)
    unchecked = zstandard.ZstdCompressor(write_checksum=False).compress(content)
    with pytest.raises(VerifyError, match="no checksum"):
        verify("tar.zst", Source(unchecked), [])
    big, _ = write("tar.zst", [("big.log", BIG)])
    single = zstandard.ZstdCompressor(write_checksum=True).compress(unzstd(big))
    with pytest.raises(VerifyError, match=r"zstd frame declares \d+ bytes, more than 2097152"):
        verify("tar.zst", Source(single), [])
    streamed = zstandard.ZstdCompressor(write_checksum=True, write_content_size=False)
    with pytest.raises(VerifyError, match="zstd frame without its content size"):
        verify("tar.zst", Source(streamed.compress(unzstd(big))), [])
    noise = zstandard.ZstdCompressor(write_checksum=True).compress(os.urandom(3 << 20))
    with pytest.raises(VerifyError, match="zstd frame over 2098176 bytes"):
        verify("tar.zst", Source(noise), [])


def test_verify_refuses_an_unknown_format_and_duplicate_expectations() -> None:
    with pytest.raises(ValueError, match="unknown archive format 'tar'"):
        verify("tar", Source(b""), [])  # type: ignore[arg-type]
    member = Member("a", 0, sha(b""))
    with pytest.raises(ValueError, match="distinct names"):
        verify("zip", Source(b""), [member, member])


def test_extensions_name_every_format() -> None:
    assert EXTENSIONS == {"tar.zst": ".tar.zst", "tar.gz": ".tar.gz", "zip": ".zip"}


# --- Zip64 ------------------------------------------------------------------------------------


def zip64(files: Files, limit: int) -> tuple[bytes, list[Member]]:
    sink = Sink()
    writer = ZipWriter(sink, 6, 2, zip64_limit=limit)  # type: ignore[arg-type]
    members = [writer.add(Source(data), name, len(data), MTIME, 0o600) for name, data in files]
    writer.close()
    return bytes(sink.data), members


@pytest.mark.parametrize("limit", [1, 300, ZIP64_LIMIT])
def test_zip64_records_are_written_past_the_limit_and_read_back(limit: int) -> None:
    """With the 4 GiB limit lowered, sizes, offsets and counts past it go to Zip64 records that
    zipfile and our verifier both read; below it the plain fields stay."""
    files = [*SMALL, ("big.log", BIG), ("after.log", b"z" * 100)]
    archive, members = zip64(files, limit)
    verify("zip", Source(archive), members)
    assert contents("zip", archive) == dict(files)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for info in zf.infolist():
            wide = max(info.file_size, info.compress_size, info.header_offset) >= limit
            assert (info.extra[:2] == b"\x01\x00") == wide, info
    assert (b"PK\x06\x06" in archive) == (limit < ZIP64_LIMIT)


def test_zip64_damage_in_the_end_records_is_caught() -> None:
    archive, members = zip64(SMALL, 1)
    end64 = archive.rindex(b"PK\x06\x06")
    for pos in range(end64, len(archive)):
        damaged = flipped(archive, pos)
        try:
            verify("zip", Source(damaged), members)
        except VerifyError:
            continue
        assert contents("zip", damaged) == dict(SMALL)


# --- memory -----------------------------------------------------------------------------------


class Repetitive(io.RawIOBase):
    """`size` bytes of one repeated line, made on the fly: the worst case for compression
    ratios. (Not zeros: fresh zero pages would not count in RSS until written.)"""

    LINE = b"2024-05-01T12:00:00 GET /health 200\n"

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = min(self._left, size)
        self._left -= n
        return (self.LINE * (n // len(self.LINE) + 1))[:n]


class Peak:
    """The highest RSS of this process seen while the block runs (sampled by a thread)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.base = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Counter(io.RawIOBase):
    """An unseekable sink that keeps only a hash of what it was given, and can replay nothing."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.chunks.append(bytes(b))
        return len(b)


@pytest.mark.parametrize(("fmt", "mib"), [("tar.zst", 512), ("tar.gz", 128), ("zip", 128)])
def test_memory_stays_bounded_on_huge_highly_compressible_files(fmt: Format, mib: int) -> None:
    """A repeated line compresses ~1000:1 (deflate) or far more (zstd), so a few compressed
    bytes stand for more than the budget: writing and reading back must stream, and the
    writer must not queue input faster than its threads compress. RSS grows < 64 MiB."""
    size = mib << 20
    out = Counter()
    with Peak() as peak:
        writer = open_writer(fmt, out)
        member = writer.add(Repetitive(size), "same.log", size, MTIME, 0o600)
        writer.close()
        verify(fmt, io.BytesIO(b"".join(out.chunks)), [member])
    assert member.size == size
    assert peak.peak - peak.base < 64 << 20
