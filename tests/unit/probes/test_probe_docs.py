"""docs/probes.md stays true: its example `probes:` block is a valid probe configuration."""

from __future__ import annotations

import re
from pathlib import Path

import structlog
import yaml

from opsmedic.clock import ManualClock
from opsmedic.config.schema import Config
from opsmedic.model import Event
from opsmedic.plugins import Registry
from opsmedic.probes import BUILTIN_PROBES, ProbeRunner

DOC = Path(__file__).parents[3] / "docs" / "probes.md"


def test_documented_example_config_is_valid() -> None:
    block = re.search(r"```yaml\n(probes:.*?)```", DOC.read_text(), re.DOTALL)
    assert block is not None
    config = Config.model_validate(yaml.safe_load(block.group(1)))

    async def emit(events: list[Event]) -> None:
        return None

    runner = ProbeRunner(
        config.probes,
        Registry(probes={s.name: s for s in BUILTIN_PROBES}),
        config.base_dir,
        ManualClock(),
        emit,
        structlog.get_logger(),
        settings={},
    )
    assert runner.names == ["web", "api-latency", "queue-depth"]
