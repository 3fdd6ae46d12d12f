"""A canary service's settings: its router, the backend of each version, steps and analysis."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from opsmedic.config.types import PositiveDuration, Strict

# A backend as the router's `server` line takes it: a name or an address, then a port.
_BACKEND = r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$"


class NginxRouterConfig(Strict):
    """The running nginx whose upstream opsmedic weighs, and the files it reads and owns."""

    upstream: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
    include: Path = Field(description="the upstream file opsmedic owns; nginx.conf includes it")
    access_log: Path = Field(description="written in opsmedic's log_format (docs/releases.md)")
    prefix: Path
    conf: Path = Field(description="nginx's main configuration file")
    pid_file: Path
    program: str = "nginx"
    error_log: Path | None = Field(None, description="nginx -e: its log before it reads conf")
    timeout: PositiveDuration = Field(10.0, description="per nginx -t/-T run and per reload")


class RouterConfig(Strict):
    """Which load balancer carries the canary; nginx is the one built in."""

    nginx: NginxRouterConfig


class StickyConfig(Strict):
    """Keep each user on one version by a header or a cookie value."""

    header: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    cookie: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,64}$")

    @model_validator(mode="after")
    def _one(self) -> StickyConfig:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("give exactly one of header or cookie")
        return self


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
            port = address.rsplit(":", 1)[-1]
            if not re.match(_BACKEND, address) or not 0 < int(port) < 65536:
                raise ValueError(f"backend of {version!r}: {address!r} is not host:port")
        return backends

    @field_validator("steps")
    @classmethod
    def _steps(cls, steps: list[int]) -> list[int]:
        if any(not 0 < step < 100 for step in steps):
            raise ValueError(f"steps {steps}: each a canary share in 1..99 %")
        if steps != sorted(set(steps)):
            raise ValueError(f"steps {steps}: each step must give the canary more than the last")
        return steps
