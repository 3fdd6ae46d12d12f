"""Structured logging: configured by the CLI before anything logs, applied when something does."""

from __future__ import annotations

import subprocess
import sys

# In a fresh interpreter: structlog must not be imported by configuring alone, and the first
# logger must follow the configuration (level and stream) asked for before.
SCRIPT = """
import io, sys
from opsmedic.logs import configure_logging, get_logger
stream = io.StringIO()
configure_logging("warning", stream)
assert "structlog" not in sys.modules
log = get_logger(run_id=7)
log.info("hidden")
log.warning("shown")
configure_logging("info", stream)
get_logger().info("now shown")
print(stream.getvalue(), end="")
"""


def test_configuring_waits_for_the_first_logger_and_is_then_followed() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert "level=warning event=shown run_id=7" in lines[0]
    assert 'level=info event="now shown"' in lines[1]
