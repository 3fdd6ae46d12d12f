"""Every test module is collected, without error or warning, in a run of its own.

A module that fails to import (a third party's new deprecation warning under
`filterwarnings = error`, a missing package) or that pytest silently passes over (a misnamed
file, a stray `collect_ignore`) would otherwise only show when someone reads the whole log.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_every_test_module_is_collected_with_tests() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    collected = {line.split("::", 1)[0] for line in done.stdout.splitlines() if "::" in line}
    modules = {p.relative_to(TESTS.parent).as_posix() for p in TESTS.rglob("test_*.py")}
    assert modules, "no test modules found"
    assert modules - collected == set(), "test modules with no collected test"
    summary = done.stdout.splitlines()[-1]
    assert "collected" in summary and "warning" not in summary and "error" not in summary, summary
