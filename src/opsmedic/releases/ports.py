"""What the controller needs from the layers beside it, as Protocols that runtime.py fills in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from opsmedic.model import Event, Run
from opsmedic.rules.model import Step

# Hands the deployment's events to the engine (rules match them, incidents show them).
Announce = Callable[[list[Event]], Awaitable[object]]
# A line of progress for whoever watches (`opsmedic deploy` prints it on stderr).
Progress = Callable[[str], None]


class StepRunner(Protocol):
    """Runs action steps as the engine's executor does: limits, timeouts, retries, safety."""

    async def run_steps(
        self, label: str, steps: Sequence[Step], variables: Mapping[str, str]
    ) -> Run: ...
