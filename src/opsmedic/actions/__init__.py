"""Built-in actions; the registry in plugins.py is built from BUILTIN_ACTIONS at start-up."""

from __future__ import annotations

from typing import Any

from opsmedic.actions import (
    annotate,
    archive_logs,
    deploy,
    dns_failover,
    http_request,
    kill_process,
    noop,
    notify,
    recheck,
    rollback,
    run_command,
)
from opsmedic.plugins import ActionSpec

BUILTIN_ACTIONS: tuple[ActionSpec[Any], ...] = (
    noop.ACTION,
    run_command.ACTION,
    http_request.ACTION,
    notify.ACTION,
    kill_process.ACTION,
    archive_logs.ACTION,
    dns_failover.ACTION,
    recheck.ACTION,
    annotate.ACTION,
    deploy.ACTION,
    rollback.ACTION,
)

__all__ = ["BUILTIN_ACTIONS"]
