"""`opsmedic run` as a service: probes feed rules, rule edits hot-reload, bad edits are refused."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from opsmedic.rules.ruleset import RuleSet
from opsmedic.runtime import build, build_registry, watch_rules
from opsmedic.store.store import Store

RULE = "- {name: %s, when: {source: command, kind: tick}, do: [noop]}\n"


def write_config(tmp_path: Path, marker: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "tick.yaml").write_text(yaml.safe_dump([{
        "name": "touch-marker",
        "when": {"source": "command", "kind": "tick", "status": "resolved"},
        "do": [{"run_command": {"argv": ["touch", str(marker)]}}],
        "throttle": {"once_within": "1h"},
    }]))  # fmt: skip
    config = tmp_path / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp_path / 'o.db'}", "rules_dir": "rules", "api": {"port": 0},
        "probes": [{"name": "tick", "type": "command", "interval": "0.2s",
                    "params": {"argv": ["true"]}}],
    }))  # fmt: skip
    return config


def test_run_probes_acts_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """A probe event matches a rule, the action really runs, SIGTERM ends the service with 0."""
    marker = tmp_path / "marker"
    config = write_config(tmp_path, marker)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    with subprocess.Popen([sys.executable, "-m", "opsmedic", "--log-level", "info", "run",
                           "-c", str(config)], env=env, stderr=subprocess.PIPE, text=True) as proc:  # fmt: skip
        try:
            assert proc.stderr is not None
            for line in proc.stderr:  # logfmt lines: wait for the real signal, not a sleep
                if "event=run.finished" in line:
                    assert "rule=touch-marker" in line and "outcome=succeeded" in line
                    break
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
    assert marker.exists()
    runs = Store(f"sqlite:///{tmp_path / 'o.db'}").list_runs()
    assert [r.rule for r in runs] == ["touch-marker"]


async def test_rule_edits_reload_and_a_bad_edit_keeps_the_last_good_set(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "marker")
    rt = build(config, with_store=False, registry=build_registry())
    changes: asyncio.Queue[RuleSet | None] = asyncio.Queue()
    task = asyncio.create_task(watch_rules(rt, changes.put_nowait))
    try:
        await asyncio.sleep(0.3)  # let the watcher register with inotify before the edit
        (tmp_path / "rules" / "more.yaml").write_text(RULE % "second")
        new = await asyncio.wait_for(changes.get(), 10)
        assert new is not None and [r.name for r in new] == ["second", "touch-marker"]
        assert [r.name for r in rt.engine.planner.ruleset] == ["second", "touch-marker"]
        (tmp_path / "rules" / "more.yaml").write_text(RULE % "third" + "  bogus: 1\n")
        assert await asyncio.wait_for(changes.get(), 10) is None
        assert [r.name for r in rt.engine.planner.ruleset] == ["second", "touch-marker"]
        assert any("more.yaml" in str(p) for p in rt.rule_errors)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_port_in_use_is_one_error_line_naming_the_address(tmp_path: Path) -> None:
    """Another process holds the API's port: exit 1 with one line, not a traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "r.yaml").write_text("[]\n")
        config = tmp_path / "opsmedic.yaml"
        config.write_text(yaml.safe_dump({
            "store": f"sqlite:///{tmp_path / 'o.db'}", "rules_dir": "rules",
            "api": {"host": "127.0.0.1", "port": port},
        }))  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
        done = subprocess.run([sys.executable, "-m", "opsmedic", "run", "-c", str(config)],
                              env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1, done.stderr
    # The one line: uvicorn's own bind error is not printed (opsmedic binds the port itself).
    assert done.stderr.splitlines() == [
        f"error the API cannot listen on 127.0.0.1:{port}: address already in use"
    ]
