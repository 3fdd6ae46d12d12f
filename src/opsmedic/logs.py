"""Structured logging: one event per line in logfmt, configured once by the CLI or runtime."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip
# The configuration asked for and not applied yet: structlog (with the rich modules it
# imports, ≈60 ms) is imported when something first logs, not by a command that never does
# (`opsmedic --help`, `opsmedic logs hunt`).
_pending: tuple[str, TextIO | None] | None = None
# Held while it is applied: a second thread logging for the first time meanwhile waits for
# the configuration rather than get structlog's default (console lines on stdout, no level).
_applying = threading.Lock()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """logfmt lines (`ts=… level=info event=run.step run_id=… rule=…`) on stderr by default."""
    global _pending
    _pending = (level, stream)
    if "structlog" in sys.modules:  # loggers may exist already: they follow it at once
        _apply()


def _apply() -> None:
    global _pending
    if _pending is None:
        return
    with _applying:
        if _pending is None:  # another thread applied it while this one waited
            return
        _configure(*_pending)
        _pending = None


def _configure(level: str, stream: TextIO | None) -> None:
    import structlog

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            structlog.processors.LogfmtRenderer(
                key_order=["ts", "level", "event"], drop_missing=True, bool_as_flag=False
            ),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Any:
    """A structlog logger with `bound` key/values on every line."""
    import structlog

    _apply()
    return structlog.get_logger().bind(**bound)
