"""ZIP written as a stream: parallel deflate, data descriptors, Zip64 past 4 GiB, UTF-8 names.

Python's zipfile cannot take data compressed elsewhere, so this writes the records itself
(PKWARE APPNOTE 6.3). Sizes follow each member in a data descriptor, so `out` is never sought.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from opsmedic.archive.deflate import parallel_deflate
from opsmedic.archive.members import Member, check_new_member, copy_member

LOCAL = struct.Struct("<IHHHHHIIIHH")
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
ZIP64_END = struct.Struct("<IQHHIIQQQQ")
ZIP64_LOCATOR = struct.Struct("<IIQI")
END = struct.Struct("<IHHHHIIH")
LOCAL_SIG, CENTRAL_SIG, DESCRIPTOR_SIG = 0x04034B50, 0x02014B50, 0x08074B50
ZIP64_END_SIG, ZIP64_LOCATOR_SIG, END_SIG = 0x06064B50, 0x07064B50, 0x06054B50
ZIP64_EXTRA = 0x0001
FLAGS = 0x0808  # bit 3: sizes in a descriptor after the data; bit 11: names are UTF-8
DEFLATED = 8
DEFLATE_VERSION, ZIP64_VERSION = 20, 45  # "version needed to extract" (APPNOTE 4.4.3)
UNIX = 3 << 8  # "version made by" high byte: unzip then restores the mode bits
FULL32, FULL16 = 0xFFFFFFFF, 0xFFFF  # a field at its maximum means "see the Zip64 record"
ZIP64_LIMIT = FULL32


def dos_time(mtime: float) -> tuple[int, int]:
    """MS-DOS (time, date) in local time, clamped to the years 1980-2107 it can express."""
    year, month, day, hour, minute, second = time.localtime(mtime)[:6]
    if year < 1980:
        year, month, day, hour, minute, second = 1980, 1, 1, 0, 0, 0
    elif year > 2107:
        year, month, day, hour, minute, second = 2107, 12, 31, 23, 59, 58
    return hour << 11 | minute << 5 | second // 2, (year - 1980) << 9 | month << 5 | day


@dataclass(slots=True)
class _Record:
    """What the central directory needs about one member, filled in as its bytes go out."""

    name: bytes
    size: int
    mode: int
    dos: tuple[int, int]
    zip64: bool  # local header and descriptor carry 64-bit sizes
    crc: int = 0
    offset: int = 0
    data_start: int = 0
    compressed: int = 0

    @property
    def version(self) -> int:
        return ZIP64_VERSION if self.zip64 else DEFLATE_VERSION

    def local_header(self, offset: int) -> bytes:
        self.offset = offset
        extra = struct.pack("<HHQQ", ZIP64_EXTRA, 16, 0, 0) if self.zip64 else b""
        sizes = FULL32 if self.zip64 else 0
        header = LOCAL.pack(
            LOCAL_SIG, self.version, FLAGS, DEFLATED, *self.dos, 0, sizes, sizes,
            len(self.name), len(extra),
        )  # fmt: skip
        self.data_start = offset + len(header) + len(self.name) + len(extra)
        return header + self.name + extra

    def descriptor(self, offset: int) -> bytes:
        self.compressed = offset - self.data_start
        layout = "<IIQQ" if self.zip64 else "<IIII"
        return struct.pack(layout, DESCRIPTOR_SIG, self.crc, self.compressed, self.size)

    def central(self, limit: int) -> bytes:
        wide = [v for v in (self.size, self.compressed, self.offset) if v >= limit]
        extra = struct.pack(f"<HH{len(wide)}Q", ZIP64_EXTRA, 8 * len(wide), *wide) if wide else b""
        version = ZIP64_VERSION if self.zip64 or wide else DEFLATE_VERSION
        size, compressed, offset = (
            FULL32 if v >= limit else v for v in (self.size, self.compressed, self.offset)
        )
        header = CENTRAL.pack(
            CENTRAL_SIG, UNIX | version, version, FLAGS, DEFLATED, *self.dos, self.crc,
            compressed, size, len(self.name), len(extra), 0, 0, 0,
            (0o100000 | self.mode & 0o7777) << 16, offset,
        )  # fmt: skip
        return header + self.name + extra


class ZipWriter:
    """An ArchiveWriter for ZIP; `zip64_limit` is lowered only by tests of the Zip64 records."""

    def __init__(
        self, out: BinaryIO, level: int, threads: int, zip64_limit: int = ZIP64_LIMIT
    ) -> None:
        self._deflate = parallel_deflate(out, level, threads)
        self._limit = zip64_limit
        self._records: list[_Record] = []
        self._names: set[str] = set()

    def add(
        self,
        src: BinaryIO,
        arcname: str,
        size: int,
        mtime: float,
        mode: int,
        progress: Callable[[int], None] | None = None,
    ) -> Member:
        try:
            name = arcname.encode()
        except UnicodeEncodeError:
            raise ValueError(
                f"archive name {arcname!r} is not valid UTF-8, as zip names must be"
            ) from None
        check_new_member(arcname, size, self._names)
        # deflate can grow incompressible data a little; 5 % is zipfile's own margin
        record = _Record(name, size, mode, dos_time(mtime), size * 21 // 20 >= self._limit)
        with self._deflate.aborting():
            self._deflate.put(record.local_header)
            member = copy_member(src, arcname, size, self._deflate.feed, progress)
            record.crc = self._deflate.end_stream()[0]
            self._deflate.put(record.descriptor)
        self._records.append(record)
        return member

    def close(self) -> None:
        with self._deflate.aborting():
            self._deflate.put(self._directory)
            self._deflate.close()

    def _directory(self, start: int) -> bytes:
        """Central directory and end records, once everything before them has been written."""
        central = b"".join(r.central(self._limit) for r in self._records)
        count, size = len(self._records), len(central)
        counted = FULL16 if count >= min(FULL16, self._limit) else count
        sized = FULL32 if size >= self._limit else size
        started = FULL32 if start >= self._limit else start
        zip64_end = b""
        if counted == FULL16 or FULL32 in (sized, started):
            zip64_end = ZIP64_END.pack(
                ZIP64_END_SIG,
                ZIP64_END.size - 12,
                UNIX | ZIP64_VERSION,
                ZIP64_VERSION,
                0,
                0,
                count,
                count,
                size,
                start,
            ) + ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIG, 0, start + size, 1)
        end = END.pack(END_SIG, 0, 0, counted, counted, sized, started, 0)
        return central + zip64_end + end
