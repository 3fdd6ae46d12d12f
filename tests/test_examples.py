"""Every example in examples/ is a test: its config and rules load, and its story holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmedic.cli.engine import _replay
from opsmedic.model import Run, RunState
from opsmedic.runtime import build

EXAMPLES = sorted(
    p.parent for p in (Path(__file__).parent.parent / "examples").glob("*/opsmedic.yaml")
)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_and_rules_are_valid(example: Path) -> None:
    rt = build(example / "opsmedic.yaml", with_store=False)
    assert len(rt.ruleset) >= 1


def test_the_examples_are_there() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "01-restart-web-service", "02-remote-command-over-ssh", "03-replay-last-night",
        "04-archive-logs-before-the-disk-fills", "05-stop-a-runaway-process",
        "06-dns-failover", "07-renew-an-expiring-certificate",
    }  # fmt: skip


async def test_replaying_last_night_acts_once_on_the_host_that_stayed_full() -> None:
    """web1 stays above 90 % for 20 minutes: one clean-up; web2 flaps and never holds 5 min."""
    example = next(p for p in EXAMPLES if p.name == "03-replay-last-night")
    rt = build(example / "opsmedic.yaml", with_store=False, dry_run=True)
    would: list[Run] = []
    rt.engine.on_finished = would.append
    assert (await _replay(rt, example / "events.jsonl")).bad == []
    assert [(r.rule, r.target, r.state) for r in would] == [
        ("clean-tmp", "web1:/tmp", RunState.SKIPPED)
    ]
    assert would[0].steps[0].params == {"argv": ["systemd-tmpfiles", "--clean"]}


def _example(name: str) -> Path:
    return next(p for p in EXAMPLES if p.name == name)


async def _dry_replay(example: Path, events: list[dict[str, object]], tmp_path: Path) -> list[Run]:
    """Runs the example's rules would start for `events` (JSON lines), nothing executed."""
    import json

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    rt = build(example / "opsmedic.yaml", with_store=False, dry_run=True)
    would: list[Run] = []
    rt.engine.on_finished = would.append
    assert (await _replay(rt, path)).bad == []
    return would


async def test_a_full_log_disk_is_archived_after_30s_and_a_human_told_after_5m(
    tmp_path: Path,
) -> None:
    """/var/log/app above 85 % every 5 s for 6 minutes: one archive at 30 s, one notify at 5 m."""
    disk = {"source": "disk", "kind": "app-logs", "resource": "/var/log/app", "host": "web1",
            "value": 91.5}  # fmt: skip
    events = [{**disk, "time": 1763769600 + t} for t in range(0, 361, 5)]
    would = await _dry_replay(_example("04-archive-logs-before-the-disk-fills"), events, tmp_path)
    assert [r.rule for r in would] == ["archive-app-logs", "disk-still-full"]
    archive = would[0].steps[0].params
    assert archive["to"] == "sftp://backup/archive/web1/"
    assert archive["include"] == ["*.log.*", "*.log-*"]
    assert would[1].steps[0].params["title"] == "/var/log/app on web1 is still 91.5 % full"


async def test_a_runaway_process_is_reported_leashed_after_a_minute(tmp_path: Path) -> None:
    """A hog above 90 % for 70 s: one kill_process planned, for exactly that pid and start."""
    hog = {"source": "process", "kind": "cpu-hogs", "resource": "stress[4242]", "host": "web1",
           "value": 99.0, "labels": {"pid": "4242", "start_time": "1763760000.25",
           "user": "alice", "name": "stress"},
           "payload": {"details": {"cmdline": ["stress", "--cpu", "1"]}}}  # fmt: skip
    events = [{**hog, "time": 1763769600 + t} for t in range(0, 71, 10)]
    would = await _dry_replay(_example("05-stop-a-runaway-process"), events, tmp_path)
    assert [r.rule for r in would] == ["stop-runaway-process"]
    kill = would[0].steps[0].params
    assert kill == {"pid": "4242", "start_time": "1763760000.25", "grace": "10s"}
    assert "enforce" not in kill  # leashed: it reports what it would kill


async def test_dns_fails_over_once_on_down_and_back_once_on_up(tmp_path: Path) -> None:
    """Readings each second: only the two that change the state plan a run, one each way."""
    dns = {"source": "dns", "kind": "primary-dns", "resource": "10.0.0.53", "host": "web1"}
    states = ["up"] * 5 + ["down"] * 40 + ["up"] * 5
    events = []
    for t, state in enumerate(states):
        label = {"state": state}
        if t in (5, 45):  # went down, came back
            label["transition"] = {5: "down", 45: "up"}[t]
        status = "firing" if state == "down" else "resolved"
        events.append({**dns, "time": 1763769600 + t, "status": status, "labels": label})
    would = await _dry_replay(_example("06-dns-failover"), events, tmp_path)
    assert [r.rule for r in would] == ["dns-failover", "dns-failback"]
    switch = would[0].steps[0].params
    assert switch["direction"] == "failover"
    assert switch["resolv_conf"] == {"path": "/etc/resolv.conf", "primary": "10.0.0.53",
                                     "secondary": "10.0.0.54"}  # fmt: skip


async def test_a_critical_certificate_is_renewed_rechecked_and_reported(tmp_path: Path) -> None:
    cert = {"source": "tls_cert", "kind": "shop-cert", "resource": "shop.example.com:443",
            "host": "web1", "value": 9.5, "severity": "critical"}  # fmt: skip
    events = [{**cert, "time": 1763769600 + t * 3600} for t in range(3)]
    would = await _dry_replay(_example("07-renew-an-expiring-certificate"), events, tmp_path)
    assert [r.rule for r in would] == ["renew-shop-cert"]  # throttled: once in 12 h
    assert [s.action for s in would[0].steps] == ["run_command", "recheck", "notify"]
