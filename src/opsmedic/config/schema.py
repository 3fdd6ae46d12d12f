"""The opsmedic.yaml schema: the shared sections, validated by pydantic with unknown keys
refused; each plugin's own section (notify, annotate…) is declared by the plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from opsmedic.config.flag_store import FlagStoreConfig
from opsmedic.config.flags import Flags
from opsmedic.config.muting import InhibitRule, MaintenanceWindow
from opsmedic.config.poller import Pollers
from opsmedic.config.services import ServiceConfig
from opsmedic.config.slos import SloConfig, duplicate_names
from opsmedic.config.types import Duration, PositiveDuration, Secret, Strict


class RetryPolicy(Strict):
    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff: Duration = 1.0
    max_backoff: Duration = 30.0


class Concurrency(Strict):
    total: int = Field(
        default=32, ge=1, description="remediation runs executing at once, all actions together"
    )
    investigation: int = Field(
        default=8, ge=1, description="investigation runs executing at once: a pool of their own"
    )
    per_action: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)


class RunLease(Strict):
    """How long an engine's claim on its running runs holds unrenewed (docs/engine.md)."""

    duration: PositiveDuration = Field(
        default=30.0, description="another process's start interrupts a run only after this"
    )
    renew_every: PositiveDuration = Field(default=10.0, description="well under `duration`")

    @model_validator(mode="after")
    def _renewed_in_time(self) -> RunLease:
        if self.renew_every >= self.duration:
            raise ValueError(
                f"renew_every ({self.renew_every:g}s) must be shorter than duration "
                f"({self.duration:g}s), or a live engine's runs lapse between renewals"
            )
        return self


class ActionDefaults(Strict):
    timeout: Duration = 60.0
    output_limit: int = Field(default=65536, ge=256, description="bytes kept per stream and step")
    retry: RetryPolicy = Field(default_factory=lambda: RetryPolicy())
    concurrency: Concurrency = Field(default_factory=lambda: Concurrency())
    lease: RunLease = Field(default_factory=lambda: RunLease())


class SSHHost(Strict):
    host: str
    port: int = Field(default=22, ge=1, le=65535)
    user: str
    key_file: Path | None = None
    password: Secret | None = None
    known_hosts: Path | None = Field(
        None, description="known_hosts file; host keys are always checked"
    )
    connect_timeout: Duration = 10.0


class ProbeConfig(Strict):
    name: str
    type: str
    interval: PositiveDuration | None = Field(
        None, description="time between checks; omitted: the probe type's default, else 30s"
    )
    timeout: Duration = Field(default=10.0, gt=0)
    jitter: float | None = Field(
        None, ge=0, le=1, description="fraction of interval added at random; omitted: the type's"
    )
    labels: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class JsonLimits(Strict):
    """Bounds on a decoded ingest body beyond its size: a small body can still be a deep or a
    wide one that costs the encoder, the planner or the store far more than its bytes."""

    max_depth: int = Field(default=64, ge=2, le=1024, description="objects and arrays nested")
    max_keys: int = Field(default=1000, ge=1, description="keys in one object")
    max_string: int = Field(default=65536, ge=64, description="characters in one string or key")
    max_nodes: int = Field(default=250_000, ge=100, description="JSON values in the body")


class ApiConfig(Strict):
    enabled: bool = Field(default=True, description="serve the HTTP API from `opsmedic run`")
    host: str = Field(default="127.0.0.1", description="address to listen on; loopback by default")
    port: int = Field(default=8787, ge=0, le=65535, description="0: any free port")
    max_body: int = Field(
        default=1024 * 1024, ge=1024, description="bytes; larger bodies get 413 before parsing"
    )
    allow_query_token: bool = Field(
        default=False,
        description="accept ?token=… from senders that cannot set headers (see docs/api.md)",
    )
    limits: JsonLimits = Field(
        default_factory=lambda: JsonLimits(), description="bounds on a decoded ingest body"
    )


_GROUP_FIELDS = ("source", "kind", "resource", "host", "severity", "...")


class IncidentsConfig(Strict):
    group_by: dict[str, list[str]] = Field(
        default_factory=dict,
        description="per source (or `default`): fields that make the grouping key, "
        "like Alertmanager's group_by; `...` = one incident per alert",
    )
    reopen_within: Duration = Field(
        default=1800.0,
        ge=0,
        description="an alert firing again within this time after its incident resolved "
        "reopens that incident (a flap) instead of opening another; 0: never",
    )
    flapping: FlappingConfig = Field(default_factory=lambda: FlappingConfig())

    @field_validator("group_by")
    @classmethod
    def _known_fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for source, fields in value.items():
            if not fields:
                raise ValueError(f"{source}: give at least one field")
            for name in fields:
                if name not in _GROUP_FIELDS and not (
                    name.startswith("labels.") and len(name) > len("labels.")
                ):
                    known = ", ".join(_GROUP_FIELDS)
                    raise ValueError(f"{source}: unknown field {name!r} (use labels.X, {known})")
        return value


class FlappingConfig(Strict):
    """When an incident is flapping: `flaps` reopenings within `within` (in event time)."""

    flaps: int = Field(default=3, ge=1, description="reopenings that make an incident flapping")
    within: PositiveDuration = Field(default=3600.0, description="the window they fall in")


# The schemes of the store URLs the store opens (`postgres`/`postgresql` get psycopg 3).
STORE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgres", "postgresql+psycopg")


class Config(Strict):
    store: str = "sqlite:///opsmedic.db"
    rules_dir: Path = Path("rules")
    state_dir: Path = Field(
        Path("state"),
        description="opsmedic's own working files (archive intents), beside the config",
    )
    dry_run: bool = False
    record_suppressed: bool = Field(
        True, description="record decisions that start no run (docs/decisions.md)"
    )
    actions: ActionDefaults = Field(default_factory=lambda: ActionDefaults())
    ssh_hosts: dict[str, SSHHost] = Field(default_factory=dict)
    probes: list[ProbeConfig] = Field(default_factory=list)
    pollers: Pollers = Field(default_factory=list, description="HTTP JSON feeds polled for events")
    log: LogConfig = Field(default_factory=lambda: LogConfig())
    api: ApiConfig = Field(default_factory=lambda: ApiConfig())
    incidents: IncidentsConfig = Field(default_factory=lambda: IncidentsConfig())
    services: dict[str, ServiceConfig] = Field(
        default_factory=dict, description="what `opsmedic deploy` deploys (docs/releases.md)"
    )
    flags: Flags = Field(
        default_factory=dict, description="feature flags, seeded into the store (docs/flags.md)"
    )
    flag_store: FlagStoreConfig = Field(
        default_factory=lambda: FlagStoreConfig(),
        description="where flags are shared besides the store: redis: {url, prefix}",
    )
    maintenance: list[MaintenanceWindow] = Field(
        default_factory=list, description="windows that hold matching events (docs/silences.md)"
    )
    inhibit: list[InhibitRule] = Field(
        default_factory=list, description="alerts that hold others while they fire (ditto)"
    )
    slos: list[SloConfig] = Field(default_factory=list, description="objectives (docs/slo.md)")
    openslo: list[Path] = Field(
        default_factory=list, description="OpenSLO v1 files of `kind: SLO` (and SLI) to import"
    )
    base_dir: Path = Field(Path("."), exclude=True, description="directory of the config file")

    @field_validator("slos")
    @classmethod
    def _unique_slos(cls, value: list[SloConfig]) -> list[SloConfig]:
        for i, message in duplicate_names(value):
            raise ValueError(f"slos[{i}]: {message}")
        return value

    @field_validator("store")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        # Judged here, where `check` sees it at the store line, not first when the store opens;
        # only the scheme is read, so no password can reach the message.
        scheme, sep, _ = value.partition("://")
        if not sep:
            raise ValueError("not a database URL (use sqlite:///path.db or postgresql://…)")
        if scheme not in STORE_SCHEMES:
            raise ValueError(
                f"unsupported store scheme {scheme!r} (supported: {', '.join(STORE_SCHEMES)})"
            )
        return value
