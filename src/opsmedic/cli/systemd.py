"""`opsmedic systemd-unit`: the hardened unit a configuration needs, printed for the operator."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from opsmedic.cli import ConfigOpt, app, err, out

# systemd's strict user and group names (systemd.exec(5) User=): what every tool accepts; a
# numeric id is also allowed. Anything else systemd refuses or warns about at start.
_USER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,30}|[0-9]{1,10}")


@app.command("systemd-unit")
def systemd_unit(
    config: ConfigOpt = None,
    exec_path: Annotated[
        Path | None,
        typer.Option("--exec", help="the opsmedic program in ExecStart (default: this one)"),
    ] = None,
    user: Annotated[str, typer.Option(help="the service's own user (and group)")] = "opsmedic",
) -> None:
    """Print a hardened systemd unit for `opsmedic run`, its grants derived from the config."""
    from opsmedic.config.loader import read_config
    from opsmedic.deploy.systemd import systemd_unit as derive_unit
    from opsmedic.errors import ConfigError
    from opsmedic.rules.loader import load_rules
    from opsmedic.runtime import build_registry, find_config

    if exec_path is not None and not exec_path.is_absolute():
        # systemd refuses an ExecStart= program given by a relative path.
        raise typer.BadParameter(
            f"give the absolute path of the opsmedic program, got {str(exec_path)!r}",
            param_hint="--exec",
        )
    if not _USER_RE.fullmatch(user) or (user.isdigit() and int(user) >= 2**32 - 1):
        raise typer.BadParameter(
            f"{user!r} is not a user name systemd accepts: a letter or '_', then letters, "
            "digits, '_' or '-', at most 31 in all (or a numeric id)",
            param_hint="--user",
        )
    config_path = find_config(config)
    if config_path is None:
        raise typer.BadParameter(
            "no opsmedic.yaml here: name the config the unit runs", param_hint="--config"
        )
    registry = build_registry()
    read = read_config(config_path, registry.settings())
    if read.problems or read.config is None:
        raise ConfigError(read.problems)
    loaded, located = read.config, read.located
    ruleset = load_rules(loaded.rules_dir, registry)
    program = exec_path or _this_program()
    unit = derive_unit(loaded, located, ruleset, str(program), user, settings=read.settings)
    out.print(escape(unit.text), end="")
    for warning in unit.warnings:
        err.print(f"warning {escape(warning)}")


def _this_program() -> Path:
    """The absolute path of the opsmedic being run, for ExecStart."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "opsmedic" and argv0.exists():
        return argv0.resolve()
    found = shutil.which("opsmedic")
    return Path(found).resolve() if found else Path(sys.prefix) / "bin" / "opsmedic"
