"""Build and wire everything from a config: registry, rules, store, engine, probes, hot reload."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from opsmedic.clock import Clock, SystemClock
from opsmedic.config.loader import ConfigRead, read_config
from opsmedic.config.located import Located, unknown_name, validation_problems
from opsmedic.config.refs import ConfigNames, config_names
from opsmedic.config.schema import Config
from opsmedic.errors import ConfigError, PluginError, Problem
from opsmedic.logs import get_logger
from opsmedic.model import Deployment, Event
from opsmedic.plugins import (
    ActionSpec,
    ProbeSpec,
    Registry,
    SettingsSpec,
    WebhookSpec,
    merged_sections,
)

if TYPE_CHECKING:
    # Imported by the functions that need them: the engine and the store bring SQLAlchemy
    # (≈200 ms), which `opsmedic check` and `rules test` do without, and the plugins, rules
    # and probes (≈0.1 s of models) are not needed by the commands that only read the store.
    from opsmedic.api.fastpath import IngestFastPath
    from opsmedic.api.server import ApiServer
    from opsmedic.engine.loop import Engine
    from opsmedic.flagops.service import FlagService
    from opsmedic.metrics import Metrics
    from opsmedic.releases.controller import ReleaseController
    from opsmedic.reports.budget import SloBudget
    from opsmedic.rules.ruleset import RuleSet
    from opsmedic.slo.watch import SloWatch
    from opsmedic.store.store import Store

DEFAULT_CONFIG = Path("opsmedic.yaml")
POLLER_GRACE_S = 5.0  # beyond a poll's own timeout, for its commit and cursor save


def find_config(explicit: Path | None) -> Path | None:
    """--config, else $OPSMEDIC_CONFIG, else ./opsmedic.yaml if present, else built-in defaults."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("OPSMEDIC_CONFIG"):
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def build_registry(load_entry_points: bool = True) -> Registry:
    """Built-in actions, probes and webhooks, then third-party ones from entry-point groups."""
    from opsmedic.actions import (
        annotate,
        archive_logs,
        cleanup,
        deploy,
        dns_failover,
        http_request,
        kill_process,
        loghunt,
        noop,
        notify,
        recheck,
        rollback,
        run_command,
        scale,
        set_flag,
    )
    from opsmedic.probes import BUILTIN_PROBES
    from opsmedic.sources.webhooks import BUILTIN_WEBHOOKS

    actions = (noop, run_command, http_request, notify, kill_process, archive_logs, dns_failover,
               recheck, annotate, deploy, rollback, set_flag, loghunt, scale, cleanup)  # fmt: skip
    reg = Registry(
        actions={module.ACTION.name: module.ACTION for module in actions},
        probes={spec.name: spec for spec in BUILTIN_PROBES},
        webhooks={spec.name: spec for spec in BUILTIN_WEBHOOKS},
    )
    if load_entry_points:
        _add_entry_points(reg)
    return reg


def _add_entry_points(reg: Registry) -> None:
    """Third-party actions, probes and webhooks from their entry-point groups."""
    for ep in entry_points(group="opsmedic.actions"):
        reg.actions[ep.name] = _loaded(ep.load(), ActionSpec, ep.name)
    for ep in entry_points(group="opsmedic.probes"):
        reg.probes[ep.name] = _loaded(ep.load(), ProbeSpec, ep.name)
    for ep in entry_points(group="opsmedic.sources"):
        reg.webhooks[ep.name] = _loaded(ep.load(), WebhookSpec, ep.name)


def plugin_sections(load_entry_points: bool = True) -> list[SettingsSpec[Any]]:
    """The plugins' config sections, as `build_registry().settings()` has them, for commands
    that read the config but run no plugin (`runs`, `incidents`, `token`…): the built-ins'
    come from their small settings modules, so those commands do not build every plugin's
    models (about 0.1 s); a test keeps the two lists equal."""
    from opsmedic.actions import annotate_accounts, cleanup_settings, notify_targets, protection
    from opsmedic.dns import rfc2136
    from opsmedic.sources.webhooks import pagerduty

    builtin: list[SettingsSpec[Any]] = [
        notify_targets.SETTINGS,
        annotate_accounts.SETTINGS,
        protection.SETTINGS,
        cleanup_settings.SETTINGS,
        rfc2136.SETTINGS,
        pagerduty.SETTINGS,
    ]
    declared = [(spec.key, spec) for spec in builtin]
    if load_entry_points:
        third = Registry()
        _add_entry_points(third)
        declared += [(spec.key, spec) for spec in third.settings()]
    return merged_sections(declared)


Spec = TypeVar("Spec", ActionSpec[Any], ProbeSpec[Any], WebhookSpec[Any])


def _loaded(obj: object, kind: type[Spec], name: str) -> Spec:
    """A third-party spec, checked: a wrong object fails at start-up, not at the first event."""
    if not isinstance(obj, kind):
        raise PluginError(f"entry point {name!r} is not an {kind.__name__}: {obj!r}")
    if obj.name != name:
        raise PluginError(f"entry point {name!r} loads a spec named {obj.name!r}")
    return obj


def check_config(data: dict[str, Any], located: Located, registry: Registry) -> list[Problem]:
    """Checks that need the registry: probe types and params, per_action names; located.

    They read the raw config, so they run even when another section failed validation.
    """
    from opsmedic.probes.runner import probe_problems
    from opsmedic.releases.start_steps import start_steps
    from opsmedic.releases.steps import service_problems, switch_steps

    problems = _per_action_problems(data, located, registry)
    problems += switch_steps(data, located, registry)[1] + service_problems(data, located)
    problems += start_steps(data, located, registry)[1]
    probes = data.get("probes")
    for found in probe_problems(probes if isinstance(probes, list) else [], registry.probes):
        loc = ("probes", found.index, found.field)
        if found.error is not None and found.spec is not None:
            problems += validation_problems(found.error, located, found.spec.params, loc)
        else:
            problems.append(located.problem(loc, found.message))
    return problems


def _per_action_problems(
    data: dict[str, Any], located: Located, registry: Registry
) -> list[Problem]:
    """A per-action limit on a name no action has would limit nothing, silently."""
    loc = ("actions", "concurrency", "per_action")
    node: Any = data
    for part in loc:
        node = node.get(part) if isinstance(node, dict) else None
    names = (
        [name for name in node if name not in registry.actions] if isinstance(node, dict) else []
    )
    return [
        located.problem((*loc, str(name)), unknown_name("action", str(name), registry.actions),
                        at_key=True)
        for name in names
    ]  # fmt: skip


@dataclass(slots=True)
class Runtime:
    """Everything a command needs, built once from the config."""

    config: Config
    config_path: Path | None
    registry: Registry
    # The plugins' own config sections, validated, by top-level key (see SettingsSpec).
    settings: dict[str, BaseModel]
    ruleset: RuleSet
    clock: Clock
    store: Store | None
    engine: Engine
    # The names the config defines (notify targets, ssh hosts…) that rules may refer to.
    config_names: ConfigNames = field(default_factory=dict)
    rule_errors: list[Problem] = field(default_factory=list)
    # The release controller, where the config has services and a store.
    releases: ReleaseController | None = None
    # Changes flags in the store (and Redis, with flag_store.redis); where there is a store.
    flags: FlagService | None = None
    # One reload at a time: a slower earlier load must not replace the rules of a later one.
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def reload_rules(self) -> tuple[RuleSet, list[Problem]]:
        """Load the rules again and hand them to the engine: (the rules in force, this
        reload's problems). A set that fails validation is rejected whole and the last good
        one stays. The file watcher, SIGHUP and `POST /api/v1/rules/reload` all call this."""
        from opsmedic.rules.loader import load_rules

        log = get_logger(component="rules")
        async with self._reloading:
            try:
                # On a worker thread: reading and validating files must not stall the loop.
                ruleset = await asyncio.to_thread(
                    load_rules, self.config.rules_dir, self.registry, self.config_names
                )
            except ConfigError as exc:
                self.rule_errors = exc.problems
                for problem in exc.problems:
                    log.error("rules.rejected", problem=str(problem))
                log.error("rules.kept_last_good", rules=len(self.ruleset))
                return self.ruleset, exc.problems
            self.ruleset, self.rule_errors = ruleset, []
            self.engine.reload(ruleset)
            return ruleset, []


def build(
    config_path: Path | None,
    *,
    rules_path: Path | None = None,
    dry_run: bool = False,
    with_store: bool = True,
    clock: Clock | None = None,
    registry: Registry,
    seed_flags: bool = True,
) -> Runtime:
    """Validate config and rules (raising ConfigError with every problem), open the store
    (seeding the config's flags unless `seed_flags` is false)."""
    from opsmedic.engine.loop import Engine
    from opsmedic.probes.runner import probe_once
    from opsmedic.rules.loader import load_rules
    from opsmedic.store.store import Store

    read = read_config(config_path, registry.settings())
    problems = read.problems + check_config(read.data, read.located, registry)
    if problems or read.config is None:
        raise ConfigError(problems)
    config = read.config
    settings = read.settings
    if rules_path is not None:
        config.rules_dir = rules_path
    names = config_names(read.data)
    ruleset = load_rules(config.rules_dir, registry, names)
    store = None
    clock = clock or SystemClock()
    if with_store:
        store = Store(config.store)
        store.migrate()
        if seed_flags:
            _seed_flags(store, config, config_path, clock)
    recheck = probe_once(config.probes, registry, config.base_dir, clock,
                         get_logger(component="probes"), settings=settings)  # fmt: skip
    engine = Engine(ruleset=ruleset, registry=registry, config=config, settings=settings,
                    probe_once=recheck, store=store, clock=clock, dry_run=dry_run)  # fmt: skip
    rt = Runtime(config, config_path, registry, settings, ruleset, clock, store, engine, names)
    rt.releases = _release_controller(rt, read, dry_run)
    rt.flags = _flag_service(rt)
    if any(service.scale is not None for service in config.services.values()):
        from opsmedic.releases.scale import Scaler

        rt.engine.executor.scaling = Scaler(config.services, config.state_dir, clock)
    return rt


def slo_budget(config: Config, store: Store, now: Callable[[], float]) -> SloBudget | None:
    """The post-mortems' SLO budget lines (reports/budget.py) measured by slo/; None without
    SLOs (the draft then says the budget is not measured)."""
    from functools import partial

    from opsmedic.reports.budget import SloBudget
    from opsmedic.slo.budget_use import budget_uses, probe_readers, use_burndown

    if not config.slos:
        return None
    slos, samples = config.slos, store.slo_samples
    readers = probe_readers(slos, {p.name: p.type for p in config.probes})
    return SloBudget(partial(budget_uses, slos, samples), partial(use_burndown, slos, samples),
                     now, readers)  # fmt: skip


def _seed_flags(store: Store, config: Config, config_path: Path | None, clock: Clock) -> None:
    """The config's flags into the store, which keeps each one's switch (docs/flags.md)."""
    from opsmedic.flags.changes import Author

    if not config.flags:
        return
    by = Author("config", str(config_path.resolve() if config_path else "<defaults>"))
    log = get_logger(component="flags")
    for record in store.flags.seed(config.flags, by, clock.now()):
        log.info("flag.seeded", key=record.flag.key, version=record.version,
                 enabled=record.flag.enabled)  # fmt: skip


def _flag_service(rt: Runtime) -> FlagService | None:
    """The flag service over the store (and Redis, if configured), announcing each change
    through the engine's inbox like the release controller; the set_flag action reaches it."""
    from opsmedic.flagops.mirror import RedisMirror
    from opsmedic.flagops.service import FlagService
    from opsmedic.flags.redis_wire import Layout

    if rt.store is None:
        return None
    found = rt.config.flag_store.redis
    redis = None
    if found is not None:
        redis = RedisMirror(found.url, layout=Layout(found.prefix), timeout_s=found.timeout)
    service = FlagService(rt.store, rt.clock, redis=redis, announce=rt.engine.submit,
                          check_every=found.check_every if found else 5.0)  # fmt: skip
    rt.engine.executor.flags = service
    return service


def _release_controller(rt: Runtime, read: ConfigRead, dry_run: bool) -> ReleaseController | None:
    """The controller of the config's services, wired to the engine: its executor runs the
    switch steps and its inbox takes the deployment events; the actions reach it back."""
    from opsmedic.engine.steps import ExecutorSteps
    from opsmedic.releases.blue_green import BlueGreens
    from opsmedic.releases.controller import ReleaseController
    from opsmedic.releases.measure import sample
    from opsmedic.releases.start_steps import start_steps
    from opsmedic.releases.steps import switch_steps

    if not rt.config.services or rt.store is None:
        return None
    steps, _ = switch_steps(read.data, read.located, rt.registry)  # problems: refused above
    controller = ReleaseController(
        services=rt.config.services, switch=steps, store=rt.store,
        runner=ExecutorSteps(rt.engine.executor, rt.clock), announce=rt.engine.submit,
        sample=sample, clock=rt.clock, log=get_logger(component="releases"),
        dry_run=dry_run or rt.config.dry_run,
        blue_greens=BlueGreens(start_steps(read.data, read.located, rt.registry)[0]),
    )  # fmt: skip
    rt.engine.executor.releases = controller
    return controller


async def watch_rules(
    rt: Runtime, on_change: Callable[[RuleSet | None], None] | None = None
) -> None:
    """Reload rules when files in the rules directory change."""
    from watchfiles import awatch  # imported here: only `opsmedic run` watches files

    async for _changes in awatch(rt.config.rules_dir, debounce=200, step=50):
        await _reload(rt, on_change)


async def _reload(rt: Runtime, on_change: Callable[[RuleSet | None], None] | None) -> None:
    """Reload, then tell `on_change` the new rules (None: the reload was rejected)."""
    ruleset, problems = await rt.reload_rules()
    if on_change:
        on_change(None if problems else ruleset)


class StoreCursors:
    """Pollers' cursors kept in the store, so a restart reads nothing twice."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store, self._clock = store, clock

    async def load_cursor(self, name: str) -> str | None:
        found: str | None = await asyncio.to_thread(self._store.load_cursor, name)
        return found

    async def save_cursor(self, name: str, value: str) -> None:
        await asyncio.to_thread(self._store.save_cursor, name, value, self._clock.now())


@dataclass(slots=True)
class Service:
    """What `run_forever` started, for callers that need it (tests, the demo): the metrics
    and, when the API is on, its bound address."""

    metrics: Metrics
    api_address: tuple[str, int] | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    slos: SloWatch | None = None  # with SLOs in the config and a store


async def run_forever(rt: Runtime, stop: asyncio.Event, service: Service | None = None) -> None:
    """`opsmedic run`: engine, API, probes, pollers and the rules watcher until `stop` is set."""
    from opsmedic.metrics import Metrics
    from opsmedic.probes.runner import ProbeRunner
    from opsmedic.sources.poller import Poller

    log = get_logger(component="runtime")
    service = service or Service(Metrics())
    metrics = service.metrics
    rt.engine.on_finished = metrics.finished
    rt.engine.on_held = metrics.hold
    holds = rt.engine.holds
    metrics.watch_evictions(lambda: rt.engine.muting.evicted() | (holds.evicted() if holds else {}))
    metrics.watch_queues(rt.engine.pools)
    # The port first: a start that cannot listen (another `opsmedic run` holds it) stops
    # here with one line, before its recovery could touch the live service's runs, and
    # before any probe. Recovery only in `run`: a replay or a CLI command beside a live
    # service never takes its runs (docs/engine.md#crash-recovery).
    listener = _bind_api(rt)
    try:
        await rt.engine.start(recover=True)
    except BaseException:
        if listener is not None:
            listener.close()
        raise

    def recovered(found: Deployment) -> None:
        log.warning("deployment.recovered", service=found.service, env=found.env,
                    version=found.version, state=str(found.state),
                    reason=found.reason)  # fmt: skip

    if rt.releases is not None:
        from opsmedic.releases.recovery import recover

        for found in await recover(rt.releases):
            recovered(found)

    async def emit(events: list[Event]) -> object:
        return await rt.engine.submit(events)

    async def emit_probed(events: list[Event]) -> object:
        metrics.probed(events)
        accepted = await emit(events)
        if service.slos is not None:  # readings only from here: the API cannot forge them
            service.slos.observe_probed(events)
        return accepted

    async def emit_polled(events: list[Event]) -> object:
        metrics.received(events)
        return await emit(events)

    def on_rules(ruleset: RuleSet | None) -> None:
        if ruleset is None:
            metrics.reload_errors.inc()

    tasks: list[asyncio.Task[Any]] = []
    pollers: list[asyncio.Task[Any]] = []
    pollers_stop = asyncio.Event()

    if rt.releases is not None:
        from opsmedic.releases.recovery import keep_recovering

        def sweep_failed(exc: Exception) -> None:
            log.warning("deployment.sweep_failed", error=f"{type(exc).__name__}: {exc}")

        tasks.append(asyncio.create_task(
            keep_recovering(rt.releases, stop, recovered, failed=sweep_failed),
            name="deployments-sweep"))  # fmt: skip
    if rt.flags is not None and rt.flags.redis_url is not None:
        metrics.watch_flag_store(rt.flags.health, rt.clock)
        tasks.append(asyncio.create_task(rt.flags.watch(stop), name="flags-watch"))
    if rt.store is not None and rt.config.slos:
        service.slos = _watch_slos(rt, rt.store, metrics)
        tasks.append(asyncio.create_task(service.slos.run(), name="slos"))
    probes = ProbeRunner(rt.config.probes, rt.registry, rt.config.base_dir, rt.clock,
                         emit_probed, log, settings=rt.settings,
                         config_path=str(rt.config_path or "opsmedic.yaml"))  # fmt: skip
    tasks.append(asyncio.create_task(probes.run(), name="probes"))
    if rt.store is not None:
        from opsmedic.reports.drafts import keep_drafting

        def draft_failed(exc: Exception) -> None:
            log.warning("postmortem.draft_failed", error=f"{type(exc).__name__}: {exc}")

        tasks.append(asyncio.create_task(keep_drafting(
            rt.store, rt.clock, rt.config.incidents.reopen_within, stop, failed=draft_failed,
            budget=slo_budget(rt.config, rt.store, rt.clock.now)),
            name="postmortem-drafts"))  # fmt: skip
        cursors = StoreCursors(rt.store, rt.clock)
        for poller in rt.config.pollers:
            feed = Poller(poller, emit_polled, cursors, rt.clock, get_logger(component="poller"))
            pollers.append(
                asyncio.create_task(feed.run(pollers_stop), name=f"poller-{poller.name}")
            )
    if rt.config.rules_dir.is_dir():
        tasks.append(asyncio.create_task(watch_rules(rt, on_rules), name="rules-watch"))
    # SIGHUP reloads too (systemd's ExecReload): for a single rules file, which is not
    # watched, and for whoever prefers to say when.
    loop = asyncio.get_running_loop()
    hup = threading.current_thread() is threading.main_thread()  # signals need the main thread

    def on_hup() -> None:
        # A handler cannot await: the reload is a task, stopped with the others.
        tasks.append(asyncio.create_task(_reload(rt, on_rules), name="rules-reload"))

    if hup:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    api: ApiServer | None = None
    try:
        # Served after the probes start: importing FastAPI takes ~0.3 s, which the first
        # probe need not wait for (the port is bound already, above).
        api = await _start_api(rt, metrics, log, listener)
        service.api_address = api.address if api else None
        # Start-up objects (modules, rules, config) live as long as the process: frozen, the
        # collector's full passes stop re-scanning them, which keeps tail latency low.
        gc.collect()
        gc.freeze()
        log.info("started", rules=len(rt.ruleset), probes=len(rt.config.probes),
                 pollers=len(rt.config.pollers), store=rt.store.url if rt.store else "none",
                 api=_url(service.api_address))  # fmt: skip
        service.started.set()
        await stop.wait()
    finally:
        if hup:
            loop.remove_signal_handler(signal.SIGHUP)
        for task in tasks:
            task.cancel()
        # Pollers finish the poll they are in (emit, then save the cursor), bounded by the
        # longest poll timeout; only one that overruns it is cancelled.
        pollers_stop.set()
        grace = max((p.timeout for p in rt.config.pollers), default=0.0) + POLLER_GRACE_S
        if pollers:
            _, late = await asyncio.wait(pollers, timeout=grace)
            for task in late:
                task.cancel()
        await asyncio.gather(*tasks, *pollers, return_exceptions=True)
        # The API stops after the sources, before the engine: requests in flight still get
        # their events committed and their answer.
        if api is not None:
            await api.stop()
        elif listener is not None:
            listener.close()
        if rt.releases is not None:
            await rt.releases.close()
        await rt.engine.close()
        if rt.flags is not None:
            await rt.flags.aclose()
        log.info("stopped")


def _watch_slos(rt: Runtime, store: Store, metrics: Metrics) -> SloWatch:
    """The SLOs' samples from every committed event, their alerts into the engine."""
    from opsmedic.slo.watch import SloWatch

    watch = SloWatch(rt.config.slos, rt.config.probes, store, now=rt.clock.now,
                     call=rt.engine.journal.call, emit=rt.engine.submit,
                     log=get_logger(component="slo"), gauges=metrics.slos)  # fmt: skip
    rt.engine.on_committed = watch.observe
    metrics.watch_cost(lambda: watch.spent_s)
    return watch


def _bind_api(rt: Runtime) -> socket.socket | None:
    """The API's socket, bound (raises ListenError), when `run` serves the API."""
    if not rt.config.api.enabled or rt.store is None:
        return None
    from opsmedic.api.listen import bind

    return bind(rt.config.api.host, rt.config.api.port)


async def _start_api(
    rt: Runtime, metrics: Metrics, log: Any, listener: socket.socket | None
) -> ApiServer | None:
    if listener is None:
        return None
    from opsmedic.api.server import ApiServer

    app = api_app(rt, metrics)
    api = ApiServer(app, listener, on_stop=app.close_streams)
    await api.start()  # a failure stops what run_forever started, in its finally
    log.info("api.listening", url=_url(api.address))
    return api


def api_app(rt: Runtime, metrics: Metrics) -> IngestFastPath:
    """The API of `rt` (which must have a store), given the parts of it that the API uses."""
    from opsmedic.api.app import create_app
    from opsmedic.ui.pages import mount

    if rt.store is None:
        raise ValueError("the API needs a store")
    webhooks = {
        name: (spec, rt.settings[spec.settings.key] if spec.settings else None)
        for name, spec in rt.registry.webhooks.items()
    }
    api = create_app(engine=rt.engine, store=rt.store, clock=rt.clock, settings=rt.config.api,
                     metrics=metrics, rules=rt, webhooks=webhooks,
                     releases=rt.releases, flags=rt.flags, slos=rt.config.slos)  # fmt: skip
    mount(api.app)  # the dashboard: same app, same port, under /ui
    return api


def _url(address: tuple[str, int] | None) -> str:
    if address is None:
        return "off"
    host, port = address
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
