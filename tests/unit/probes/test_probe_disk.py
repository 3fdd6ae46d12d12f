"""The disk probe on real paths: df's figures, thresholds, bad paths, a hung filesystem."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config, ProbeConfig
from opsmedic.model import Event, Observation
from opsmedic.plugins import ProbeContext, Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner, disk, validate_probe_params
from opsmedic.probes.disk import PROBE as DISK_PROBE
from opsmedic.probes.disk import Params as DiskParams
from opsmedic.probes.disk import Usage
from opsmedic.probes.disk import check as check_disk


def context(timeout: float = 10.0) -> ProbeContext:
    return ProbeContext(ManualClock(), structlog.get_logger(), timeout=timeout)


async def check(ctx: ProbeContext | None = None, **params: Any) -> list[Observation]:
    return await check_disk(DiskParams.model_validate(params), ctx or context())


def problems(params: dict[str, Any]) -> dict[str, str]:
    return dict(validate_probe_params(DISK_PROBE, params))


@pytest.fixture
def df(tmp_path: Path) -> dict[str, str]:
    """What GNU df says about tmp_path's filesystem, column by column."""
    columns = "source,fstype,size,used,avail,itotal,iused,target"
    out = subprocess.run(
        ["df", "-B1", f"--output={columns}", str(tmp_path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(zip(columns.split(","), out.splitlines()[1].split(), strict=True))


async def test_reading_is_what_df_shows(tmp_path: Path, df: dict[str, str]) -> None:
    [obs] = await check(paths=[str(tmp_path)])
    assert obs.ok
    assert obs.resource == str(tmp_path)
    assert obs.details["total_bytes"] == int(df["size"])
    used, avail = int(df["used"]), int(df["avail"])
    # Other writers share this filesystem: the figures move a little between two looks.
    assert obs.value == pytest.approx(100 * used / (used + avail), abs=1.0)
    assert obs.details["free_bytes"] == pytest.approx(avail, rel=0.05)
    inodes = 100 * int(df["iused"]) / int(df["itotal"]) if int(df["itotal"]) else None
    assert obs.details["inodes_used_percent"] == pytest.approx(inodes, abs=1.0)
    assert obs.details["used_percent"] == obs.value
    assert obs.labels["used_percent"] == str(obs.value)
    assert (obs.details["mountpoint"], obs.details["device"], obs.details["fstype"]) == (
        df["target"], df["source"], df["fstype"],
    )  # fmt: skip
    assert obs.labels["mountpoint"] == df["target"]
    assert "% used" in obs.message


@pytest.mark.parametrize(
    ("threshold", "fragment"),
    [
        ({"max_used_percent": 1e-9}, "% used > 1e-09%"),
        ({"min_free_bytes": "1PiB"}, "free < 1.0 PiB"),
        ({"max_inodes_used_percent": 1e-9}, "% inodes used > 1e-09%"),
    ],
)
async def test_each_threshold_fires_and_says_which(
    tmp_path: Path, threshold: dict[str, Any], fragment: str
) -> None:
    (tmp_path / "f").write_text("x")  # at least one block and one inode in use
    [obs] = await check(paths=[str(tmp_path)], **threshold)
    assert not obs.ok
    assert fragment in obs.message
    assert obs.details["used_percent"] == obs.value  # the value stays the used %


async def test_nothing_under_its_thresholds_fires(tmp_path: Path) -> None:
    [obs] = await check(
        paths=[str(tmp_path)], max_used_percent=100, max_inodes_used_percent=100, min_free_bytes=0
    )
    assert obs.ok


async def test_a_bad_path_is_a_failing_reading_and_the_others_still_come(tmp_path: Path) -> None:
    missing, not_dir = tmp_path / "missing", tmp_path / "file" / "below"
    (tmp_path / "file").write_text("x")
    first, second, third = await check(paths=[str(missing), str(tmp_path), str(not_dir)])
    assert (first.ok, first.value, first.labels) == (False, None, {"error": "ENOENT"})
    assert first.message == f"cannot check {missing}: No such file or directory"
    assert first.resource == str(missing)
    assert second.ok and second.resource == str(tmp_path)
    assert (third.ok, third.labels) == (False, {"error": "ENOTDIR"})
    assert "Not a directory" in third.message


def test_usage_without_inode_counts_checks_only_space() -> None:
    usage = Usage(used_percent=10.0, free_bytes=10, total_bytes=100, inodes_used_percent=None,
                  mountpoint="/data")  # fmt: skip
    obs = disk.observe(DiskParams(paths=["/data"]), "/data", usage, {"/data": ("/dev/x", "btrfs")})
    assert obs.ok
    assert obs.details["inodes_used_percent"] is None
    assert (obs.labels["device"], obs.labels["fstype"]) == ("/dev/x", "btrfs")


@pytest.fixture
def hung_statvfs(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, list[str]]]:
    """measure() blocks like statvfs on a dead NFS server until the event is set."""
    release, calls = threading.Event(), []
    real = disk.measure

    def measure(path: str) -> Usage:
        calls.append(path)
        release.wait()
        return real(path)

    monkeypatch.setattr(disk, "measure", measure)
    try:
        yield release, calls
    finally:
        release.set()  # never leave a thread behind


async def test_a_hung_filesystem_is_reported_and_never_asked_twice(
    tmp_path: Path, hung_statvfs: tuple[threading.Event, list[str]]
) -> None:
    release, calls = hung_statvfs
    ctx = context(timeout=0.05)
    for _ in range(3):
        [obs] = await check(ctx, paths=[str(tmp_path)])
        assert (obs.ok, obs.labels) == (False, {"error": "no_answer"})
        assert "no answer from its filesystem" in obs.message
    assert calls == [str(tmp_path)]  # one stuck call, waited on by every later check
    release.set()
    ctx.timeout = 10.0
    [obs] = await check(ctx, paths=[str(tmp_path)])
    assert obs.ok
    [obs] = await check(ctx, paths=[str(tmp_path)])
    assert len(calls) == 2  # answered: the next check asks afresh
    assert ctx.state["statvfs"] == {}


def test_defaults() -> None:
    p = DiskParams.model_validate({"paths": ["/var/log"]})
    assert (p.max_used_percent, p.min_free_bytes, p.max_inodes_used_percent) == (85, None, 90)
    assert DiskParams.model_validate({"paths": ["/"], "min_free_bytes": "5GiB"}).min_free_bytes == (
        5 * 1024**3
    )


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({}, "paths", "Field required"),
        ({"paths": []}, "paths", "at least 1"),
        ({"paths": "/var"}, "paths", "valid list"),
        ({"paths": [""]}, "paths", "paths[0] is empty"),
        ({"paths": ["/a", "/b", "/a"]}, "paths", "paths[2] '/a' is listed twice"),
        ({"paths": ["/"], "max_used_percent": 0}, "max_used_percent", "greater than 0"),
        ({"paths": ["/"], "max_used_percent": 101}, "max_used_percent", "less than or equal"),
        ({"paths": ["/"], "max_inodes_used_percent": -1}, "max_inodes_used_percent", "greater"),
        ({"paths": ["/"], "min_free_bytes": "lots"}, "min_free_bytes", "byte string"),
        ({"paths": ["/"], "max_used": 90}, "max_used", "did you mean max_used_percent?"),
    ],
)
def test_bad_params_are_refused_with_the_field_named(
    params: dict[str, Any], field: str, fragment: str
) -> None:
    found = problems(params)
    assert field in found, found
    assert fragment in found[field]


def runner(*configs: dict[str, Any]) -> ProbeRunner:
    async def discard(events: list[Event]) -> None:
        return None

    return ProbeRunner(
        [ProbeConfig.model_validate(c) for c in configs],
        Registry(probes={s.name: s for s in BUILTIN_PROBES}),
        Config().base_dir,
        ManualClock(),
        discard,
        structlog.get_logger(),
        settings={},
    )


def test_the_disk_probe_checks_every_5s_unless_its_config_says() -> None:
    r = runner(
        {"name": "logs", "type": "disk", "params": {"paths": ["/"]}},
        {"name": "data", "type": "disk", "interval": "1m", "params": {"paths": ["/"]}},
        {"name": "web", "type": "http", "params": {"url": "http://127.0.0.1/"}},
    )
    assert r.intervals == {"logs": 5.0, "data": 60.0, "web": 30.0}


async def test_disk_readings_become_events_on_each_path(tmp_path: Path) -> None:
    r = runner({"name": "logs", "type": "disk", "params": {"paths": [str(tmp_path), "/nope"]}})
    here, nope = await r.run_once()
    assert (here.source, here.kind, here.resource, here.status) == (
        "disk", "logs", str(tmp_path), "resolved",
    )  # fmt: skip
    assert (nope.resource, nope.status, nope.labels["error"]) == ("/nope", "firing", "ENOENT")
    assert here.fingerprint != nope.fingerprint
