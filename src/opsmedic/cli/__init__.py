"""The `opsmedic` command: the only place that prints and exits; errors are caught here once."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from opsmedic.cli.terminal import InertConsole
from opsmedic.errors import ConfigError, OpsmedicError
from opsmedic.logs import configure_logging

app = typer.Typer(
    name="opsmedic",
    help="Rehearsed, bounded and audited remediation for on-call toil.",
    no_args_is_help=True,
    # --install-completion / --show-completion: typer's, for bash, zsh, fish and PowerShell.
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain help: typer's rich help imports rich's markdown and traceback renderers, 60 ms of
    # CPU that put `opsmedic --help` past its 0.3 s budget on a busy 2-core machine (bench/idle.py).
    rich_markup_mode=None,
)
# Inert: a control or bidi character in a printed value shows as its escape (docs/security.md).
out = InertConsole(highlight=False, soft_wrap=True)
err = InertConsole(stderr=True, highlight=False, soft_wrap=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="opsmedic.yaml (default: $OPSMEDIC_CONFIG or ./opsmedic.yaml)"
    ),
]


def _print_version(value: bool) -> None:
    """--version: the installed distribution's version, read from its metadata."""
    if value:
        from opsmedic.version import installed_version

        out.print(f"opsmedic {installed_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="debug, info, warning or error (logfmt lines on stderr); default warning, "
            "and for `run` the config's log.level"
        ),
    ] = None,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    if log_level not in (None, "debug", "info", "warning", "error"):
        raise typer.BadParameter("use debug, info, warning or error", param_hint="--log-level")
    ctx.obj = {"log_level": log_level}
    configure_logging(log_level or "warning")


# A command group whose commands all live in one module: run as `opsmedic logs …`, only that
# module is imported, not the other ~20 (stores, pydantic models, ~0.1 s of start-up that a
# log hunt would wait for). --help and anything else import them all.
ALONE = {"logs": "opsmedic.cli.logs"}


def command_word(argv: list[str]) -> str | None:
    """The command named first in `argv` (after the root's options), or None."""
    args = iter(argv)
    for arg in args:
        if arg == "--log-level":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    """Entry point of the console script."""
    alone = ALONE.get(command_word(sys.argv[1:]) or "")
    if alone is not None:
        importlib.import_module(alone)
    else:
        _import_all()
    _run()


def _import_all() -> None:
    from opsmedic.cli import (  # noqa: F401
        approvals,
        archive,
        demo,
        explain,
        flags,
        history,
        incident_actions,
        incidents,
        logs,
        manual,
        releases,
        replay,
        reports,
        service,
        setup,
        silences,
        slo,
        systemd,
        tokens,
    )


def _run() -> None:
    try:
        code = app(standalone_mode=False)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(Text.assemble(("error ", "red"), str(problem)))
        sys.exit(exc.exit_code)
    except OpsmedicError as exc:
        err.print(Text.assemble(("error ", "red"), str(exc)))
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: typer's click prints them itself
        exc.show()  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
