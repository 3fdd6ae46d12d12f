"""Every example in examples/ is a test: its config and rules load, and its story holds."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from opsmedic.cli.replay import _replay
from opsmedic.model import Run, RunState
from opsmedic.runtime import build, build_registry

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/opsmedic.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_and_rules_are_valid(example: Path) -> None:
    rt = build(example / "opsmedic.yaml", with_store=False, registry=build_registry())
    assert len(rt.ruleset) >= 1


def test_the_examples_are_there() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "01-restart-web-service", "02-remote-command-over-ssh", "03-replay-last-night",
        "04-archive-logs-before-the-disk-fills", "05-stop-a-runaway-process",
        "06-dns-failover", "07-renew-an-expiring-certificate", "08-release-the-shortener",
        "09-kill-switch",
    }  # fmt: skip


README = EXAMPLES[0].parent / "README.md"


def documented_replay(example: Path) -> tuple[str, str]:
    """The replay command and the summary line the example's README section documents."""
    sections = re.split(r"^## ", README.read_text(), flags=re.M)
    section = next(s for s in sections if s.startswith(example.name + "\n"))
    command = re.search(r"^opsmedic replay .+$", section, flags=re.M)
    summary = re.search(r"^```\n(replayed .+)\n```$", section, flags=re.M)
    assert command and summary, f"README section {example.name}: no replay command or summary"
    return command[0], summary[1]


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_each_documented_replay_prints_its_documented_summary(example: Path) -> None:
    command, summary = documented_replay(example)
    args = shlex.split(command)[1:]
    assert "--dry-run" in args  # the examples' actions would touch this machine
    events = Path(next(a for a in args if a.endswith(".jsonl")))
    assert events.parent.name == example.name and (ROOT / events).is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    result = subprocess.run([sys.executable, "-m", "opsmedic", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == summary


def _example(name: str) -> Path:
    return next(p for p in EXAMPLES if p.name == name)


async def _dry_replay(example: Path) -> list[Run]:
    """Runs the example's rules would start for its events file, nothing executed."""
    rt = build(example / "opsmedic.yaml", with_store=False, dry_run=True, registry=build_registry())
    would: list[Run] = []
    rt.engine.on_finished = would.append
    assert (await _replay(rt, example / "events.jsonl")).bad == []
    return would


async def test_replaying_last_night_acts_once_on_the_host_that_stayed_full() -> None:
    """web1 stays above 90 % for 20 minutes: one clean-up; web2 flaps and never holds 5 min."""
    would = await _dry_replay(_example("03-replay-last-night"))
    assert [(r.rule, r.target, r.state) for r in would] == [
        ("clean-tmp", "web1:/tmp", RunState.SKIPPED)
    ]
    assert would[0].steps[0].params == {"argv": ["systemd-tmpfiles", "--clean"]}


async def test_a_failing_shop_is_restarted_three_times_then_a_human_paged() -> None:
    would = await _dry_replay(_example("01-restart-web-service"))
    assert [r.rule for r in would] == ["restart-shop"] * 4 + ["page-on-escalation"]
    assert would[3].message.startswith("limit reached: 3 runs within 3600s")
    assert would[4].steps[0].params["title"] == (
        "opsmedic stopped acting on web1:http://127.0.0.1:8080/health"
    )


async def test_a_stuck_worker_from_alertmanager_is_restarted_by_name_only() -> None:
    example = _example("02-remote-command-over-ssh")
    rt = build(example / "opsmedic.yaml", with_store=False, dry_run=True, registry=build_registry())
    would: list[Run] = []
    rt.engine.on_finished = would.append
    read = await _replay(rt, example / "alerts.jsonl", "alertmanager")
    assert [p.line for p in read.bad] == [8]
    argv = [r.steps[0].params["argv"] for r in would if r.steps]
    assert argv == [["sudo", "systemctl", "restart", "worker@orders-1.service"]] * 2
    assert "limit reached" in would[-1].message


async def test_a_full_log_disk_is_archived_after_30s_and_a_human_told_after_5m() -> None:
    """/var/log/app above 85 % every 5 s for 6 minutes: one archive at 30 s, one notify at 5 m."""
    would = await _dry_replay(_example("04-archive-logs-before-the-disk-fills"))
    assert [r.rule for r in would] == ["archive-app-logs", "disk-still-full"]
    archive = would[0].steps[0].params
    assert archive["to"] == "sftp://backup/archive/web1/"
    assert archive["include"] == ["*.log.*", "*.log-*"]
    assert would[1].steps[0].params["title"] == "/var/log/app on web1 is still 91.5 % full"


async def test_a_runaway_process_is_reported_leashed_after_a_minute() -> None:
    """A hog above 90 % for 70 s: one kill_process planned, for exactly that pid and start."""
    would = await _dry_replay(_example("05-stop-a-runaway-process"))
    assert [r.rule for r in would] == ["stop-runaway-process"]
    kill = would[0].steps[0].params
    assert kill == {"pid": "4242", "start_time": "1763760000.25", "grace": "10s"}
    assert "enforce" not in kill  # leashed: it reports what it would kill


async def test_dns_fails_over_once_on_down_and_back_once_on_up() -> None:
    """Readings each second: only the two that change the state plan a run, one each way."""
    would = await _dry_replay(_example("06-dns-failover"))
    assert [r.rule for r in would] == ["dns-failover", "dns-failback"]
    switch = would[0].steps[0].params
    assert switch["direction"] == "failover"
    assert switch["resolv_conf"] == {"path": "/etc/resolv.conf", "primary": "10.0.0.53",
                                     "secondary": "10.0.0.54"}  # fmt: skip


async def test_a_critical_certificate_is_renewed_rechecked_and_reported() -> None:
    would = await _dry_replay(_example("07-renew-an-expiring-certificate"))
    assert [r.rule for r in would] == ["warn-shop-cert"] * 2 + ["renew-shop-cert"] * 3
    assert [s.action for s in would[2].steps] == ["run_command", "recheck", "notify"]


async def test_the_team_hears_how_each_release_ended_and_nothing_in_between() -> None:
    """v1 started, verifying, promoted; v2 started, verifying, rolled back: two mails."""
    example = _example("08-release-the-shortener")
    would = await _dry_replay(example)
    assert [r.rule for r in would] == ["tell-the-team"] * 2
    titles = [r.steps[0].params["title"] for r in would]
    assert titles == ["shortener v1 in production: promoted",
                      "shortener v2 in production: rolled_back"]  # fmt: skip
    assert (
        would[1].steps[0].params["body"].endswith("rolled back to v1 (requested by cli deployer)")
    )
    rt = build(example / "opsmedic.yaml", with_store=False, registry=build_registry())
    assert rt.config.services["info"].depends_on == ["data"]
    # The seed's objectives: data under 200 ms, info (which calls data) under 50 ms.
    latency = {name: [c.http.max_latency for c in service.verify if c.http]
               for name, service in rt.config.services.items()}  # fmt: skip
    assert latency == {"shortener": [0.2], "data": [0.2], "info": [0.05]}


async def test_the_api_scales_out_twice_while_slow_and_back_in_twice_after_calm() -> None:
    """6 minutes slow, 30 calm: out at 30 s and 5m30, in at 16 m and 26 m."""
    example = _example("12-scale-out-on-latency")
    would = await _dry_replay(example)
    assert [r.rule for r in would] == ["scale-out-api"] * 2 + ["scale-in-api"] * 2
    assert [r.steps[0].params for r in would] == [{"service": "api", "by": 1}] * 2 + [
        {"service": "api", "by": -1}
    ] * 2
    rt = build(example / "opsmedic.yaml", with_store=False, registry=build_registry())
    scale = rt.config.services["api"].scale
    assert scale is not None and (scale.min, scale.max, scale.cooldown) == (2, 6, 300.0)
