"""Our archives as the standard tools see them: unzip, tar, gzip and zstd test and extract them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from opsmedic.archive.deflate import BLOCK
from opsmedic.archive.formats import Format, Member, open_writer, verify
from opsmedic.archive.zipwriter import ZipWriter

MTIME = 1_700_000_000
FILES = {
    "app/big.log": b"".join(b"%08d GET /api/orders 200 %d\n" % (i, i * 7) for i in range(160_000)),
    "app/empty.log": b"",
    "été/日本語-журнал.log": "ünïcødé ✓\n".encode() * 100,
    "deep/" + "n" * 120 + ".log": os.urandom(BLOCK + 7),
}
# the commands that test an archive, and the ones that extract it into the current directory
TOOLS: dict[Format, tuple[list[list[str]], list[str]]] = {
    "zip": ([["unzip", "-t", "-q"]], ["unzip", "-q"]),
    "tar.gz": ([["gzip", "-t"], ["tar", "-tzf"]], ["tar", "-xzf"]),
    "tar.zst": ([["zstd", "-t", "-q"], ["tar", "--zstd", "-tf"]], ["tar", "--zstd", "-xf"]),
}


def need(*commands: list[str]) -> None:
    for command in commands:
        if shutil.which(command[0]) is None:
            pytest.skip(f"{command[0]} is not installed; it is the reference reader here")


def write(fmt: Format, path: Path, *, zip64_limit: int | None = None) -> list[Member]:
    with path.open("wb") as out:
        writer = (
            ZipWriter(out, 6, 2, zip64_limit=zip64_limit)
            if zip64_limit is not None
            else open_writer(fmt, out)
        )
        members = []
        for name, data in FILES.items():
            source = path.parent / "source"
            source.write_bytes(data)
            with source.open("rb") as src:
                members.append(writer.add(src, name, len(data), MTIME, 0o640))
        writer.close()
    return members


def extracted(tmp_path: Path, command: list[str], archive: Path) -> Path:
    target = tmp_path / "extracted"
    target.mkdir()
    subprocess.run([*command, str(archive)], cwd=target, check=True, capture_output=True)
    return target


def check_tree(target: Path) -> None:
    found = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert found == FILES
    for name in FILES:
        st = (target / name).stat()
        assert (st.st_mode & 0o777, int(st.st_mtime)) == (0o640, MTIME), name


@pytest.mark.parametrize("fmt", ["zip", "tar.gz", "tar.zst"])
def test_the_standard_tools_accept_and_extract_our_archives(fmt: Format, tmp_path: Path) -> None:
    """Each tool's integrity test passes and extraction gives back every byte, mode and mtime."""
    tests, extract = TOOLS[fmt]
    need(*tests, extract)
    archive = tmp_path / f"logs.{fmt}"
    members = write(fmt, archive)
    with archive.open("rb") as src:
        verify(fmt, src, members)
    for command in tests:
        subprocess.run([*command, str(archive)], check=True, capture_output=True)
    check_tree(extracted(tmp_path, extract, archive))


@pytest.mark.parametrize("limit", [1, 2 * BLOCK])
def test_unzip_reads_zip64_records(limit: int, tmp_path: Path) -> None:
    """With the Zip64 limit lowered (every field, or only later offsets, past it) Info-ZIP's
    unzip still tests and extracts the archive: the records follow the specification."""
    need(["unzip"])
    archive = tmp_path / "logs.zip"
    members = write("zip", archive, zip64_limit=limit)
    with archive.open("rb") as src:
        verify("zip", src, members)
    subprocess.run(["unzip", "-t", "-q", str(archive)], check=True, capture_output=True)
    check_tree(extracted(tmp_path, ["unzip", "-q"], archive))
