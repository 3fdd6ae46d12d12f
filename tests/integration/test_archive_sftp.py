"""The SFTP archive destination against a real OpenSSH server: round trip, refusals, errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from opsmedic.archive.sftp import (
    READ_CHUNK,
    SFTPDestination,
    open_sftp_destination,
    parse_sftp_url,
)
from opsmedic.config.schema import Config
from opsmedic.errors import ActionError, RetryableError
from opsmedic.transport.ssh import HostRefused
from services import SSHServer, free_port


def config_for(sshd: SSHServer, **changes: Any) -> Config:
    return Config.model_validate({"ssh_hosts": {"backup": sshd.host_entry(**changes)}})


def payload(size: int) -> bytes:
    """Bytes that differ everywhere, so a misplaced block cannot go unnoticed."""
    blocks, n = [], 0
    while n < size:
        blocks.append(hashlib.sha256(n.to_bytes(8, "big")).digest() * 64)
        n += 32 * 64
    return b"".join(blocks)[:size]


@pytest.fixture
def remote(sshd: SSHServer) -> Iterator[tuple[str, Path]]:
    """A fresh directory name under the login user's home: (name, its local path)."""
    name = f"opsmedic-sftp-{uuid.uuid4().hex[:12]}"
    path = Path(pwd.getpwnam(sshd.user).pw_dir) / name
    yield name, path
    if path.exists():
        for sub in (path, *path.rglob("*")):  # undo a test's chmod 0555 before removing
            if sub.is_dir() and not sub.is_symlink():
                sub.chmod(0o755)
        shutil.rmtree(path)


@pytest.fixture
async def dest(sshd: SSHServer, remote: tuple[str, Path]) -> AsyncIterator[SFTPDestination]:
    opened = await open_sftp_destination(
        f"sftp://backup/~/{remote[0]}/archive", config_for(sshd), asyncio.get_running_loop()
    )
    yield opened
    await asyncio.to_thread(opened.close)


def upload(dest: SFTPDestination, name: str, data: bytes, piece: int) -> None:
    part = dest.open_part(name)
    for at in range(0, len(data), piece):
        part.write(data[at : at + piece])
    dest.sync_close(part)


def read_back(dest: SFTPDestination, name: str, piece: int) -> bytes:
    with dest.open_read(name) as src:
        chunks = []
        while chunk := src.read(piece):
            chunks.append(chunk)
    return b"".join(chunks)


async def test_write_read_commit_remove_round_trip(
    dest: SFTPDestination, remote: tuple[str, Path], sshd: SSHServer
) -> None:
    """A few MB written in small and odd pieces arrive intact, read back, commit and go."""
    data = payload(5 * 1024 * 1024 + 12345)
    local = remote[1] / "archive"
    assert dest.label == f"sftp://{sshd.user}@{sshd.host}:{sshd.port}/~/{remote[0]}/archive"

    await asyncio.to_thread(upload, dest, "a.tar.zst", data, 1000)
    assert (local / "a.tar.zst.part").read_bytes() == data
    assert await asyncio.to_thread(dest.size, "a.tar.zst.part") == len(data)
    assert await asyncio.to_thread(dest.size, "a.tar.zst") is None
    for piece in (7, 65536, READ_CHUNK + 3, -1):
        assert await asyncio.to_thread(read_back, dest, "a.tar.zst.part", piece) == data

    await asyncio.to_thread(dest.commit, "a.tar.zst")
    assert sorted(p.name for p in local.iterdir()) == ["a.tar.zst"]
    assert (local / "a.tar.zst").read_bytes() == data
    assert await asyncio.to_thread(dest.size, "a.tar.zst") == len(data)

    await asyncio.to_thread(dest.remove, "a.tar.zst")
    await asyncio.to_thread(dest.remove, "a.tar.zst")  # already gone: not an error
    assert list(local.iterdir()) == []


async def test_a_reader_seeks_like_a_local_file(dest: SFTPDestination) -> None:
    """zipfile reads the end first: seek and tell work, and the read-ahead follows."""
    data = payload(3 * READ_CHUNK // 2)
    await asyncio.to_thread(upload, dest, "z.zip", data, 1 << 20)

    def jump_around() -> None:
        with dest.open_read("z.zip.part") as src:
            assert src.seek(-10, os.SEEK_END) == len(data) - 10
            assert src.read() == data[-10:]
            src.seek(100)
            assert src.read(5) == data[100:105]
            assert src.tell() == 105
            src.seek(READ_CHUNK - 1)
            assert src.read(READ_CHUNK) == data[READ_CHUNK - 1 : 2 * READ_CHUNK - 1]

    await asyncio.to_thread(jump_around)


async def test_commit_never_replaces_an_archive(
    dest: SFTPDestination, remote: tuple[str, Path]
) -> None:
    """A second archive of the same name stays a part; the first one is untouched."""
    local = remote[1] / "archive"
    await asyncio.to_thread(upload, dest, "b.tar.gz", b"first", 100)
    await asyncio.to_thread(dest.commit, "b.tar.gz")
    await asyncio.to_thread(upload, dest, "b.tar.gz", b"second", 100)

    with pytest.raises(FileExistsError, match=r"b\.tar\.gz exists already"):
        await asyncio.to_thread(dest.commit, "b.tar.gz")
    assert (local / "b.tar.gz").read_bytes() == b"first"
    assert (local / "b.tar.gz.part").read_bytes() == b"second"


async def test_the_server_rename_itself_refuses_an_existing_name(
    dest: SFTPDestination, remote: tuple[str, Path]
) -> None:
    """Even past the exists check (a race), the SFTP rename does not overwrite."""
    local = remote[1] / "archive"
    await asyncio.to_thread(upload, dest, "c.zip", b"new", 100)
    (local / "c.zip").write_bytes(b"old")
    real_size, asked = dest.size, []

    def size_racing(name: str) -> int | None:
        """The exists check sees nothing; the archive appears right after it."""
        asked.append(name)
        return None if len(asked) == 1 else real_size(name)

    dest.size = size_racing  # type: ignore[method-assign]
    with pytest.raises(FileExistsError, match=r"c\.zip exists already"):
        await asyncio.to_thread(dest.commit, "c.zip")
    assert (local / "c.zip").read_bytes() == b"old"
    assert (local / "c.zip.part").read_bytes() == b"new"


async def test_open_part_refuses_an_existing_part(
    dest: SFTPDestination, remote: tuple[str, Path]
) -> None:
    await asyncio.to_thread(upload, dest, "d.tar.zst", b"kept", 100)
    with pytest.raises(FileExistsError, match=r"d\.tar\.zst\.part exists already"):
        await asyncio.to_thread(dest.open_part, "d.tar.zst")
    assert (remote[1] / "archive" / "d.tar.zst.part").read_bytes() == b"kept"


async def test_names_must_be_plain_file_names(dest: SFTPDestination) -> None:
    for bad in ("../escape", "a/b", "", ".."):
        with pytest.raises(ValueError, match="not a plain file name"):
            await asyncio.to_thread(dest.size, bad)


async def test_a_part_from_elsewhere_is_refused(dest: SFTPDestination, tmp_path: Path) -> None:
    with (tmp_path / "x").open("wb") as local, pytest.raises(TypeError, match="not opened by"):
        await asyncio.to_thread(dest.sync_close, local)


async def test_blocking_calls_from_the_loop_thread_fail_fast(dest: SFTPDestination) -> None:
    """Waiting on the loop from its own thread would hang until the timeout."""
    with pytest.raises(RuntimeError, match="event loop's own thread"):
        dest.size("x")


async def test_an_absolute_path_and_the_user_at_host_form(
    sshd: SSHServer, remote: tuple[str, Path]
) -> None:
    """sftp://user@host:port/abs finds the ssh_hosts entry by host, user and port."""
    url = f"sftp://{sshd.user}@{sshd.host}:{sshd.port}{remote[1]}/abs"
    dest = await open_sftp_destination(url, config_for(sshd), asyncio.get_running_loop())
    try:
        assert dest.label == url
        await asyncio.to_thread(upload, dest, "e.zip", b"abs", 10)
        await asyncio.to_thread(dest.commit, "e.zip")
    finally:
        await asyncio.to_thread(dest.close)
    assert (remote[1] / "abs" / "e.zip").read_bytes() == b"abs"


async def test_a_host_key_that_does_not_match_is_refused(
    sshd: SSHServer, tmp_path: Path, remote: tuple[str, Path]
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{sshd.host}]:{sshd.port} {other}")
    config = config_for(sshd, known_hosts=str(wrong))
    with pytest.raises(HostRefused, match=f"sftp://{sshd.user}@.*host key not trusted by {wrong}"):
        await open_sftp_destination(
            f"sftp://backup/~/{remote[0]}", config, asyncio.get_running_loop()
        )
    assert not remote[1].exists()


async def test_a_key_the_server_refuses_is_an_auth_failure(
    sshd: SSHServer, tmp_path: Path, remote: tuple[str, Path]
) -> None:
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    config = config_for(sshd, key_file=str(stranger))
    with pytest.raises(HostRefused, match=f"authentication failed for user {sshd.user}"):
        await open_sftp_destination(
            f"sftp://backup/~/{remote[0]}", config, asyncio.get_running_loop()
        )


async def test_a_closed_port_is_a_retryable_failure(sshd: SSHServer) -> None:
    port = free_port()
    with pytest.raises(RetryableError, match=rf"sftp://.*:{port}/~/x: cannot connect"):
        await open_sftp_destination(
            "sftp://backup/~/x", config_for(sshd, port=port), asyncio.get_running_loop()
        )


async def test_a_directory_the_user_may_not_create_is_refused(sshd: SSHServer) -> None:
    """/ is root's: the remote user cannot make a directory there."""
    url = f"sftp://backup/opsmedic-denied-{uuid.uuid4().hex[:8]}/x"
    with pytest.raises(
        ActionError, match=r"sftp://.*/x: creating the directory: Permission denied"
    ):
        await open_sftp_destination(url, config_for(sshd), asyncio.get_running_loop())


async def test_a_read_only_directory_refuses_a_part_clearly(
    dest: SFTPDestination, remote: tuple[str, Path]
) -> None:
    (remote[1] / "archive").chmod(0o555)
    with pytest.raises(ActionError, match=r"/archive: creating f\.zip\.part: Permission denied"):
        await asyncio.to_thread(dest.open_part, "f.zip")


@pytest.fixture
def tiny_filesystem(remote: tuple[str, Path], sshd: SSHServer) -> Iterator[tuple[str, Path]]:
    """A 1 MiB tmpfs the remote user owns, mounted under its home (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = remote[1] / "full"
    mount.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        user = pwd.getpwnam(sshd.user)
        os.chown(mount, user.pw_uid, user.pw_gid)
        yield f"{remote[0]}/full", mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


async def test_a_full_remote_disk_says_so(
    sshd: SSHServer, tiny_filesystem: tuple[str, Path]
) -> None:
    """OpenSSH reports ENOSPC as a bare "Failure"; the message says the disk is full."""
    dest = await open_sftp_destination(
        f"sftp://backup/~/{tiny_filesystem[0]}", config_for(sshd), asyncio.get_running_loop()
    )
    try:
        with pytest.raises(ActionError, match=r"/full: writing g\.tar\.zst\.part: remote .* full"):
            await asyncio.to_thread(upload, dest, "g.tar.zst", payload(3 << 20), 1 << 16)
        await asyncio.to_thread(dest.remove, "g.tar.zst.part")
    finally:
        await asyncio.to_thread(dest.close)
    assert list(tiny_filesystem[1].iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://backup/x", "not an sftp:// URL"),
        ("sftp:///x", "no host"),
        ("sftp://backup", "name the remote directory"),
        ("sftp://backup/", "name the remote directory"),
        ("sftp://backup/~", None),
        ("sftp://backup/a/../../etc", r"'\.\.' or a NUL byte"),
        ("sftp://backup/a%2F..%2Fb", r"'\.\.' or a NUL byte"),
        ("sftp://u:secret@backup/x", "no password in the URL"),
        ("sftp://backup:99999/x", "port is not a number"),
        ("sftp://backup/x?overwrite=1", "query or #fragment"),
    ],
)
def test_url_syntax(url: str, message: str | None) -> None:
    if message is None:
        assert parse_sftp_url(url).path == "."
    else:
        with pytest.raises(ValueError, match=message):
            parse_sftp_url(url)


def test_url_paths_absolute_or_under_the_login_directory() -> None:
    assert parse_sftp_url("sftp://b/srv//archive/").path == "/srv/archive"
    assert parse_sftp_url("sftp://b/~/logs/web%201").path == "logs/web 1"
    parsed = parse_sftp_url("sftp://ops@Storage.Internal:2222/x")
    assert (parsed.user, parsed.host, parsed.port) == ("ops", "storage.internal", 2222)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sftp://nobackup/x", r"no ssh_hosts entry is 'nobackup' .*entries: a, b"),
        ("sftp://other@127.0.0.1/x", r"no ssh_hosts entry is 'other@127\.0\.0\.1'"),
        ("sftp://127.0.0.1/x", r"127\.0\.0\.1 matches several ssh_hosts entries \(a, b\)"),
    ],
)
async def test_a_url_must_name_exactly_one_ssh_host(
    sshd: SSHServer, url: str, message: str
) -> None:
    config = Config.model_validate(
        {"ssh_hosts": {"a": sshd.host_entry(), "b": sshd.host_entry(user="someone-else")}}
    )
    with pytest.raises(ActionError, match=message):
        await open_sftp_destination(url, config, asyncio.get_running_loop())
