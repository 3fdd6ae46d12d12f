"""`opsmedic init`, `opsmedic check` and `opsmedic rules test`: writing and proving configs."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from opsmedic.cli import ConfigOpt, app, out
from opsmedic.cli.output import Cell, JsonOpt, print_json, print_table
from opsmedic.errors import ConfigError, OpsmedicError, Problem
from opsmedic.files import write_atomic

if TYPE_CHECKING:
    from opsmedic.config.canary import AnalysisConfig
    from opsmedic.config.schema import Config
    from opsmedic.plugins import Registry
    from opsmedic.rules.ruleset import RuleSet

# Config, rules, plugins (pydantic, Jinja2) and rich's tables are imported by the commands
# that use them: every command module is imported for `opsmedic --help`.

rules_app = typer.Typer(help="Work with rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="where to write the starter files")] = Path("."),
    force: Annotated[bool, typer.Option(help="overwrite existing files")] = False,
) -> None:
    """Write a commented starter opsmedic.yaml and a rules directory, and create its store."""
    from opsmedic.config.loader import load_config
    from opsmedic.runtime import plugin_sections
    from opsmedic.store.store import Store

    starter = resources.files("opsmedic.starter")
    config_path = directory / "opsmedic.yaml"
    targets = {
        config_path: starter.joinpath("opsmedic.yaml").read_text(),
        directory / "rules" / "example.yaml": starter.joinpath("rules.yaml").read_text(),
    }
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise OpsmedicError(f"{existing[0]} exists; use --force to overwrite")
    for path, text in targets.items():
        try:
            write_atomic(path, text)
        except OSError as exc:  # a directory that cannot be made or written (/proc, read-only)
            where = f" ({exc.filename})" if exc.filename else ""
            raise OpsmedicError(f"cannot write {path}: {exc.strerror or exc}{where}") from None
        out.print(f"wrote {path}", markup=False)
    # The store too: read commands and `token create` never create one, so `init` then
    # `token create` must find it.
    store = Store(load_config(config_path, plugin_sections())[0].store)
    try:
        store.migrate(create=True)
    finally:
        store.close()
    out.print(f"store {store.url}: ready", markup=False)
    out.print(f"next: opsmedic check {config_path}", markup=False)


@app.command()
def check(
    path: Annotated[
        Path | None, typer.Argument(help="a config file, a rules directory or one rule file")
    ] = None,
    unit: Annotated[
        Path | None,
        typer.Option(help="a systemd unit: report remediations it would forbid (docs/deploy.md)"),
    ] = None,
    strict: Annotated[bool, typer.Option(help="warnings fail the check too (exit 2)")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the errors and warnings as one JSON document")
    ] = False,
) -> None:
    """Validate config and rules: exit 0 when valid, 2 with every problem at file:line:col.
    Warnings (a set_flag naming a flag neither the config nor the store has) do not fail it
    unless --strict."""
    from opsmedic.cli.check_report import report, with_stored_flags
    from opsmedic.cli.scale_budget import scale_budget_warnings
    from opsmedic.config.loader import read_config
    from opsmedic.config.refs import ConfigNames
    from opsmedic.rules.loader import load_rules
    from opsmedic.runtime import build_registry, check_config, find_config

    def say(line: str) -> None:
        if not as_json:  # one JSON document, nothing else
            out.print(line, markup=False)

    registry = build_registry()
    problems: list[Problem] = []
    warnings: list[Problem] = []
    names: ConfigNames | None = None  # None: no config to check the names rules use against
    looked = ""  # where flags were looked for, said beside a warning about one
    read = None
    rules_path = path if path is not None and (path.is_dir() or _is_rule_file(path)) else None
    config_path = find_config(None) if rules_path is not None else (path or find_config(None))
    if rules_path is None or config_path is not None:
        read = read_config(config_path, registry.settings())
        names = read.names
        if names is not None:
            store = read.config.store if read.config is not None else None
            names, looked = with_stored_flags(names, store)
        if rules_path is not None:
            say(f"config {config_path}: read for the names rules refer to")
        else:
            problems += read.problems + check_config(read.data, read.located, registry)
            if not problems:
                say(f"config {config_path or '(defaults)'}: ok")
                for line in _service_lines(read.config) + _flag_lines(read.config):
                    say(line)
            # The rules are read even when the config has problems, so one run of `check`
            # shows all there is to fix; only a config file that is not there names none.
            if config_path is None or config_path.exists():
                rules_path = read.rules_dir
    if rules_path is not None:
        try:
            ruleset = load_rules(rules_path, registry, names, warnings)
        except ConfigError as exc:
            problems.extend(exc.problems)
        else:
            count = f"{len(ruleset)} rules in {len(ruleset.files)} files"
            say(f"rules {rules_path}: {count}: ok")
            if read is not None and read.config is not None:
                warnings += scale_budget_warnings(ruleset, read.config)
            if unit is not None and not problems:  # a unit is judged against a valid config
                problems += _unit_problems(unit, path, rules_path, ruleset, registry, say)
    failed_strictly = report(problems, warnings, looked, as_json=as_json, strict=strict)
    if problems:
        # File by file as they were read, each from top to bottom: the order of an editor.
        files = {p.file: n for n, p in reversed(list(enumerate(problems)))}
        raise ConfigError(sorted(problems, key=lambda p: (files[p.file], p.line, p.col)))
    if failed_strictly:
        raise typer.Exit(2)


def _flag_lines(config: Config | None) -> list[str]:
    """How many flags the config declares, and what each serves: seeded into the store when
    opsmedic starts (docs/flags.md); and the Redis they are shared through, if any."""
    from opsmedic.flags.redis_wire import redact

    flags = config.flags if config else {}
    redis = config.flag_store.redis if config else None
    shared = (
        [f"flag store: {redact(redis.url)} (prefix {redis.prefix}) beside the store"]
        if redis
        else []
    )
    if not flags:
        return shared
    lines = [f"flags: {len(flags)} declared", *shared]
    for key, flag in flags.items():
        rules = f"{len(flag.rules)} rule{'s' if len(flag.rules) != 1 else ''}"
        rollout = flag.rollout
        split = (f", rollout {rollout.percentage} % of {rollout.stickiness} get "
                 f"{flag.served(rollout)}" if rollout else "")  # fmt: skip
        state = "enabled" if flag.enabled else f"disabled (serves {flag.off_variant})"
        lines.append(f"flag {key} ({flag.type}): {state}, default {flag.default}, {rules}{split}")
    return lines


def _service_lines(config: Config | None) -> list[str]:
    """Each service's checks with their data policy written out: nothing decided for the
    operator is left unsaid (docs/releases.md)."""
    lines = []
    for name, service in (config.services if config else {}).items():
        for env in service.environment_names():
            checks = (
                "; ".join(
                    f"{c.name} every {c.interval:g}s, min_samples {c.min_samples}, "
                    f"max_error_ratio {c.max_error_ratio:g}, on_no_data: {c.on_no_data}"
                    for c in service.checks(env)
                )
                or "no checks: promoted after bake alone"
            )
            gates = [f"requires {r}" for r in service.requires_of(env)] + [
                f"{g.name} ({g.kind})"
                for g in service.gates_of(env)]  # fmt: skip
            checks += f"; gates: {', '.join(gates)}" if gates else ""
            lines.append(f"service {name} ({env}): {service.strategy}, bake {service.bake:g}s, "
                         f"verify_timeout {service.verify_timeout:g}s; {checks}")  # fmt: skip
        if (canary := service.canary) is not None:
            lines.append(f"service {name}: canary steps {canary.steps} %, each "
                         f"{_analysed(canary.analysis)}")  # fmt: skip
        if (rolling := service.rolling) is not None:
            ceiling = rolling.analysis.max_error_ratio
            lines.append(f"service {name}: rolling {len(rolling.instances)} instances, "
                         f"{rolling.batch} at a time, version_path {rolling.version_path or '-'}"
                         f", each batch {_analysed(rolling.analysis)}, max_error_ratio "
                         f"{'-' if ceiling is None else f'{ceiling:g}'}")  # fmt: skip
        if (blue_green := service.blue_green) is not None:
            slots = ", ".join(f"{slot} {address}" for slot, address in blue_green.slots.items())
            lines.append(f"service {name}: blue_green slots {slots}; {len(blue_green.start)} "
                         f"start step(s), warm_timeout {blue_green.warm_timeout:g}s; the idle "
                         "slot previewed with the http checks, every check on live "
                         "traffic")  # fmt: skip
        if service.scale is not None:
            lines.append(f"service {name}: {service.scale.describe()}")
    return lines


def _analysed(analysis: AnalysisConfig) -> str:
    return (f"analysed {analysis.interval:g}s on {', '.join(analysis.checks)} (critical: "
            f"{', '.join(analysis.critical) or 'none'}), min_samples {analysis.min_samples}, "
            f"on_no_data: {analysis.on_no_data}")  # fmt: skip


def _unit_problems(
    unit: Path, path: Path | None, rules_path: Path, ruleset: RuleSet, registry: Registry,
    say: Callable[[str], None],
) -> list[Problem]:  # fmt: skip
    """What the systemd unit would forbid of the remediations these rules ask for."""
    import os

    from opsmedic.config.loader import read_config
    from opsmedic.deploy.unit_check import UnitGrants, unit_problems
    from opsmedic.runtime import find_config

    unit_config = find_config(None) if path in (None, rules_path) else path
    try:
        # The service sees the unit's Environment= (a store moved out of the config's
        # directory by OPSMEDIC_STORE=…): judge the config it will run with.
        environ = {**os.environ, **UnitGrants.parse(unit.read_text()).environment()}
    except (OSError, UnicodeDecodeError):
        environ = dict(os.environ)  # unit_problems reports the unreadable unit
    read = read_config(unit_config, registry.settings(), environ)
    if read.problems or read.config is None:
        raise ConfigError(read.problems)
    found = unit_problems(read.config, str(unit_config or "(defaults)"), ruleset, unit,
                          read.located, settings=read.settings)  # fmt: skip
    if not found:
        say(f"unit {unit}: allows every remediation: ok")
    return found


def _is_rule_file(path: Path) -> bool:
    """A rule file holds a list; a config file holds a mapping."""
    import yaml

    try:
        return isinstance(yaml.safe_load(path.read_text()), list)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False


@rules_app.command("test")
def rules_test(
    event_file: Annotated[Path, typer.Argument(help="a JSON file with one event or a list")],
    rules: Annotated[Path | None, typer.Option(help="rules path (default: from config)")] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Show which rules an event matches and, for each that does not, the first failed condition."""
    import orjson

    from opsmedic.config.loader import load_config
    from opsmedic.engine.trial import event_problems, try_event
    from opsmedic.rules.loader import load_rules
    from opsmedic.runtime import build_registry, find_config

    registry = build_registry()
    rules_path = rules or load_config(find_config(config), registry.settings())[0].rules_dir
    ruleset = load_rules(rules_path, registry)
    try:
        # orjson, as the API and replay decode: its nesting limit (1024) makes a file of 100k
        # `[` a decode error, where the json module's recursion would end in a traceback.
        raw = event_file.read_bytes()
        data: Any = orjson.loads(raw)
    except OSError as exc:
        raise OpsmedicError(f"{event_file}: cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise OpsmedicError(f"{event_file}: cannot read JSON: {exc}") from None
    text = raw.decode()  # orjson accepted it: valid UTF-8
    listed = isinstance(data, list)
    results = [try_event(ruleset, item) for item in (data if listed else [data])]
    problems = event_problems(results, text, str(event_file), listed)
    if as_json:
        print_json(results)
    elif len(problems) < len(results):  # no empty table when no event was valid
        _print_verdicts(results, event_file)
    if problems:
        raise ConfigError(problems)


def _print_verdicts(results: list[dict[str, Any]], event_file: Path) -> None:
    rows: list[list[Cell]] = [
        [f"{n}: {r['event']['source']}/{r['event']['kind']} {r['target']}", m["rule"],
         Text("yes", "green") if m["match"] else Text("no", "red"),
         _why_not(m), "" if m["match"] else _shown(m["actual"])]
        for n, r in enumerate(results, start=1) if "error" not in r for m in r["rules"]
    ]  # fmt: skip
    columns = ["event", "rule", "match", "why not (first failed condition)", "actual value"]
    print_table(f"rules test: {event_file}", columns, rows)


def _why_not(verdict: dict[str, Any]) -> str:
    if not verdict["match"]:
        return str(verdict["failed_condition"])
    return f"then waits for: {verdict['waits_for_s']:g}s" if verdict["waits_for_s"] else ""


def _shown(value: object) -> str:
    """How an event value reads in a table: as Python repr (enums arrive as their text)."""
    return repr(value)
