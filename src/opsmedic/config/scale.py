"""A service's `scale:` settings: how an instance starts and stops, its address, bounds, health."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from opsmedic.config.routers import RouterConfig
from opsmedic.config.types import Duration, PositiveDuration, Strict

# What an instance's argv and address may name: its number, its port, its host:port, the service.
SCALE_VARIABLES = ("n", "port", "address", "service")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_UNIT = re.compile(r"^[A-Za-z0-9:_.\\-]{1,200}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])$", re.ASCII)


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with each `{{ name }}` replaced by its value (names checked at load)."""
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _known_names(text: str) -> str:
    for name in _PLACEHOLDER.findall(text):
        if name not in SCALE_VARIABLES:
            raise ValueError(
                f"{{{{ {name} }}}} is not known here: {', '.join(SCALE_VARIABLES)} are"
            )
    return text


class InstanceCommand(Strict):
    """The instance itself, run by opsmedic as a detached process (no shell): the argv may
    name `{{ n }}`, `{{ port }}`, `{{ address }}` and `{{ service }}`."""

    argv: list[str] = Field(min_length=1)
    cwd: Path | None = Field(None, description="relative to the config file; default its dir")

    @field_validator("argv")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        return [_known_names(word) for word in argv]


class SystemdUnit(Strict):
    """A systemd template unit: instance N is `UNIT@N.service`, started and stopped with
    `systemctl start|stop`."""

    unit: str = Field(description="the template's name, without '@' (api for api@.service)")
    systemctl: str = Field("systemctl", description="the program run (argv, no shell)")

    @field_validator("unit")
    @classmethod
    def _unit(cls, unit: str) -> str:
        if not _UNIT.match(unit) or "@" in unit:
            raise ValueError(f"unit {unit!r}: a template's name without '@' or '.service'")
        return unit.removesuffix(".service")


class HealthCheck(Strict):
    """A new instance's check before it gets traffic: GET http://ADDRESS + path."""

    path: str = Field("/", pattern=r"^/[!-~]*$")
    expect_status: list[int] = Field(default_factory=lambda: [200])
    timeout: PositiveDuration = Field(30.0, description="the longest wait for it to pass")
    interval: PositiveDuration = Field(0.1, description="between two asks")


class ScaleConfig(Strict):
    """Instances 1..max of a service, each at host:base_port+N behind the router's upstream."""

    router: RouterConfig
    command: InstanceCommand | None = None
    systemd: SystemdUnit | None = None
    host: str = Field("127.0.0.1", description="where the instances listen")
    base_port: int = Field(ge=1, le=65534, description="instance N listens on base_port + N")
    min: int = Field(1, ge=1, description="scale-in below this is refused")
    max: int = Field(ge=1, le=1000, description="scale-out above this is refused")
    cooldown: Duration = Field(120.0, ge=0, description="after a scale, the next waits this long")
    health: HealthCheck = Field(default_factory=lambda: HealthCheck.model_validate({}))
    drain_timeout: Duration = Field(
        30.0, ge=0, description="longest wait for a removed instance's connections to end"
    )
    stop_timeout: PositiveDuration = Field(
        10.0, description="SIGTERM to SIGKILL for a command's process; systemctl's own bound"
    )

    @field_validator("host")
    @classmethod
    def _host(cls, host: str) -> str:
        if not _HOST.fullmatch(host):
            raise ValueError(f"host {host!r}: a name or an address")
        return host

    @model_validator(mode="after")
    def _shape(self) -> ScaleConfig:
        if (self.command is None) == (self.systemd is None):
            raise ValueError("give exactly one of command or systemd")
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.base_port + self.max > 65535:
            raise ValueError(f"base_port {self.base_port} + max {self.max} is past port 65535")
        return self

    def describe(self) -> str:
        """One line for `opsmedic check`: everything the scale action will do, written out."""
        how = (f"systemd {self.systemd.unit}@N.service" if self.systemd is not None
               else f"command {self.command.argv[0] if self.command else '?'}")  # fmt: skip
        return (f"scale {self.min}..{self.max} instances at {self.host}:{self.base_port}+N "
                f"({how}), cooldown {self.cooldown:g}s, health {self.health.path} within "
                f"{self.health.timeout:g}s, drain_timeout {self.drain_timeout:g}s")  # fmt: skip

    def address(self, n: int) -> str:
        return f"{self.host}:{self.base_port + n}"

    def values(self, service: str, n: int) -> dict[str, str]:
        """What `{{ name }}` means in instance `n`'s argv."""
        port = str(self.base_port + n)
        return {"n": str(n), "port": port, "address": self.address(n), "service": service}
