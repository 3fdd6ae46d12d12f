"""What the SLO tasks are handed in tests: a log that keeps its lines, and a `call` that runs
the store's work in place (in `opsmedic run`, the engine's journal thread)."""

from __future__ import annotations

from typing import Any


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))

    error = warning


async def call(fn: Any, *args: Any) -> Any:
    return fn(*args)
