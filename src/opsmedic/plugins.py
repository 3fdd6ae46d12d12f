"""Plugin contracts (actions, probes, webhook sources) and the registry they are looked up in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from opsmedic.clock import Clock
from opsmedic.config.located import unknown_name
from opsmedic.config.schema import Config
from opsmedic.errors import PluginError
from opsmedic.model import Event, Observation, Outcome

P = TypeVar("P", bound=BaseModel)
S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class SettingsSpec(Generic[S]):
    """A plugin's section of opsmedic.yaml: its top-level key (unchanged for users) and model."""

    key: str
    model: type[S]


@dataclass(slots=True)
class ActionContext:
    """What an action may use: the clock, a bound logger, dry-run, and the validated config."""

    clock: Clock
    log: Any  # structlog BoundLogger; Any because structlog's proxies are not one class
    config: Config
    dry_run: bool = False
    run_id: str = ""
    rule: str = ""
    target: str = ""
    # The step's time budget (its `timeout:` or the config default); the engine enforces it
    # with a grace margin, so an action that honours it can still clean up and report.
    timeout: float = 60.0
    # The plugins in use: an action that checks its own work runs a configured probe again.
    registry: Registry | None = None


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


@dataclass(slots=True)
class ProbeContext:
    """What a probe check may use."""

    clock: Clock
    log: Any
    config: Config
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
