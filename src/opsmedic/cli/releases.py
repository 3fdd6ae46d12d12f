"""`opsmedic deploy`, `opsmedic rollback` and `opsmedic deployments`: releases from a shell."""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from opsmedic.cli import ConfigOpt, app, err, out
from opsmedic.cli.history import open_store, when
from opsmedic.cli.output import Cell, JsonOpt, print_json, print_table

if TYPE_CHECKING:
    from opsmedic.model import Deployment
    from opsmedic.releases.controller import ReleaseController

EnvOpt = Annotated[
    str | None, typer.Option("--env", "-e", help="environment (default: the service's first)")
]
_STYLE = {"promoted": "green", "rolled_back": "yellow", "failed": "red", "verifying": "cyan",
          "started": "cyan"}  # fmt: skip


@app.command()
def deploy(
    service: Annotated[str, typer.Argument(help="a service under services: in opsmedic.yaml")],
    version: Annotated[str, typer.Argument(help="an entry of the service's versions directory")],
    env: EnvOpt = None,
    force: Annotated[bool, typer.Option(help="skip the gates; recorded as forced")] = False,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Deploy a version and watch it: switch, verify, then promote or roll back (exit 0 only
    when promoted). Progress goes to stderr."""

    async def act(controller: ReleaseController) -> Deployment:
        return await controller.deploy(service, version, env, requested_by=who(), force=force)

    _finish(_drive(config, act), as_json, "promoted")


@app.command()
def rollback(
    service: Annotated[str, typer.Argument(help="a service under services: in opsmedic.yaml")],
    env: EnvOpt = None,
    to: Annotated[
        str | None, typer.Option(help="a version that passed before (default: last known good)")
    ] = None,
    reason: Annotated[str, typer.Option(help="recorded on the deployment")] = "",
    traceback: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            help="the error's traceback (- for stdin): what changed marks the files it names",
        ),
    ] = None,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Emergency: put the last known good version back now, without analysis."""
    error = "" if traceback is None else _read_traceback(traceback)

    async def act(controller: ReleaseController) -> Deployment:
        why = reason or "emergency rollback"
        return await controller.rollback(service, env, to=to, reason=why, requested_by=who(),
                                         traceback=error)  # fmt: skip

    _finish(_drive(config, act), as_json, "rolled_back")


@app.command()
def deployments(
    service: Annotated[str | None, typer.Argument(help="only this service")] = None,
    env: EnvOpt = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="newest first")] = 50,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Deployments, newest first: state, versions, who asked, why it ended."""
    from opsmedic.views import DeploymentView

    found = open_store(config).list_deployments(service, env, limit=limit)
    if service is not None and not found:
        _known_service(config, service)  # an empty list for a typo would read as "none yet"
    if as_json:
        print_json([DeploymentView.model_validate(d).model_dump(mode="json") for d in found])
        return
    print_deployments(found)


def _known_service(config: ConfigOpt, service: str) -> None:
    """UnknownRelease (exit 2, with close matches) when the config declares no `service`."""
    from opsmedic.config.loader import load_config
    from opsmedic.config.located import unknown_name
    from opsmedic.errors import UnknownRelease
    from opsmedic.runtime import find_config, plugin_sections

    declared = load_config(find_config(config), plugin_sections())[0].services
    if service not in declared:
        raise UnknownRelease(unknown_name("service", service, list(declared)))


def print_deployments(found: list[Deployment]) -> None:
    """The deployments as `opsmedic deployments` shows them (the demo's release scene too)."""
    columns = ["id", "service", "env", "version", "previous", "state", "requested by",
               "started (UTC)", "finished (UTC)", "reason"]  # fmt: skip
    rows: list[list[Cell]] = [[d.id, d.service, d.env, d.version, d.previous_version or "-",
             Text(str(d.state) + (" (forced)" if d.forced else ""), _STYLE.get(d.state, "")),
             d.requested_by, when(d.created_at), when(d.finished_at), d.reason]
            for d in found]  # fmt: skip
    print_table("deployments", columns, rows, empty="no deployments")


def _read_traceback(source: str) -> str:
    """The text of --traceback FILE (`-`: stdin), at most TRACEBACK_LIMIT bytes of UTF-8."""
    import sys

    from opsmedic.plugins import TRACEBACK_LIMIT

    where = "stdin" if source == "-" else source
    try:
        if source == "-":
            data = sys.stdin.buffer.read(TRACEBACK_LIMIT + 1)
        else:
            with open(source, "rb") as f:
                data = f.read(TRACEBACK_LIMIT + 1)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {where}: {exc.strerror}", param_hint="--traceback"
        ) from None
    if len(data) > TRACEBACK_LIMIT:
        raise typer.BadParameter(
            f"{where} is over {TRACEBACK_LIMIT // 1024} KiB: give the traceback, not the whole "
            "log (e.g. its last lines through tail and -)",
            param_hint="--traceback",
        )
    return data.decode("utf-8", errors="replace")


def who() -> str:
    try:
        return f"cli {getpass.getuser()}"
    except (KeyError, OSError):  # a uid with no name (containers)
        return "cli"


def _drive(
    config: Path | None, act: Callable[[ReleaseController], Awaitable[Deployment]]
) -> Deployment:
    """Build the runtime, start its engine (the switch steps run there and the deployment's
    events go through it), resolve deployments a dead process left, then `act`."""
    import asyncio

    from opsmedic.errors import UnknownRelease
    from opsmedic.releases.recovery import recover
    from opsmedic.runtime import build, build_registry, find_config

    rt = build(find_config(config), registry=build_registry())
    controller = rt.releases
    if controller is None:
        raise UnknownRelease("the config declares no services: (see docs/releases.md)")
    controller.progress = lambda line: err.print(Text(line))

    async def main() -> Deployment:
        await rt.engine.start()
        try:
            for found in await recover(controller):
                err.print(Text(f"recovered {found.id}: {found.state}: {found.reason}"))
            return await act(controller)
        finally:
            await rt.engine.close()

    return asyncio.run(main())


def _finish(deployment: Deployment, as_json: bool, wanted: str) -> None:
    """Print the outcome; exit 1 unless the deployment ended in the `wanted` state."""
    from opsmedic.views import DeploymentView

    if as_json:
        print_json(DeploymentView.model_validate(deployment).model_dump(mode="json"))
    else:
        line = (f"{deployment.service} {deployment.version} in {deployment.env}: "
                f"{deployment.state} ({deployment.id})")  # fmt: skip
        out.print(Text(line, _STYLE.get(deployment.state, "")))
    if deployment.state != wanted:
        raise typer.Exit(1)
