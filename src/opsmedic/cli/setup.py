"""`opsmedic init`, `opsmedic check` and `opsmedic rules test`: writing and proving configs."""

from __future__ import annotations

import json
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from opsmedic.cli import ConfigOpt, app, err, out
from opsmedic.errors import ConfigError, OpsmedicError, Problem
from opsmedic.files import write_atomic

# Config, rules, plugins (pydantic, Jinja2) and rich's tables are imported by the commands
# that use them: every command module is imported for `opsmedic --help`.

rules_app = typer.Typer(help="Work with rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="where to write the starter files")] = Path("."),
    force: Annotated[bool, typer.Option(help="overwrite existing files")] = False,
) -> None:
    """Write a commented starter opsmedic.yaml and a rules directory."""
    starter = resources.files("opsmedic.starter")
    targets = {
        directory / "opsmedic.yaml": starter.joinpath("opsmedic.yaml").read_text(),
        directory / "rules" / "example.yaml": starter.joinpath("rules.yaml").read_text(),
    }
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise OpsmedicError(f"{existing[0]} exists; use --force to overwrite")
    for path, text in targets.items():
        write_atomic(path, text)
        out.print(f"wrote {path}")
    out.print(f"next: opsmedic check {directory / 'opsmedic.yaml'}")


@app.command()
def check(
    path: Annotated[
        Path | None, typer.Argument(help="a config file, a rules directory or one rule file")
    ] = None,
    unit: Annotated[
        Path | None,
        typer.Option(help="a systemd unit: report remediations it would forbid (docs/deploy.md)"),
    ] = None,
) -> None:
    """Validate config and rules: exit 0 when valid, 2 with every problem at file:line:col."""
    from opsmedic.config.loader import load_config
    from opsmedic.plugins import build_registry
    from opsmedic.rules.loader import load_rules
    from opsmedic.runtime import check_config, find_config

    registry = build_registry()
    problems: list[Problem] = []
    rules_path = None
    if path is not None and (path.is_dir() or _is_rule_file(path)):
        rules_path = path
    else:
        config_path = path or find_config(None)
        config, located = load_config(config_path)
        problems.extend(check_config(config, located, registry))
        rules_path = config.rules_dir
        if not problems:
            out.print(f"config {config_path or '(defaults)'}: ok")
    try:
        ruleset = load_rules(rules_path, registry)
    except ConfigError as exc:
        problems.extend(exc.problems)
    else:
        out.print(f"rules {rules_path}: {len(ruleset)} rules in {len(ruleset.files)} files: ok")
        if unit is not None:
            from opsmedic.deploy.unit_check import unit_problems

            unit_config = find_config(None) if path in (None, rules_path) else path
            config_name = str(unit_config or "(defaults)")
            found = unit_problems(load_config(unit_config)[0], config_name, ruleset, unit)
            problems.extend(found)
            if not found:
                out.print(f"unit {unit}: allows every remediation: ok")
    if problems:
        raise ConfigError(problems)


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
    config: ConfigOpt = None,
) -> None:
    """Show which rules an event matches and, for each that does not, the first failed condition."""
    from rich.table import Table

    from opsmedic.config.loader import load_config
    from opsmedic.plugins import build_registry
    from opsmedic.rules.loader import load_rules
    from opsmedic.runtime import find_config
    from opsmedic.sources.events import parse_event

    rules_path = rules or load_config(find_config(config))[0].rules_dir
    ruleset = load_rules(rules_path, build_registry())
    try:
        data: Any = json.loads(event_file.read_text())
    except (OSError, ValueError) as exc:
        raise OpsmedicError(f"{event_file}: cannot read JSON: {exc}") from None
    for n, item in enumerate(data if isinstance(data, list) else [data], start=1):
        try:
            event = parse_event(item)
        except ValueError as exc:
            err.print(f"{event_file}: event {n}: {exc}")
            continue
        table = Table(title=f"event {n}: {event.source}/{event.kind} {event.target}")
        for column in ("rule", "match", "why not (first failed condition)", "actual value"):
            table.add_column(column)
        for rule, failed in ruleset.explain(event):
            if failed is None:
                extra = f"then waits for: {rule.for_s:g}s" if rule.for_s else ""
                table.add_row(rule.name, "[green]yes[/green]", extra, "")
            else:
                table.add_row(
                    rule.name,
                    "[red]no[/red]",
                    escape(failed.describe),
                    escape(_shown(failed.actual(event))),
                )
        out.print(table)


def _shown(value: object) -> str:
    """How an event value reads in a table: enums as their text, the rest as Python repr."""
    return repr(str(value)) if isinstance(value, StrEnum) else repr(value)
