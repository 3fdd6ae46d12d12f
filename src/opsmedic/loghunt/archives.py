"""Archives (.tar.zst, .tar.gz, .tgz, .zip) hunted member by member, streamed, never extracted."""

from __future__ import annotations

import functools
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, cast

from opsmedic.loghunt.compressed import DECODE_ERRORS, READ_BYTES, decompressing

if TYPE_CHECKING:
    from opsmedic.loghunt.sources import Source

ARCHIVE_SUFFIXES = (".tar.zst", ".tar.gz", ".tgz", ".zip")
SKIPPED_NOTES = 20  # members named as skipped; past that, only counted (notes stay short)
# A member that is not what it claims (a bad CRC, a cut tar) ends that member, or the rest
# of the archive, with a note: never the hunt.
_ARCHIVE_ERRORS: tuple[type[Exception], ...] = (
    *DECODE_ERRORS,
    tarfile.TarError,
    zipfile.BadZipFile,
    # zipfile's words for an encrypted member (RuntimeError) and a compression method it
    # cannot read (NotImplementedError): that member is skipped, with a note.
    RuntimeError,
    NotImplementedError,
)


def is_archive(path: Path) -> bool:
    """Whether `path` is named as one of the archives read member by member."""
    return path.name.endswith(ARCHIVE_SUFFIXES)


class ArchiveSource:
    """An archive opened up front, like a file; `members()` yields a source per regular file
    in it, in the archive's order, each to be read before the next is asked for (a tar is
    one stream). Its own notes say what was skipped and where the archive broke."""

    def __init__(self, path: Path, raw: BinaryIO, size: int) -> None:
        self.name = str(path)
        self.path = path
        self.raw = raw
        self.size: int | None = size
        self.notes: list[str] = []
        self.skipped = 0
        self.counted = 0  # raw bytes the members so far were credited with (a tar's stream)

    def members(self) -> Iterator[MemberSource]:
        """The regular-file members, as sources named `archive:member/path`."""
        try:
            if self.path.name.endswith(".zip"):
                yield from self._zip_members()
            else:
                yield from self._tar_members()
        except _ARCHIVE_ERRORS as exc:
            self.notes.append(f"{self.name}: unreadable after {self.raw.tell()} bytes: {exc}")
        if self.skipped > SKIPPED_NOTES:
            more = self.skipped - SKIPPED_NOTES
            self.notes.append(f"{self.name}: {more} more members not regular files, skipped")

    def _skip(self, member: str) -> None:
        self.skipped += 1
        if self.skipped <= SKIPPED_NOTES:
            self.notes.append(f"{self.name}:{member}: not a regular file, skipped")

    def _tar_members(self) -> Iterator[MemberSource]:
        # .tgz is a .tar.gz by another name; "r|" reads the tar as a stream, never seeking.
        name = self.path.name
        name = name.removesuffix(".tgz") + ".tar.gz" if name.endswith(".tgz") else name
        stream = cast(IO[bytes], decompressing(name, self.raw))  # tarfile only reads it
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            found = False
            for info in tar:
                if not info.isreg():
                    self._skip(info.name)
                    continue
                found = True
                content = tar.extractfile(info)
                assert content is not None  # a regular file always has content to read
                member = MemberSource(self, info.name, functools.partial(_same, content), None)
                yield member
                if member.broken:
                    return  # a tar is one stream: what broke the member broke the rest
            if not found:
                self.notes.append(f"{self.name}: holds no regular file")

    def _zip_members(self) -> Iterator[MemberSource]:
        with zipfile.ZipFile(self.raw) as archive:
            regular = []
            for info in archive.infolist():
                if _zip_regular(info):
                    regular.append(info)
                else:
                    self._skip(info.filename)
            if not regular:
                self.notes.append(f"{self.name}: holds no regular file")
            for info in regular:
                # Opened when read: a bad local header then ends that member only.
                opened = functools.partial(archive.open, info)
                yield MemberSource(self, info.filename, opened, info.header_offset)

    def close(self) -> None:
        self.raw.close()


def _same(content: IO[bytes]) -> IO[bytes]:
    return content


def _zip_regular(info: zipfile.ZipInfo) -> bool:
    # No file type bits (a zip made on another system): a file unless named as a directory.
    return not info.is_dir() and stat.S_IFMT(info.external_attr >> 16) in (0, stat.S_IFREG)


class MemberSource:
    """One member's bytes, decompressed when it is itself a .gz or .zst; its position is
    the archive's raw bytes read for it (what a progress bar over archives and the bytes
    read count): a zip member's from its header at `start`; a tar member's from where the
    one before ended (`start` None), since a tar's stream reads ahead of its members."""

    def __init__(
        self,
        archive: ArchiveSource,
        member: str,
        open_content: Callable[[], IO[bytes]],
        start: int | None,
    ) -> None:
        self.name = f"{archive.name}:{member}"
        self.member = member
        self.archive = archive
        self.open_content = open_content
        self.start = start
        self.size: int | None = None
        self.position = 0
        self.notes: list[str] = []
        self.broken = False

    def chunks(self) -> Iterator[bytes]:
        raw, archive = self.archive.raw, self.archive
        # A zip's raw file is where its central directory ended until the member is read.
        start = archive.counted if self.start is None else self.start
        try:
            content = cast(BinaryIO, self.open_content())
            stream = decompressing(self.member, content) or content
            while data := stream.read(READ_BYTES):
                self.position = max(0, raw.tell() - start)
                yield data
            self.position = max(0, raw.tell() - start)
        except _ARCHIVE_ERRORS as exc:
            self.broken = True
            self.notes.append(f"{self.name}: unreadable after {self.position} bytes: {exc}")
        finally:
            archive.counted = max(archive.counted, raw.tell())

    def close(self) -> None:
        """The archive holds the file: closed with it."""


def each_source(sources: Sequence[Source | ArchiveSource], notes: list[str]) -> Iterator[Source]:
    """The sources in order, an archive opened into its members as they come; an archive's
    own notes are added to `notes` once its members are read."""
    for source in sources:
        if isinstance(source, ArchiveSource):
            yield from source.members()
            notes.extend(source.notes)
        else:
            yield source
