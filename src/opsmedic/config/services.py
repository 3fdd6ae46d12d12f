"""The `services:` section: what opsmedic deploys, how a version is switched in and verified."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from opsmedic.config.blue_green import BlueGreenConfig
from opsmedic.config.canary import CanaryConfig
from opsmedic.config.gates import Gate
from opsmedic.config.rolling import RollingConfig
from opsmedic.config.routers import check_backend
from opsmedic.config.scale import ScaleConfig
from opsmedic.config.types import Duration, HttpMethod, HttpUrlText, PositiveDuration, Strict

# A service, environment or version name: it goes into paths, templates and labels as it is.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
# The environment a service without `environments:` is deployed to.
DEFAULT_ENVIRONMENT = "production"


class HttpCheck(Strict):
    """Requests opsmedic sends itself: each answer is one sample, good or bad."""

    url: HttpUrlText
    method: HttpMethod = "GET"
    expect_status: list[int] = Field(
        default_factory=lambda: [200], description="statuses that count as good"
    )
    max_latency: PositiveDuration | None = Field(
        None, description="an answer slower than this is a bad sample"
    )
    timeout: PositiveDuration = Field(5.0, description="one request's bound; past it, bad")


class PrometheusCheck(Strict):
    """A Prometheus instant query: each evaluation is one sample, judged by the threshold."""

    url: HttpUrlText = Field(description="Prometheus' base URL, e.g. http://127.0.0.1:9090")
    query: str = Field(min_length=1)
    max: float | None = Field(None, description="a value above this is a bad sample")
    min: float | None = Field(None, description="a value below this is a bad sample")
    timeout: PositiveDuration = 5.0

    @model_validator(mode="after")
    def _has_threshold(self) -> PrometheusCheck:
        if self.max is None and self.min is None:
            raise ValueError("give a threshold: max, min or both")
        return self


class TrafficCheck(Strict):
    """The requests the load balancer routed, read from its access log as it is written."""

    access_log: Path = Field(description="nginx's access log in opsmedic's log_format")
    backends: list[str] = Field(
        default_factory=list, description="only the requests routed to these host:port; "
        "default: every backend"
    )  # fmt: skip
    max_error_ratio: float = Field(
        0.0, ge=0.0, le=1.0, description="share of an interval's requests that may fail"
    )
    max_p95: PositiveDuration | None = Field(None, description="the interval's p95 latency bound")
    min_requests: int = Field(10, ge=1, description="fewer requests in an interval: no data")

    @field_validator("backends")
    @classmethod
    def _addresses(cls, backends: list[str]) -> list[str]:
        return [check_backend("backend", address) for address in backends]


class VerifyCheck(Strict):
    """One verification check, sampled every `interval` while the deployment verifies."""

    name: str = Field(pattern=NAME_PATTERN)
    http: HttpCheck | None = None
    prometheus: PrometheusCheck | None = None
    traffic: TrafficCheck | None = None
    interval: PositiveDuration = Field(1.0, description="time between samples")
    min_samples: int = Field(3, ge=1, description="samples needed before the check is judged")
    max_error_ratio: float = Field(
        0.0, ge=0.0, le=1.0, description="share of bad samples tolerated; 0: none"
    )
    # Required: what a check with too few samples means is the operator's call, not ours.
    on_no_data: Literal["fail", "hold", "pass"] = Field(
        description="fewer than min_samples by the end of bake: fail, hold (wait, up to the "
        "service's verify_timeout) or pass"
    )

    @model_validator(mode="after")
    def _one_source(self) -> VerifyCheck:
        if sum(s is not None for s in (self.http, self.prometheus, self.traffic)) != 1:
            raise ValueError("give exactly one of http, prometheus or traffic")
        return self


class Environment(Strict):
    """One environment of a service; what it leaves out is the service's own."""

    switch: list[Any] | None = Field(None, description="steps; omitted: the service's")
    verify: list[VerifyCheck] | None = Field(None, description="checks; omitted: the service's")
    version_url: HttpUrlText | None = None
    current: Path | None = None
    requires: list[str] = Field(
        default_factory=list, description="environments a version must have passed in first"
    )
    gates: list[Gate] | None = Field(None, description="gates; omitted: the service's")


class ServiceConfig(Strict):
    """A service opsmedic deploys: its versions, how one is switched in, how it is verified."""

    versions: Path = Field(description="directory holding one entry per version")
    current: Path | None = Field(
        None, description="symlink the switch points at versions/VERSION; checked after it"
    )
    version_url: HttpUrlText | None = Field(
        None, description="answers with the serving version in its body; checked after a switch"
    )
    strategy: Literal["switch", "canary", "rolling", "blue_green"] = "switch"
    canary: CanaryConfig | None = Field(None, description="strategy canary's settings")
    rolling: RollingConfig | None = Field(None, description="strategy rolling's settings")
    blue_green: BlueGreenConfig | None = Field(None, description="strategy blue_green's settings")
    scale: ScaleConfig | None = Field(None, description="what the scale action starts and stops")
    # Required for `switch`, where they are the switch; after a router moved the traffic
    # (blue_green) they are optional extras.
    switch: list[Any] = Field(
        default_factory=list, description="action steps that put a version in"
    )
    verify: list[VerifyCheck] = Field(default_factory=list)
    bake: Duration = Field(30.0, ge=0, description="healthy this long before promotion")
    verify_timeout: PositiveDuration = Field(
        600.0, description="longest a verification may last, holds included"
    )
    switch_timeout: PositiveDuration = Field(
        30.0, description="longest wait for version_url to show the new version"
    )
    environments: dict[str, Environment] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    hold_dependents: Duration = Field(
        300.0,
        ge=0,
        description="after a deployment of this service rolled back or failed, "
        "the remediations of the services depending on it hold this long; 0: not at all",
    )
    git: Path | None = Field(None, description="the service's repository (used by reports)")
    gates: list[Gate] = Field(default_factory=list, description="run before every switch")

    @model_validator(mode="after")
    def _names(self) -> ServiceConfig:
        for name in self.environments:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"environment name {name!r}: letters, digits, . _ - only")
        if (self.strategy == "canary") != (self.canary is not None):
            raise ValueError("strategy canary and a canary: section go together")
        if (self.strategy == "rolling") != (self.rolling is not None):
            raise ValueError("strategy rolling and a rolling: section go together")
        if self.strategy != "switch" and len(self.environments) > 1:
            # Their router settings are the service's: a deployment to staging would move
            # production's traffic, and the per-environment lock would not keep them apart.
            raise ValueError(f"strategy {self.strategy} moves one upstream's traffic, the same "
                             "in every environment: declare one environment, or a service per "
                             "environment (e.g. shop-staging)")  # fmt: skip
        if self.scale is not None and self.strategy != "switch":
            # Both would write the upstream's file, each from its own list of instances.
            raise ValueError(f"scale: goes with strategy switch, not {self.strategy}: both "
                             "would write the router's upstream")  # fmt: skip
        places: list[ServiceConfig | Environment] = [self, *self.environments.values()]
        if self.rolling is not None and any(p.current or p.version_url for p in places):
            raise ValueError("strategy rolling checks each instance at rolling.version_path: "
                             "current and version_url do not apply")  # fmt: skip
        for name, env in self.environments.items():
            for required in env.requires:
                if required == name or required not in self.environments:
                    others = [n for n in self.environments if n != name]
                    raise ValueError(f"environment {name!r} requires {required!r}, not "
                                     f"another environment ({', '.join(others)})")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _blue_green(self) -> ServiceConfig:
        if (self.strategy == "blue_green") != (self.blue_green is not None):
            raise ValueError("strategy blue_green and a blue_green: section go together")
        if self.strategy != "blue_green" and not self.switch:
            raise ValueError(f"strategy {self.strategy} needs switch: steps (at least one)")
        envs = self.environments.values()
        if self.blue_green is not None and not (
            self.blue_green.version_path or self.version_url
            or (envs and all(e.version_url for e in envs))
        ):  # fmt: skip
            raise ValueError("strategy blue_green asks each slot which version it runs: give "
                             "blue_green.version_path or the service's version_url")  # fmt: skip
        return self

    def environment_names(self) -> list[str]:
        return list(self.environments) or [DEFAULT_ENVIRONMENT]

    def switch_steps(self, env: str) -> list[Any]:
        found = self.environments.get(env)
        return found.switch if found is not None and found.switch is not None else self.switch

    def checks(self, env: str) -> list[VerifyCheck]:
        found = self.environments.get(env)
        return found.verify if found is not None and found.verify is not None else self.verify

    def gates_of(self, env: str) -> list[Gate]:
        found = self.environments.get(env)
        return found.gates if found is not None and found.gates is not None else self.gates

    def requires_of(self, env: str) -> list[str]:
        found = self.environments.get(env)
        return found.requires if found is not None else []

    def version_url_of(self, env: str) -> str | None:
        found = self.environments.get(env)
        return found.version_url if found and found.version_url else self.version_url

    def current_of(self, env: str) -> Path | None:
        found = self.environments.get(env)
        return found.current if found and found.current else self.current
