"""ZIP read front to back for verification: inflate, CRC-32 and every record cross-checked.

zipfile needs to seek to the central directory at the end; a verifier reading an SFTP file
must not, so this walks local records in order, then checks the central directory and the
end records against what it saw. It accepts what ZipWriter writes, nothing fancier.
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from zlib_ng import zlib_ng as zlib

from opsmedic.archive.deflate import inflate
from opsmedic.archive.members import CHUNK, Entry, VerifyError
from opsmedic.archive.streams import ByteReader
from opsmedic.archive.zipwriter import (
    CENTRAL,
    CENTRAL_SIG,
    DEFLATE_VERSION,
    DEFLATED,
    DESCRIPTOR_SIG,
    END,
    END_SIG,
    FLAGS,
    FULL16,
    FULL32,
    LOCAL,
    LOCAL_SIG,
    UNIX,
    ZIP64_END,
    ZIP64_END_SIG,
    ZIP64_EXTRA,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIG,
    ZIP64_VERSION,
)

_UTF8 = 0x0800


@dataclass(frozen=True, slots=True)
class _Local:
    """A member as its local header and data descriptor described it."""

    name: bytes
    version: int  # needed to extract
    flags: int
    dos: tuple[int, int]
    crc: int
    compressed: int
    size: int
    offset: int


def read_zip(reader: ByteReader) -> Iterator[Entry | bytes]:
    """Members of a zip stream: an Entry, then its content; VerifyError on any inconsistency."""
    members: list[_Local] = []
    while True:
        offset = reader.pos
        signature = reader.exact(4, "a zip record signature")
        if _u32(signature) != LOCAL_SIG:
            break
        members.append((yield from _member(reader, signature, offset)))
    _directory(reader, signature, members)


def _member(
    reader: ByteReader, signature: bytes, offset: int
) -> Generator[Entry | bytes, None, _Local]:
    header = LOCAL.unpack(signature + reader.exact(LOCAL.size - 4, "a zip local header"))
    _, version, flags, method, time, date, *deferred, name_size, extra_size = header
    raw_name = reader.exact(name_size, "a zip member name")
    name = raw_name.decode("utf-8" if flags & _UTF8 else "cp437", "replace")
    extra = reader.exact(extra_size, f"the local header of {name}")
    wide = _zip64_values(extra) is not None
    expected = (ZIP64_VERSION, FULL32) if wide else (DEFLATE_VERSION, 0)
    # CRC and sizes come in the descriptor; the header holds placeholders
    if (version, flags, method, *deferred) != (expected[0], FLAGS, DEFLATED, 0, *expected[1:] * 2):
        raise VerifyError(f"{name}: unexpected local header (version {version}, flags {flags:#x})")
    yield Entry(name)
    decompressor = zlib.decompressobj(-15)
    crc = size = 0
    start = reader.pos
    while not decompressor.eof:
        data = reader.some(CHUNK)
        if not data:
            raise VerifyError(f"archive truncated in the content of {name}")
        for out in inflate(decompressor, data):
            crc = zlib.crc32(out, crc)
            size += len(out)
            yield out
        reader.unread(len(decompressor.unused_data))
    compressed = reader.pos - start
    word = reader.exact(4, f"the data descriptor of {name}")
    if _u32(word) == DESCRIPTOR_SIG:  # the signature is optional in the format
        word = reader.exact(4, f"the data descriptor of {name}")
    layout = "<QQ" if wide else "<II"
    sizes = struct.unpack(
        layout, reader.exact(struct.calcsize(layout), f"the data descriptor of {name}")
    )
    said = (_u32(word), *sizes)
    if said != (crc, compressed, size):
        raise VerifyError(
            f"{name}: data descriptor says CRC {said[0]:08x}, {said[1]} compressed, {said[2]} "
            f"bytes; the content has CRC {crc:08x}, {compressed} compressed, {size} bytes"
        )
    return _Local(raw_name, version, flags, (time, date), crc, compressed, size, offset)


def _directory(reader: ByteReader, signature: bytes, members: list[_Local]) -> None:
    """Check the central directory and end records against the members read before them."""
    start = reader.pos - 4
    for local in members:
        if _u32(signature) != CENTRAL_SIG:
            raise VerifyError(f"the central directory ends before {_name(local)}")
        _central_entry(reader, signature, local)
        signature = reader.exact(4, "the central directory")
    if _u32(signature) == CENTRAL_SIG:
        raise VerifyError("the central directory lists more members than the archive holds")
    size = reader.pos - 4 - start
    wide: tuple[int, int, int] | None = None
    if _u32(signature) == ZIP64_END_SIG:
        record = ZIP64_END.unpack(signature + reader.exact(ZIP64_END.size - 4, "the Zip64 end"))
        _, length, _, _, disk, first_disk, here, count, cd_size, cd_start = record
        locator = ZIP64_LOCATOR.unpack(reader.exact(ZIP64_LOCATOR.size, "the Zip64 locator"))
        if (length, disk, first_disk, here, locator) != (
            ZIP64_END.size - 12, 0, 0, count, (ZIP64_LOCATOR_SIG, 0, start + size, 1)
        ):  # fmt: skip
            raise VerifyError("the Zip64 end record or its locator is inconsistent")
        wide = (count, cd_size, cd_start)
        signature = reader.exact(4, "the end of central directory record")
    if _u32(signature) != END_SIG:
        raise VerifyError(f"no end of central directory record at offset {reader.pos - 4}")
    end = END.unpack(signature + reader.exact(END.size - 4, "the end of central directory"))
    _, disk, first_disk, here, count, cd_size, cd_start, comment = end
    reader.exact(comment, "the zip comment")
    if wide is not None:
        here, count = (wide[0] if v == FULL16 else v for v in (here, count))
        cd_size = wide[1] if cd_size == FULL32 else cd_size
        cd_start = wide[2] if cd_start == FULL32 else cd_start
    if (disk, first_disk, here, count, cd_size, cd_start) != (
        0, 0, len(members), len(members), size, start
    ):  # fmt: skip
        raise VerifyError("the end of central directory record disagrees with the archive")
    if not reader.at_end():
        raise VerifyError(f"data after the end of the zip archive at offset {reader.pos}")


def _central_entry(reader: ByteReader, signature: bytes, local: _Local) -> None:
    entry = CENTRAL.unpack(signature + reader.exact(CENTRAL.size - 4, "the central directory"))
    _, made_by, version, flags, method, time, date, crc, compressed, size = entry[:10]
    name_size, extra_size, comment_size, disk, internal, external, offset = entry[10:]
    name = reader.exact(name_size, "the central directory")
    wide = iter(_zip64_values(reader.exact(extra_size, "the central directory")) or ())
    try:
        size, compressed, offset = (
            next(wide) if v == FULL32 else v for v in (size, compressed, offset)
        )
    except StopIteration:
        raise VerifyError(f"{_name(local)}: Zip64 field missing in the central directory") from None
    reader.exact(comment_size, "the central directory")
    said = (made_by, name, flags, (time, date), crc, compressed, size, offset)
    # only the permission bits are free: a regular file, no MS-DOS attributes
    regular = stat.S_ISREG(external >> 16) and not external & 0xFFFF
    if method != DEFLATED or disk or internal or not regular or said != (
        UNIX | version, local.name, local.flags, local.dos, local.crc, local.compressed, local.size,
        local.offset,
    ):  # fmt: skip
        raise VerifyError(f"{_name(local)}: the central directory disagrees with the local header")


def _zip64_values(extra: bytes) -> tuple[int, ...] | None:
    """The 64-bit values of the Zip64 extra field among `extra`'s fields, None if absent."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == ZIP64_EXTRA:
            data = extra[pos + 4 : pos + 4 + length]
            if length % 8 or len(data) != length:
                raise VerifyError("malformed Zip64 extra field")
            return struct.unpack(f"<{length // 8}Q", data)
        pos += 4 + length
    return None


def _u32(data: bytes) -> int:
    return int.from_bytes(data, "little")


def _name(local: _Local) -> str:
    return local.name.decode("utf-8" if local.flags & _UTF8 else "cp437", "replace")
