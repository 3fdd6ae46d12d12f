"""Archives on a secondary server over SFTP: a blocking Destination bridged to asyncssh's loop."""

from __future__ import annotations

import asyncio
import contextlib
import io
import posixpath
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast
from urllib.parse import unquote, urlsplit

import asyncssh

from opsmedic.archive.destination import Places
from opsmedic.config.schema import SSHHost
from opsmedic.errors import ActionError
from opsmedic.transport.ssh import connect

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

T = TypeVar("T")

# One bridge round trip per MiB written, per 4 MiB read; asyncssh splits each into parallel
# requests of the server's size limit, so throughput is not bound by the round-trip time.
WRITE_CHUNK = 1 << 20
READ_CHUNK = 4 << 20
_WRITES_IN_FLIGHT = 2  # the compressor fills the next chunk while the last one is sent
# Bounds one request (a chunk, an fsync, a rename), not a whole upload.
OP_TIMEOUT = 120.0
# OpenSSH answers ENOSPC with a bare "Failure": less free than this then means "disk full".
_NEARLY_FULL = 4 * WRITE_CHUNK


@dataclass(frozen=True, slots=True)
class SFTPURL:
    """An sftp:// URL taken apart; `path` is absolute, or relative to the login directory."""

    netloc: str
    host: str
    user: str | None
    port: int | None
    path: str


def parse_sftp_url(url: str) -> SFTPURL:
    """`sftp://NAME/dir`, `sftp://[user@]host[:port]/dir`; `/~/dir` is under the login dir."""
    parts = urlsplit(url)
    if parts.scheme != "sftp":
        raise ValueError("not an sftp:// URL")
    if parts.query or parts.fragment:
        raise ValueError("a ?query or #fragment has no meaning here")
    if parts.password is not None:
        raise ValueError("no password in the URL; give it in ssh_hosts (env or file)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ValueError("no host")
    path = unquote(parts.path)
    if path in ("", "/~"):
        path += "/"
    if path == "/":
        raise ValueError("name the remote directory: sftp://HOST/abs/dir or sftp://HOST/~/dir")
    words = path.split("/")
    if ".." in words or "\0" in path:
        raise ValueError("'..' or a NUL byte in the remote path")
    if words[1] == "~":
        path = posixpath.normpath("/".join(words[2:]) or ".")
    else:
        path = posixpath.normpath(path)
    return SFTPURL(parts.netloc.rpartition("@")[2], parts.hostname, parts.username, port, path)


def resolve_host(url: SFTPURL, hosts: Mapping[str, SSHHost]) -> tuple[str, SSHHost]:
    """The ssh_hosts entry a URL means: by name, else the one entry with its host/user/port."""
    if url.user is None and url.port is None and url.netloc in hosts:
        return url.netloc, hosts[url.netloc]
    found = [
        (name, h)
        for name, h in hosts.items()
        if h.host.lower() == url.host and url.user in (None, h.user) and url.port in (None, h.port)
    ]
    if len(found) == 1:
        return found[0]
    wanted = f"{url.user}@{url.netloc}" if url.user else url.netloc
    if not found:
        known = ", ".join(sorted(hosts)) or "none"
        raise ValueError(
            f"no ssh_hosts entry is {wanted!r} or has that host (entries: {known}); add one "
            "with its known_hosts and key_file or password"
        )
    names = ", ".join(name for name, _ in found)
    raise ValueError(f"{wanted} matches several ssh_hosts entries ({names}): use sftp://NAME/…")


async def open_sftp_destination(
    url: str, places: Places, loop: asyncio.AbstractEventLoop
) -> SFTPDestination:
    """Connect, check the host key, create the remote directory; blocking use goes via `loop`."""
    try:
        parsed = parse_sftp_url(url)
        _, host = resolve_host(parsed, places.ssh_hosts)
    except ValueError as exc:
        raise ActionError(f"destination {url}: {exc}") from None
    shown = parsed.path if parsed.path.startswith("/") else f"/~/{parsed.path}"
    shown = shown.removesuffix("/.")
    where = f"[{host.host}]" if ":" in host.host else host.host
    label = f"sftp://{host.user}@{where}:{host.port}{shown}"
    conn = await connect(host, places.base_dir, label)
    try:
        try:
            sftp = await conn.start_sftp_client()
        except (asyncssh.Error, OSError) as exc:
            raise ActionError(
                f"{label}: no SFTP session ({_reason(exc)}); the server needs an sftp subsystem"
            ) from None
        try:
            await _makedirs(sftp, parsed.path)
        except (asyncssh.Error, OSError) as exc:
            raise ActionError(f"{label}: creating the directory: {_reason(exc)}") from None
    except BaseException:
        conn.close()
        raise
    return SFTPDestination(label, conn, sftp, parsed.path, loop)


async def _makedirs(sftp: asyncssh.SFTPClient, path: str) -> None:
    """Like sftp.makedirs, which reports "No such file" where a parent may not be created."""
    if await sftp.isdir(path):
        return
    parent = posixpath.dirname(path)
    if parent not in ("", path):
        await _makedirs(sftp, parent)
    try:
        await sftp.mkdir(path)
    except asyncssh.SFTPFailure:
        if not await sftp.isdir(path):  # made meanwhile by another run: fine
            raise


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    return str(exc) or type(exc).__name__


class SFTPDestination:
    """Archives in one remote directory; blocking methods for worker threads, I/O on `loop`."""

    def __init__(
        self,
        label: str,
        conn: asyncssh.SSHClientConnection,
        sftp: asyncssh.SFTPClient,
        root: str,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.label = label
        self._conn = conn
        self._sftp = sftp
        self._root = root
        self._loop = loop
        self._closed = False

    def open_part(self, name: str) -> BinaryIO:
        part = f"{name}.part"
        with self.errors(f"creating {part}"):
            try:
                remote = self.run(partial(self._sftp.open, self._path(part), "xb"))
            except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
                # SFTPv3 has no "exists" status: O_EXCL's EEXIST comes back as "Failure".
                if self.size(part) is None:
                    raise
                raise FileExistsError(f"{self.label}/{part} exists already") from None
        return io.BufferedWriter(_RemoteFile(self, remote, part, size=0), WRITE_CHUNK)

    def sync_close(self, part: BinaryIO) -> None:
        raw = part.raw if isinstance(part, io.BufferedWriter) else None
        if not isinstance(raw, _RemoteFile) or raw.dest is not self:
            raise TypeError(f"{part!r} was not opened by {self.label}")
        try:
            part.flush()
            # Without fsync@openssh.com on the server, closing is all there is.
            with (
                self.errors(f"syncing {raw.name}"),
                contextlib.suppress(asyncssh.SFTPOpUnsupported),
            ):
                self.run(raw.remote.fsync)
        finally:
            part.close()

    def open_read(self, name: str) -> BinaryIO:
        with self.errors(f"opening {name}"):
            remote = self.run(partial(self._sftp.open, self._path(name), "rb"))
            try:
                size = self.run(remote.stat).size or 0
            except BaseException:
                self.run(remote.close)
                raise
        return io.BufferedReader(_RemoteFile(self, remote, name, size), READ_CHUNK)

    def size(self, name: str) -> int | None:
        with self.errors(f"looking up {name}"):
            try:
                return self.run(partial(self._sftp.stat, self._path(name))).size or 0
            except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
                return None

    def commit(self, name: str) -> None:
        part, final = f"{name}.part", self._path(name)
        if self.size(name) is not None:
            raise FileExistsError(f"{self.label}/{name} exists already")
        with self.errors(f"renaming {part} to {name}"):
            try:
                # Plain SFTP rename: OpenSSH does link() + unlink(), refusing an existing name.
                self.run(partial(self._sftp.rename, self._path(part), final))
            except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
                if self.size(name) is None:
                    raise
                raise FileExistsError(f"{self.label}/{name} exists already") from None
        with self.errors(f"syncing {name}"):
            self.run(partial(self._sync_entry, final))

    async def _sync_entry(self, final: str) -> None:
        """fsync the directory (OpenSSH opens one like a file), else the renamed file: on
        ext4 and XFS that commits the journal holding the rename too."""
        with contextlib.suppress(asyncssh.SFTPOpUnsupported):
            try:
                remote = await self._sftp.open(self._root, "rb")
            except asyncssh.SFTPError:
                remote = await self._sftp.open(final, "rb")
            async with remote:
                await remote.fsync()

    def remove(self, name: str) -> None:
        with self.errors(f"removing {name}"), contextlib.suppress(asyncssh.SFTPNoSuchFile):
            self.run(partial(self._sftp.remove, self._path(name)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.run(self._close)

    async def _close(self) -> None:
        self._sftp.exit()
        self._conn.close()
        await self._conn.wait_closed()

    def _path(self, name: str) -> str:
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"{name!r} is not a plain file name")
        return posixpath.join(self._root, name)

    def submit(self, call: Callable[[], Awaitable[T]]) -> Future[T]:
        """Start `call()` on the event loop; the caller must not be that loop's own thread."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            raise RuntimeError(f"{self.label}: blocking call from the event loop's own thread")

        async def on_loop() -> T:
            return await call()

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop)

    def wait(self, future: Future[T]) -> T:
        try:
            return future.result(OP_TIMEOUT)
        except TimeoutError:
            if not future.done():
                future.cancel()
                raise TimeoutError(f"no answer within {OP_TIMEOUT:g} s") from None
            raise

    def run(self, call: Callable[[], Awaitable[T]]) -> T:
        return self.wait(self.submit(call))

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Turn SFTP and connection errors into an ActionError naming destination and step."""
        try:
            yield
        except FileExistsError:
            raise
        except (asyncssh.Error, OSError) as exc:
            reason = _reason(exc)
            if isinstance(exc, asyncssh.SFTPFailure):
                reason = self._full(reason)
            raise ActionError(f"{self.label}: {doing}: {reason}") from None

    def _full(self, reason: str) -> str:
        """Say "disk full" when the generic failure comes with (almost) no space left."""
        try:
            vfs = self.run(partial(self._sftp.statvfs, self._root))
        except (asyncssh.Error, OSError):
            return reason
        free = vfs.bavail * vfs.frsize
        return f"remote filesystem full ({free} bytes free)" if free < _NEARLY_FULL else reason


class _RemoteFile(io.RawIOBase):
    """One open remote file: writes go out in the background, reads fetch the next block ahead.

    Wrapped in io.BufferedWriter / io.BufferedReader so that the pipeline sees a plain file.
    """

    def __init__(
        self, dest: SFTPDestination, remote: asyncssh.SFTPClientFile, name: str, size: int
    ) -> None:
        super().__init__()
        self.dest, self.remote, self.name = dest, remote, name
        self._read = cast("Callable[[int, int], Awaitable[bytes]]", remote.read)  # opened "b"
        self._size = size
        self._pos = 0
        self._writes: deque[Future[int]] = deque()
        self._ahead: tuple[int, int, Future[bytes]] | None = None  # offset, length, read

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.flush()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def write(self, b: ReadableBuffer) -> int:
        data = bytes(b)  # the buffer is reused by the caller once this returns
        self._drain(_WRITES_IN_FLIGHT - 1)
        self._writes.append(self.dest.submit(partial(self.remote.write, data, self._pos)))
        self._pos += len(data)
        self._size = max(self._size, self._pos)
        return len(data)

    def flush(self) -> None:
        self._drain(0)

    def _drain(self, keep: int) -> None:
        with self.dest.errors(f"writing {self.name}"):
            while len(self._writes) > keep:
                self.dest.wait(self._writes.popleft())

    def readinto(self, b: WriteableBuffer) -> int:
        with memoryview(b) as view, view.cast("B") as out:
            want = len(out)
            read = self._take_ahead(self._pos, want)
            with self.dest.errors(f"reading {self.name}"):
                if read is None:
                    read = self.dest.submit(partial(self._read, want, self._pos))
                data = self.dest.wait(read)
            got = len(data)
            out[:got] = data
        self._pos += got
        if got == want and self._pos < self._size:
            ahead = self.dest.submit(partial(self._read, want, self._pos))
            self._ahead = (self._pos, want, ahead)
        return got

    def readall(self) -> bytes:
        """RawIOBase's own reads 8 KiB per round trip."""
        chunks = []
        while chunk := self.read(READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def _take_ahead(self, offset: int, length: int) -> Future[bytes] | None:
        """The read-ahead if it is the block wanted; a stale one is finished and dropped."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if ahead[:2] == (offset, length):
            return ahead[2]
        # Cancelling could leave asyncssh's parallel block reads running past the close.
        with contextlib.suppress(Exception):
            self.dest.wait(ahead[2])
        return None

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self._take_ahead(-1, 0)
            try:
                with self.dest.errors(f"closing {self.name}"):
                    self.dest.run(self.remote.close)
            finally:
                super().close()
