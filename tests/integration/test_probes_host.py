"""The host probes on real filesystems and the real process table: a small tmpfs filled up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from opsmedic.clock import SystemClock
from opsmedic.model import Observation
from opsmedic.plugins import ProbeContext
from opsmedic.probes.disk import Params as DiskParams
from opsmedic.probes.disk import check as check_disk
from opsmedic.probes.process import Params as ProcessParams
from opsmedic.probes.process import check as check_processes
from tmpfs import tmpfs as mount_tmpfs

MiB = 1024 * 1024


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs with 64 inodes, mounted for this test only (skipped where not allowed)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with mount_tmpfs(mnt, "size=4m,nr_inodes=64,mode=0755"):
        yield mnt


def context() -> ProbeContext:
    return ProbeContext(SystemClock(), structlog.get_logger())


async def disk(path: Path, **params: Any) -> Observation:
    [obs] = await check_disk(DiskParams(paths=[str(path)], **params), context())
    return obs


def fill(path: Path, size: int) -> None:
    path.write_bytes(b"\0" * size)


async def test_a_filling_tmpfs_crosses_the_threshold_and_comes_back(tmpfs: Path) -> None:
    empty = await disk(tmpfs)
    assert empty.ok
    assert (empty.details["mountpoint"], empty.details["fstype"]) == (str(tmpfs), "tmpfs")
    assert empty.details["device"] == "opsmedic-test"
    assert empty.details["total_bytes"] == 4 * MiB

    fill(tmpfs / "app.log", int(3.6 * MiB))  # 90 %
    full = await disk(tmpfs / "app.log")  # any path on it reads its filesystem
    assert not full.ok
    assert full.value is not None and 85 < float(full.value) <= 100
    assert "% used > 85%" in full.message
    assert full.labels["mountpoint"] == str(tmpfs)

    (tmpfs / "app.log").unlink()
    assert (await disk(tmpfs)).ok


async def test_free_bytes_below_the_minimum_fires(tmpfs: Path) -> None:
    fill(tmpfs / "big", 3 * MiB)
    obs = await disk(tmpfs, min_free_bytes="2MiB", max_used_percent=100)
    assert not obs.ok
    assert obs.details["free_bytes"] == 1 * MiB
    assert obs.message == "1.0 MiB free < 2.0 MiB"


async def test_running_out_of_inodes_fires_with_space_to_spare(tmpfs: Path) -> None:
    for i in range(60):  # of 64 inodes, the root directory holding one
        (tmpfs / f"f{i}").touch()
    obs = await disk(tmpfs)
    assert not obs.ok
    assert obs.details["used_percent"] < 1
    assert obs.details["inodes_used_percent"] > 90
    assert "% inodes used > 90%" in obs.message


async def test_the_process_table_is_read_whole_and_bounded() -> None:
    # Every process has some RSS except kernel threads: a 1-byte bound makes most of the
    # host's processes (pid 1, other users', ours) over it; the report stays bounded.
    found = await check_processes(
        ProcessParams(max_cpu_percent=None, max_rss_bytes=1, max_observations=3), context()
    )
    assert len(found) == 3
    assert all(not o.ok and o.labels["over"] == "rss" for o in found)
    assert len({o.resource for o in found}) == 3
