"""Structured logging: configured by the CLI before anything logs, applied when something does."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from opsmedic import logs

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


def test_a_second_thread_logging_first_waits_for_the_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applied: list[str] = []
    started = threading.Event()

    def slow(level: str, stream: object) -> None:  # as structlog's import and configure take
        started.set()
        time.sleep(0.2)
        applied.append(level)

    monkeypatch.setattr(logs, "_configure", slow)
    monkeypatch.setattr(logs, "_pending", ("warning", None))
    first = threading.Thread(target=logs._apply)
    first.start()
    started.wait(timeout=60)
    logs._apply()  # this thread comes back only once the other has configured
    seen = list(applied)
    first.join(timeout=60)
    assert seen == applied == ["warning"]
