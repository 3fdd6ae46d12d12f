"""Action steps run for someone other than a rule (the release controller's switch steps)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opsmedic.clock import Clock
from opsmedic.engine.executor import Executor
from opsmedic.model import OWN_SOURCE, Event, Run
from opsmedic.rules.conditions import Condition
from opsmedic.rules.model import Rule, Step


class ExecutorSteps:
    """Runs steps through the engine's executor (its limits, timeouts and retries), under a
    rule-like `label`; `variables` join the templates' context. The release controller gets
    it as its StepRunner, so releases/ never imports the engine."""

    def __init__(self, executor: Executor, clock: Clock) -> None:
        self._executor, self._clock = executor, clock

    async def run_steps(
        self, label: str, steps: Sequence[Step], variables: Mapping[str, str]
    ) -> Run:
        labels = {k: v for k, v in variables.items() if k in ("env", "version")}
        event = Event(source=OWN_SOURCE, kind="switch", resource=variables.get("service", ""),
                      labels=labels, time=self._clock.now())  # fmt: skip
        rule = Rule(name=label, index=-1, condition=Condition([]), steps=list(steps))
        run = Run(rule=label, event_id=event.id, target=event.target,
                  fingerprint=event.fingerprint, actions=rule.actions,
                  created_at=self._clock.now(), started_at=self._clock.now())  # fmt: skip
        return await self._executor.execute(run, rule, event, variables)
