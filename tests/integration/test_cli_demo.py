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
                 "resolv.conf is back to: 127.0.83.1 127.0.83.2",
                 # nginx is installed for the tests: scene 5 is the canary through it.
                 "the seed's URL shortener as a canary", "shortener v1 in production: promoted",
                 "shortener v2 in production: rolled_back: canary step 33 %: aborted early: ",
                 "nginx's upstream shortener now, read back with nginx -T: v1 100 %",
                 "TypeError: the JSON object must be str, bytes or bytearray, not TextIOWrapper",
                 "nginx serves now: v1 (GET / → 200)",
                 # Scene 6, the kill switch (tests/integration/test_demo_killswitch.py).
                 "kill-new-checkout: succeeded", "the shop serves: 200 old checkout: paid"):  # fmt: skip
        assert seen in text, seen
    # The deployments table: v2 rolled back from v1, v1 promoted, newest first.
    table = [line.split("\t") for line in proc.stdout.splitlines() if "\tshortener\t" in line]
    assert [(row[3], row[4], row[5]) for row in table] == [
        ("v2", "v1", "rolled_back"),
        ("v1", "-", "promoted"),
    ]
    assert list(tmp_path.iterdir()) == []  # the demo works in its own temporary directory


def test_one_scene_alone_and_a_scene_that_does_not_exist(tmp_path: Path) -> None:
    proc = subprocess.run([OPSMEDIC, "demo", "--scene", "1", "--timeout", "60"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = " ".join(proc.stdout.split())
    assert "restart-wedged-webapp: succeeded" in text and "scene 2" not in text
    bad = subprocess.run([OPSMEDIC, "demo", "--scene", "7"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert bad.returncode == 2 and "--scene" in bad.stderr
