"""Plugin contracts (actions, probes, webhook sources) and the registry they are looked up in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from opsmedic.clock import Clock
from opsmedic.config.located import unknown_name
from opsmedic.config.schema import SSHHost
from opsmedic.errors import PluginError
from opsmedic.flags.changes import Author, FlagRecord
from opsmedic.model import Deployment, Event, Observation, Outcome

P = TypeVar("P", bound=BaseModel)
S = TypeVar("S", bound=BaseModel)
# Runs a configured probe once by name and returns its events (not emitted); raises
# PluginError for a name the config has no probe of, ConfigError for a misconfigured one.
ProbeOnce = Callable[[str], Awaitable[list[Event]]]
# The most of a traceback a rollback takes from the CLI or the API: its frames are all
# "what changed" reads, and a traceback is a few KiB; this keeps a pasted log out of the store.
TRACEBACK_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class SettingsSpec(Generic[S]):
    """A plugin's section of opsmedic.yaml: its top-level key (unchanged for users) and model."""

    key: str
    model: type[S]

    def pick(self, sections: Mapping[str, BaseModel]) -> S:
        """This section's instance among the loaded ones; where the config was loaded without
        it, the model's defaults, as for a section the file leaves out."""
        found = sections.get(self.key)
        return self.model.model_validate({}) if found is None else self.model.model_validate(found)


class ReleaseControl(Protocol):
    """The release controller as the `deploy` and `rollback` actions reach it (never by import).

    Refusals (an unknown service or version, a deployment already running, nothing to roll
    back to) raise ReleaseRefused with the reason."""

    async def start(
        self, service: str, version: str, env: str | None = None, *,
        requested_by: str = "", force: bool = False,
    ) -> Deployment:  # fmt: skip
        """Record a deployment and drive it in the background; returns it as started."""
        ...

    async def rollback(
        self, service: str, env: str | None = None, *, to: str | None = None,
        reason: str = "", requested_by: str = "", traceback: str = "",
    ) -> Deployment:  # fmt: skip
        """Switch back to the last known good version now, without analysis; `traceback`
        (the error that called for it) marks the files it points into in "what changed"."""
        ...


class ScaleControl(Protocol):
    """The scaler as the `scale` action reaches it (never by import). Refusals (an unknown
    service, below min, above max, inside the cooldown) raise ScaleRefused; an instance that
    failed its health check, or a router error, is an Outcome that is not ok."""

    async def scale(
        self, service: str, *, by: int | None = None, to: int | None = None, dry_run: bool = False
    ) -> Outcome: ...


class FlagControl(Protocol):
    """The flag service as the `set_flag` action reaches it (never by import). An unknown
    flag raises NotFoundError (with close matches), a change that leaves an invalid flag
    FlagRefused, Redis unreachable FlagStoreError; nothing is written then."""

    async def get(self, key: str) -> FlagRecord: ...

    async def set_enabled(
        self, key: str, on: bool, by: Author, expected_version: int | None = None
    ) -> FlagRecord: ...

    async def rollout(
        self, key: str, percentage: int, by: Author, expected_version: int | None = None
    ) -> FlagRecord: ...

    async def set_default(
        self, key: str, variant: str, by: Author, expected_version: int | None = None
    ) -> FlagRecord: ...


@dataclass(slots=True)
class ActionContext:
    """What an action may use: the clock, a bound logger, dry-run, its own validated settings,
    and the few shared config values actions need (none gets the whole config or registry)."""

    clock: Clock
    log: Any  # structlog BoundLogger; Any because structlog's proxies are not one class
    # The action's section of the config, validated by its SettingsSpec's model; None when it
    # declares none.
    settings: Any = None
    dry_run: bool = False
    run_id: str = ""
    rule: str = ""
    target: str = ""
    # The step's time budget (its `timeout:` or the config default); the engine enforces it
    # with a grace margin, so an action that honours it can still clean up and report.
    timeout: float = 60.0
    # The config's `actions.timeout`: what an action's own `timeout` parameter defaults to
    # (http_request's bound on one exchange), whatever the step's budget.
    default_timeout: float = 60.0
    # The config file's directory: relative paths in rules (cwd, dir, key files) resolve here.
    base_dir: Path = field(default_factory=Path)
    # opsmedic's own working files (archive intents).
    state_dir: Path = field(default_factory=lambda: Path("state"))
    # Bytes kept per stream of a command's or a response's output (actions.output_limit).
    output_limit: int = 65536
    # `ssh_hosts:`, shared by run_command's `host:` and archive_logs' sftp:// destinations.
    ssh_hosts: Mapping[str, SSHHost] = field(default_factory=dict)
    # Runs a configured probe once by name, for an action that checks its own work (recheck);
    # None where no probes are wired.
    probe_once: ProbeOnce | None = None
    # The release controller, for `deploy` and `rollback`; None where no services are wired.
    releases: ReleaseControl | None = None
    # The scaler, for `scale`; None where no service declares `scale:`.
    scaling: ScaleControl | None = None
    # The flag service, for `set_flag`; None where no store is wired.
    flags: FlagControl | None = None
    # When what the run is about began (epoch seconds): the triggering event's time, and its
    # incident's first event's when the engine knows it (None: no incident). The loghunt
    # action's window starts before them.
    event_time: float | None = None
    incident_opened_at: float | None = None


@dataclass(frozen=True, slots=True)
class ActionSpec(Generic[P]):
    """An action: its parameter model and one async entry point that returns an Outcome.

    `idempotent` actions may be re-run after a crash interrupted them; `destructive` ones are
    flagged in `opsmedic check` and the docs.
    """

    name: str
    params: type[P]
    run: Callable[[P, ActionContext], Awaitable[Outcome]]
    idempotent: bool = False
    destructive: bool = False
    summary: str = ""
    settings: SettingsSpec[Any] | None = None


@dataclass(slots=True)
class ProbeContext:
    """What a probe check may use: its own validated settings and the config's directory."""

    clock: Clock
    log: Any
    # The probe's section of the config (see SettingsSpec); None when it declares none.
    settings: Any = None
    # The config file's directory: relative paths in probe params resolve here.
    base_dir: Path = field(default_factory=Path)
    timeout: float = 10.0
    # Kept by the runner for this configured probe from one check to the next (the process
    # probe's CPU samples); a probe owns its keys and must keep what it stores bounded.
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProbeSpec(Generic[P]):
    """A probe: its parameter model and one async check yielding observations.

    `default_interval` (seconds) is used when a probe's config sets no `interval`; without
    it the runner's general default applies. `default_jitter` likewise for `jitter`.
    """

    name: str
    params: type[P]
    check: Callable[[P, ProbeContext], Awaitable[list[Observation]]]
    summary: str = ""
    default_interval: float | None = None
    default_jitter: float = 0.1
    settings: SettingsSpec[Any] | None = None


@dataclass(frozen=True, slots=True)
class WebhookSpec(Generic[S]):
    """A monitoring tool's alert webhook: its name (the URL's last part), a pure parser,
    and an optional check of the request (a signature) with its settings."""

    name: str
    parse: Callable[[Any], list[Event]]
    verify: Callable[[bytes, Mapping[str, str], S], None] | None = None  # raises WebhookRefused
    settings: SettingsSpec[S] | None = None
    summary: str = ""


@dataclass(slots=True)
class Registry:
    """Name → spec for actions, probes and webhooks; built once at start-up by the runtime and
    passed in (no singletons)."""

    actions: dict[str, ActionSpec[Any]] = field(default_factory=dict)
    probes: dict[str, ProbeSpec[Any]] = field(default_factory=dict)
    webhooks: dict[str, WebhookSpec[Any]] = field(default_factory=dict)

    def action(self, name: str) -> ActionSpec[Any]:
        try:
            return self.actions[name]
        except KeyError:
            raise PluginError(unknown_name("action", name, self.actions)) from None

    def probe(self, name: str) -> ProbeSpec[Any]:
        try:
            return self.probes[name]
        except KeyError:
            raise PluginError(unknown_name("probe", name, self.probes)) from None

    def webhook(self, name: str) -> WebhookSpec[Any]:
        try:
            return self.webhooks[name]
        except KeyError:
            raise PluginError(unknown_name("webhook", name, self.webhooks)) from None

    def settings(self) -> list[SettingsSpec[Any]]:
        """The config sections the plugins declare, one per key (plugins may share one)."""
        declared = [(a.name, a.settings) for a in self.actions.values()]
        declared += [(p.name, p.settings) for p in self.probes.values()]
        declared += [(w.name, w.settings) for w in self.webhooks.values()]
        return merged_sections(declared)


def merged_sections(
    declared: Iterable[tuple[str, SettingsSpec[Any] | None]],
) -> list[SettingsSpec[Any]]:
    """One section per key from (plugin name, its settings); two models for one key are a
    PluginError: one section read two ways would validate for one plugin and not the other."""
    by_key: dict[str, SettingsSpec[Any]] = {}
    for name, spec in declared:
        if spec is None:
            continue
        known = by_key.setdefault(spec.key, spec)
        if known.model is not spec.model:
            raise PluginError(f"{name!r} reads section {spec.key!r} with another model")
    return list(by_key.values())
