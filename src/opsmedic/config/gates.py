"""The `gates:` of a service or environment: what must pass before a version is switched in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from opsmedic.config.types import HttpUrlText, PositiveDuration, Strict

# A load test's bounds: it runs before a production switch, so it may not run away.
MAX_LOAD_REQUESTS = 100_000
MAX_LOAD_RATE = 5_000.0


class CiGate(Strict):
    """A CI status URL: GET it; pass on an expected status and, if given, a JSON field's value."""

    url: HttpUrlText
    expect_status: list[int] = Field(default_factory=lambda: [200])
    field: str | None = Field(
        None, min_length=1, description="dotted path into the JSON body, e.g. run.conclusion"
    )
    value: Any = Field(None, description="what `field` must equal; required with field")
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _field_and_value(self) -> CiGate:
        if (self.field is None) != (self.value is None):
            raise ValueError("give field and value together")
        return self


class CommandGate(Strict):
    """A command (argv, no shell), e.g. the test suite: passes on exit code 0 within timeout."""

    argv: list[str] = Field(min_length=1)
    cwd: Path = Field(Path(), description="relative to the config file's directory")
    timeout: PositiveDuration = Field(600.0, description="killed (and failed) past this")


class LoadGate(Strict):
    """A bounded load test: `requests` GETs at `expected_rate * multiple` requests/s."""

    url: HttpUrlText
    requests: int = Field(ge=1, le=MAX_LOAD_REQUESTS)
    expected_rate: float = Field(gt=0, description="the service's usual requests/s")
    multiple: float = Field(1.5, gt=0, description="1.5: the seed's 150 % of expected traffic")
    max_error_ratio: float = Field(0.01, ge=0.0, le=1.0)
    max_p95: PositiveDuration = Field(description="p95 latency at or above this fails")
    timeout: PositiveDuration = Field(60.0, description="the whole test's bound; past it, fail")
    request_timeout: PositiveDuration = 5.0

    @property
    def rate(self) -> float:
        return self.expected_rate * self.multiple

    @model_validator(mode="after")
    def _bounded(self) -> LoadGate:
        if self.rate > MAX_LOAD_RATE:
            raise ValueError(
                f"expected_rate * multiple is {self.rate:g}/s, over {MAX_LOAD_RATE:g}/s"
            )
        if self.requests / self.rate > self.timeout:
            raise ValueError(
                f"{self.requests} requests at {self.rate:g}/s take "
                f"{self.requests / self.rate:g}s, longer than timeout {self.timeout:g}s"
            )
        return self


class Gate(Strict):
    """One gate: exactly one of ci, command or load."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    ci: CiGate | None = None
    command: CommandGate | None = None
    load: LoadGate | None = None

    @property
    def kind(self) -> str:
        return "ci" if self.ci else "command" if self.command else "load"

    @model_validator(mode="after")
    def _one_kind(self) -> Gate:
        if sum(k is not None for k in (self.ci, self.command, self.load)) != 1:
            raise ValueError("give exactly one of ci, command or load")
        return self
