"""A rule as the operator writes it (pydantic, for validation) and as the engine uses it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmedic.config.types import Duration
from opsmedic.model import Event
from opsmedic.rules.approval import ApprovalSpec
from opsmedic.rules.conditions import Condition

STEP_OPTIONS = ("continue_on_failure", "timeout", "max_attempts", "approve")


class ThrottleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    once_within: Duration
    per: list[str] = Field(default_factory=lambda: ["fingerprint"])


class LimitSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_runs: int = Field(ge=1)
    within: Duration
    per: list[str] = Field(default_factory=lambda: ["target"])


class RuleSpec(BaseModel):
    """One entry of a rule file; `when`, `do` and `on_failure` are checked by the loader."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=120)
    description: str = ""
    enabled: bool = True
    when: dict[str, Any]
    do: list[Any] = Field(min_length=1)
    on_failure: list[Any] = Field(default_factory=list)
    throttle: ThrottleSpec | None = None
    limit: LimitSpec | None = None
    queue: Literal["remediation", "investigation"] = "remediation"
    dry_run: bool | None = None
    # stop: no more runs of this rule for an incident someone acknowledged (docs/rules.md).
    on_acknowledge: Literal["continue", "stop"] = "continue"


@dataclass(slots=True)
class Step:
    """One action of a rule: its name, raw (templated) params and per-step options."""

    action: str
    raw: Any
    path: str
    continue_on_failure: bool = False
    timeout: float | None = None
    max_attempts: int | None = None
    approve: ApprovalSpec | None = None  # wait for a human's yes before this step runs


@dataclass(slots=True, eq=False)
class Rule:
    """A compiled rule: the condition runs on every candidate event, so it is precompiled."""

    name: str
    index: int
    condition: Condition
    steps: list[Step]
    for_s: float = 0.0
    on_failure: list[Step] = field(default_factory=list)
    throttle: ThrottleSpec | None = None
    limit: LimitSpec | None = None
    queue: str = "remediation"
    dry_run: bool | None = None
    description: str = ""
    file: str = ""
    line: int = 0
    on_acknowledge: str = "continue"
    enabled: bool = True  # false: never matched; run only by hand with --force

    @property
    def actions(self) -> list[str]:
        return [s.action for s in self.steps]


def key_of(event: Event, fields: list[str]) -> tuple[str, ...]:
    """The grouping key of `throttle.per` / `limit.per`: event fields or labels.NAME."""
    out = []
    for name in fields:
        if name.startswith("labels."):
            out.append(event.labels.get(name[7:], ""))
        else:
            out.append(str(getattr(event, name, "")))
    return tuple(out)


PER_FIELDS = ("source", "kind", "resource", "host", "severity", "fingerprint", "target")
