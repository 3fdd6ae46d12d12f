"""The probe runner driving the built-in probes against real targets on their schedules."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterator

import pytest
import structlog

from http_receiver import receiving
from opsmedic.clock import SystemClock
from opsmedic.config.schema import Config, ProbeConfig
from opsmedic.model import Event, Status
from opsmedic.plugins import Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner


@pytest.fixture
def health_url() -> Iterator[str]:
    with receiving() as url:  # answers 200 to every request
        yield url + "/"


async def test_every_probe_runs_on_its_own_schedule(health_url: str) -> None:
    configs = [
        ProbeConfig.model_validate(
            {"name": "web", "type": "http", "interval": 0.05, "params": {"url": health_url}}
        ),
        ProbeConfig.model_validate(
            {
                "name": "backlog",
                "type": "command",
                "interval": 0.05,
                "labels": {"team": "payments"},
                "params": {"argv": [sys.executable, "-c", "print(12)"]},
            }
        ),
    ]
    seen: dict[str, list[Event]] = {"web": [], "backlog": []}
    enough = asyncio.Event()

    async def emit(events: list[Event]) -> None:
        for event in events:
            seen[event.kind].append(event)
        if all(len(v) >= 2 for v in seen.values()):
            enough.set()

    runner = ProbeRunner(
        configs,
        Registry(probes={s.name: s for s in BUILTIN_PROBES}),
        Config().base_dir,
        SystemClock(),
        emit,
        structlog.get_logger(),
        settings={},
    )
    assert runner.names == ["web", "backlog"]
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(enough.wait(), timeout=20)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    web, backlog = seen["web"][0], seen["backlog"][0]
    assert (web.source, web.status, web.labels) == ("http", Status.RESOLVED, {"status_code": "200"})
    assert (backlog.source, backlog.value) == ("command", 12.0)
    assert backlog.labels == {"exit_code": "0", "team": "payments"}
