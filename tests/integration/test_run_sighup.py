"""`opsmedic run` reloads its rules on SIGHUP (systemd's ExecReload), keeping the last good set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

RULE = "- {name: %s, when: {source: command, kind: tick}, do: [noop]}\n"


def _until(lines: Iterator[str], wanted: str) -> str:
    """The first logfmt line holding `wanted` (the service's own signal, not a sleep)."""
    seen = []
    for line in lines:
        if wanted in line:
            return line
        seen.append(line)
    raise AssertionError(f"{wanted!r} never logged; got:\n{''.join(seen)}")


def test_sighup_reloads_a_rules_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    # A single rules file is not watched: only SIGHUP can reload it.
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULE % "first")
    config = tmp_path / "opsmedic.yaml"
    config.write_text(yaml.safe_dump({
        "store": f"sqlite:///{tmp_path / 'o.db'}", "rules_dir": "rules.yaml",
        "api": {"enabled": False},
    }))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    cmd = [sys.executable, "-m", "opsmedic", "--log-level", "info", "run", "-c", str(config)]
    with subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stderr is not None
            lines = iter(proc.stderr)
            assert "rules=1" in _until(lines, "event=started")
            rules.write_text(RULE % "first" + RULE % "second")
            proc.send_signal(signal.SIGHUP)
            assert "rules=2" in _until(lines, "event=rules.reloaded")
            rules.write_text(RULE % "first" + "- {name: broken, when: {}, do: [no_such_action]}\n")
            proc.send_signal(signal.SIGHUP)
            assert "no_such_action" in _until(lines, "event=rules.rejected")
            assert "rules=2" in _until(lines, "event=rules.kept_last_good")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()
