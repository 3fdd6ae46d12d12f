"""`opsmedic demo` (the README's first command) plays every scene to its remediation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

OPSMEDIC = str(Path(sys.executable).with_name("opsmedic"))


def test_the_demo_remediates_every_scene(tmp_path: Path) -> None:
    proc = subprocess.run(
        [OPSMEDIC, "demo", "--timeout", "60"], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = " ".join(proc.stdout.split())  # rich wraps long lines
    for seen in ("restart-wedged-webapp: succeeded", "archive-demo-logs: succeeded",
                 "stop-demo-hog: succeeded", "dns-failover: succeeded",
                 "dns-failback: succeeded — 1 step(s) succeeded: failback:",
                 "resolv.conf is back to: 127.0.83.1 127.0.83.2"):  # fmt: skip
        assert seen in text, seen
    assert list(tmp_path.iterdir()) == []  # the demo works in its own temporary directory
