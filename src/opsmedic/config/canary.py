"""A canary service's settings: its router, the backend of each version, steps and analysis."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from opsmedic.config.routers import RouterConfig, StickyConfig, check_backend
from opsmedic.config.types import PositiveDuration, Strict

Check = Literal["error_ratio", "latency"]


def _both() -> list[Check]:
    return ["error_ratio", "latency"]


def _errors() -> list[Check]:
    return ["error_ratio"]


class AnalysisConfig(Strict):
    """How each step is judged: the canary against the stable on the same real traffic."""

    interval: PositiveDuration = Field(30.0, description="how long each step is analysed")
    checks: list[Check] = Field(default_factory=_both, min_length=1)
    critical: list[Check] = Field(
        default_factory=_errors, description="a failing critical check vetoes"
    )
    min_samples: int = Field(50, ge=1, description="requests needed on each side per check")
    # Required, as for verify checks: what too little traffic means is the operator's call.
    on_no_data: Literal["fail", "hold", "pass"] = Field(
        description="too few requests at the end of a step: fail, hold (analyse on, up to "
        "the service's verify_timeout) or pass"
    )

    @model_validator(mode="after")
    def _critical_checked(self) -> AnalysisConfig:
        if unchecked := sorted(set(self.critical) - set(self.checks)):
            raise ValueError(f"critical {unchecked} not among checks {self.checks}")
        return self


class CanaryConfig(Strict):
    """Weight steps through a router, each analysed; then 100 % or back to 0 %."""

    router: RouterConfig
    backends: dict[str, str] = Field(
        min_length=1, description="version → the host:port that serves it"
    )
    steps: list[int] = Field(
        default_factory=lambda: [33], min_length=1, description="canary % of each step"
    )
    analysis: AnalysisConfig
    sticky: StickyConfig | None = None

    @field_validator("backends")
    @classmethod
    def _addresses(cls, backends: dict[str, str]) -> dict[str, str]:
        for version, address in backends.items():
            check_backend(f"backend of {version!r}", address)
        return backends

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        if any(not 0 < step < 100 for step in steps):
            raise ValueError(f"steps {steps}: each a canary share in 1..99 %")
        if steps != sorted(set(steps)):
            raise ValueError(f"steps {steps}: each step must give the canary more than the last")
        return steps
