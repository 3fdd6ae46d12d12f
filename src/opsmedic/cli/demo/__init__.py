"""`opsmedic demo`: real remediations on this machine, in a temporary directory, then exit."""

from __future__ import annotations

from typing import Annotated

import typer

from opsmedic.cli import app

# The demo's scenes (asyncio, the runtime, the model) are imported when it plays: every
# command module is imported for `opsmedic --help`, which must not pay for them.


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="keep the temporary directory to inspect")] = False,
    timeout: Annotated[float, typer.Option(help="seconds each scene may take at most")] = 30.0,
    scene: Annotated[
        list[int] | None,
        typer.Option(min=1, max=6, help="play only this scene (1-6); repeat for more"),
    ] = None,
) -> None:
    """Play the demo: real services fail, probes notice, rules remediate, history shows it."""
    from opsmedic.cli.demo.play import play

    play(keep, timeout, sorted(set(scene or [])))
