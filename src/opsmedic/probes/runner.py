"""The probe framework: validates probe configs, runs each probe on its schedule, emits Events."""

from __future__ import annotations

import asyncio
import difflib
import random
import shlex
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel, ValidationError

from opsmedic.clock import Clock, next_delay
from opsmedic.config.located import unknown_name
from opsmedic.config.schema import ProbeConfig
from opsmedic.errors import ConfigError, PluginError, Problem
from opsmedic.model import Emit, Event, Observation, Status, fingerprint_of
from opsmedic.plugins import ProbeContext, ProbeOnce, ProbeSpec, Registry

# Params keys that name the observed thing, in order of preference, for events whose probe
# could not say (a crash or a timeout) — so they land on the same resource as healthy readings.
_RESOURCE_KEYS = ("url", "host", "path", "target", "name")
# Seconds between checks when neither the probe's config nor its type says.
DEFAULT_INTERVAL = 30.0


def validate_probe_params(spec: ProbeSpec[Any], params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check `params` against the probe's model: (field path inside params, message) per problem.

    The path is dotted (`expect_status.0`) and empty for a problem with the params as a whole.
    """
    try:
        spec.params.model_validate(dict(params))
    except ValidationError as exc:
        return _described(exc, spec)
    return []


@dataclass(frozen=True, slots=True)
class ProbeProblem:
    """One problem of the configured probe `probes[index]`: a `name` or `type` with its
    message, or `params` its type's model refused (`error`, for the caller to word)."""

    index: int
    field: str
    message: str = ""
    error: ValidationError | None = None
    spec: ProbeSpec[Any] | None = None


def probe_problems(
    entries: list[Any], probes: Mapping[str, ProbeSpec[Any]]
) -> Iterator[ProbeProblem]:
    """The one check of configured probes (`opsmedic check` and the runner): duplicate names,
    unknown types, params their type refuses. `entries` are raw: a name, type or params of the
    wrong shape is the schema's to report, and skipped here."""
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        name, kind, params = entry.get("name"), entry.get("type"), entry.get("params", {})
        # Probe names are event kinds that rules match on; two probes with one name would
        # merge their readings into one fingerprint.
        if isinstance(name, str) and name in seen:
            yield ProbeProblem(i, "name", f"duplicate probe name {name!r}")
        if isinstance(name, str):
            seen.add(name)
        spec = probes.get(kind) if isinstance(kind, str) else None
        if spec is None:
            if isinstance(kind, str):
                yield ProbeProblem(i, "type", unknown_name("probe type", kind, probes))
            continue
        if not isinstance(params, dict):
            continue
        try:
            spec.params.model_validate(params)
        except ValidationError as exc:
            yield ProbeProblem(i, "params", error=exc, spec=spec)


def _described(error: ValidationError | None, spec: ProbeSpec[Any] | None) -> list[tuple[str, str]]:
    """The runner's wording of params a probe's model refused: (path inside params, message)."""
    if error is None or spec is None:
        return []
    return [_describe(err, spec.params) for err in error.errors()]


def _describe(err: Any, model: type[BaseModel]) -> tuple[str, str]:
    loc = ".".join(str(part) for part in err["loc"])
    if err["type"] == "extra_forbidden":
        # Unknown keys are usually typos; naming the close match saves a trip to the docs.
        model = _nested(model, err["loc"][:-1])
        close = difflib.get_close_matches(str(err["loc"][-1]), list(model.model_fields), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        return loc, f"unknown key{hint}; known: {', '.join(model.model_fields)}"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return loc, msg


def _nested(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The model of a nested section at `loc` (the host probe's `culprits`), else `model`."""
    for part in loc:
        field = model.model_fields.get(str(part))
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return model
        model = inner
    return model


def default_resource(config: ProbeConfig, params: BaseModel) -> str:
    """What a probe's events are about when the probe does not say: URL, host, path, argv, name."""
    for key in _RESOURCE_KEYS:
        value = getattr(params, key, None)
        if isinstance(value, str | PurePath) and str(value):
            return str(value)
    argv = getattr(params, "argv", None)
    if isinstance(argv, list) and argv:
        return shlex.join(str(a) for a in argv)
    return config.name


@dataclass(slots=True)
class _Probe:
    config: ProbeConfig
    spec: ProbeSpec[Any]
    params: BaseModel
    resource: str
    log: Any
    interval: float
    jitter: float
    settings: BaseModel | None
    state: dict[str, Any] = field(default_factory=dict)


class ProbeRunner:
    """Runs the configured probes: forever on their schedules (`run`) or once (`run_once`).

    Every reading becomes one Event: source = probe type, kind = probe name. A probe that
    raises or outlives its timeout yields a firing event labelled `probe_error=crash|timeout`
    and is scheduled again as usual, so a broken probe is loud, never silently gone.
    """

    def __init__(
        self,
        configs: list[ProbeConfig],
        registry: Registry,
        base_dir: Path,
        clock: Clock,
        emit: Emit,
        log: Any,
        *,
        settings: Mapping[str, BaseModel],
        config_path: str = "opsmedic.yaml",
        host: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        # The config's directory and the plugins' sections, for each check's ProbeContext.
        self._base_dir = base_dir
        self._settings = settings
        self._clock = clock
        self._emit = emit
        self._log = log
        self._host = host if host is not None else socket.gethostname()
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self._probes = self._build(configs, registry, config_path)

    @property
    def names(self) -> list[str]:
        """The configured probe names, in config order."""
        return [p.config.name for p in self._probes]

    @property
    def intervals(self) -> dict[str, float]:
        """Seconds between checks per probe name: the config's, else the type's default."""
        return {p.config.name: p.interval for p in self._probes}

    def _build(
        self, configs: list[ProbeConfig], registry: Registry, config_path: str
    ) -> list[_Probe]:
        problems: list[Problem] = []
        entries = [{"name": c.name, "type": c.type, "params": c.params} for c in configs]
        for found in probe_problems(entries, registry.probes):
            where = f"probes[{found.index}].{found.field}"
            if found.error is None:
                problems.append(Problem(config_path, 0, 0, where, found.message))
            for loc, message in _described(found.error, found.spec):
                problems.append(Problem(config_path, 0, 0, f"{where}.{loc}" if loc else where,
                                        message))  # fmt: skip
        if problems:
            raise ConfigError(problems)
        probes: list[_Probe] = []
        for cfg in configs:
            spec = registry.probe(cfg.type)
            params = spec.params.model_validate(cfg.params)
            log = self._log.bind(probe=cfg.name, probe_type=cfg.type)
            interval = cfg.interval or spec.default_interval or DEFAULT_INTERVAL
            jitter = spec.default_jitter if cfg.jitter is None else cfg.jitter
            resource = default_resource(cfg, params)
            settings = spec.settings.pick(self._settings) if spec.settings else None
            probes.append(_Probe(cfg, spec, params, resource, log, interval, jitter, settings))
        return probes

    async def run(self) -> None:
        """Run every probe forever: first check at once, then every interval plus jitter.

        Returns at once when no probe is configured; cancel the task to stop it.
        """
        async with asyncio.TaskGroup() as tg:
            for probe in self._probes:
                tg.create_task(self._loop(probe), name=f"probe:{probe.config.name}")

    async def run_once(self) -> list[Event]:
        """Check every probe once, concurrently; the events in config order (not emitted)."""
        batches = await asyncio.gather(*(self._check(p) for p in self._probes))
        return [event for batch in batches for event in batch]

    async def _loop(self, probe: _Probe) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            events = await self._check(probe)
            try:
                await self._emit(events)
            except Exception as exc:
                # The sink's trouble must not stop the probe; the next reading may get through.
                probe.log.error("probe_emit_failed", error=_error_text(exc), exc_info=True)
            # Measured from the check's start so slow checks do not drift the schedule.
            delay = next_delay(probe.interval, probe.jitter, self._rng)
            await asyncio.sleep(max(0.0, started + delay - loop.time()))

    async def _check(self, probe: _Probe) -> list[Event]:
        cfg = probe.config
        ctx = ProbeContext(self._clock, probe.log, probe.settings, self._base_dir,
                           timeout=cfg.timeout, state=probe.state)  # fmt: skip
        started = self._clock.monotonic()
        deadline = asyncio.timeout(cfg.timeout)
        try:
            async with deadline:
                observations = await probe.spec.check(probe.params, ctx)
            events = [self._event(probe, obs) for obs in observations]
        except Exception as exc:
            # Only our own deadline is a timeout; a TimeoutError raised inside the check
            # (a library's own limit) is the probe failing and is reported as a crash.
            if isinstance(exc, TimeoutError) and deadline.expired():
                probe.log.warning("probe_timed_out", timeout_s=cfg.timeout)
                message = f"probe timed out after {cfg.timeout:g}s"
                return [self._failure(probe, message, "timeout")]
            probe.log.error("probe_crashed", error=_error_text(exc), exc_info=True)
            return [self._failure(probe, f"probe crashed: {_error_text(exc)}", "crash")]
        duration_ms = (self._clock.monotonic() - started) * 1000
        for event in events:
            probe.log.debug(
                "probe_checked",
                resource=event.resource,
                status=str(event.status),
                value=event.value,
                duration_ms=round(duration_ms, 1),
            )
        return events

    def _event(self, probe: _Probe, obs: Observation) -> Event:
        cfg = probe.config
        resource = obs.resource or probe.resource
        # Operator-set labels win: they are identity, while a probe's labels describe a reading.
        labels = {**{str(k): str(v) for k, v in obs.labels.items()}, **cfg.labels}
        return Event(
            source=cfg.type,
            kind=cfg.name,
            resource=resource,
            host=self._host,
            labels=labels,
            value=_value(obs.value),
            status=Status.RESOLVED if obs.ok else Status.FIRING,
            severity=obs.severity or ("info" if obs.ok else "critical"),
            fingerprint=self._fingerprint(cfg, resource),
            time=self._clock.now(),
            payload={"message": obs.message, "details": dict(obs.details)},
        )

    def _failure(self, probe: _Probe, message: str, kind: str) -> Event:
        obs = Observation(ok=False, value=None, message=message, labels={"probe_error": kind})
        return self._event(probe, obs)

    def _fingerprint(self, cfg: ProbeConfig, resource: str) -> str:
        # Identity leaves out the reading's own labels (status_code, probe_error, ...): a 500,
        # a timeout and the 200 that follows are the same thing observed, so firing and
        # resolved events pair up for `for:`, incidents and resolution.
        return fingerprint_of(cfg.type, cfg.name, resource, self._host, cfg.labels)


def probe_once(
    configs: list[ProbeConfig],
    registry: Registry,
    base_dir: Path,
    clock: Clock,
    log: Any,
    *,
    settings: Mapping[str, BaseModel],
) -> ProbeOnce:
    """A ProbeOnce over the configured probes, for an action that checks its own work."""

    async def check(name: str) -> list[Event]:
        chosen = [c for c in configs if c.name == name]
        if not chosen:
            raise PluginError(unknown_name("probe", name, [c.name for c in configs]))
        runner = ProbeRunner(chosen, registry, base_dir, clock, _ignore, log, settings=settings)
        return await runner.run_once()

    return check


async def _ignore(events: list[Event]) -> None:
    return None


def _value(value: object) -> float | str | None:
    if value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):  # includes bool; plugins often hand back ints
        return float(value)
    return str(value)


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
