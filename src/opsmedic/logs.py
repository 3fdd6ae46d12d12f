"""Structured logging: one event per line in logfmt, configured once by the CLI or runtime."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}  # fmt: skip


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """logfmt lines (`ts=… level=info event=run.step run_id=… rule=…`) on stderr by default."""
    # structlog is imported by the functions that use it, not at the top: with the rich
    # modules it imports it costs ≈60 ms, and `opsmedic --help` never logs.
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

    return structlog.get_logger().bind(**bound)
