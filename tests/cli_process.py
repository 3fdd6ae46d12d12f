"""Test helper: run the `opsmedic` command as an operator would, without OPSMEDIC_* leaking in."""

from __future__ import annotations

import fcntl
import getpass
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

OPSMEDIC = [sys.executable, "-m", "opsmedic"]


def opsmedic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSMEDIC_")}
    env["COLUMNS"] = "200"  # rich wraps at the terminal's width; tests match whole lines
    return subprocess.run([*OPSMEDIC, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def via(name: str) -> str:
    """How the CLI records `--as NAME` given by the login running these tests."""
    return f"{name} (via {getpass.getuser()}@{socket.gethostname()})"


# A router's settings in a service's YAML (indented under its strategy's section), for the
# config tests of the strategies that move traffic and of scaling.
ROUTER_YAML = (
    "      router:\n        nginx: {upstream: app, include: up.conf, access_log: a.log, "
    "prefix: ., conf: n.conf, pid_file: n.pid}\n"
)


def service_site(root: Path, text: str) -> Path:
    """A directory holding opsmedic.yaml (`text`), an empty rules/ and a releases/ directory."""
    (root / "rules").mkdir()
    (root / "releases").mkdir()
    (root / "opsmedic.yaml").write_text(text)
    return root


def on_a_terminal(*args: str, cwd: Path, columns: int = 60) -> str:
    """The command's output in a real terminal (a pty) `columns` wide, as it was written."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSMEDIC_", "COLUMNS"))}
    env.update(TERM="xterm-256color", COLUMNS=str(columns))
    proc = subprocess.Popen([*OPSMEDIC, *args], cwd=cwd, env=env, stdin=slave, stdout=slave,
                            stderr=slave)  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode()
