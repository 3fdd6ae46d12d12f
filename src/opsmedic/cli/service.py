"""`opsmedic run`: the service (engine, probes, pollers, API, rules watcher) until stopped."""

from __future__ import annotations

import signal

import typer

from opsmedic.cli import ConfigOpt, app

# The runtime and asyncio are imported by the command: every command module is imported for
# `opsmedic --help`, which must not pay for them.


@app.command()
def run(ctx: typer.Context, config: ConfigOpt = None) -> None:
    """Run the engine, the probes and the rules watcher until SIGINT or SIGTERM."""
    import asyncio

    from opsmedic.logs import configure_logging
    from opsmedic.runtime import build, build_registry, find_config, run_forever

    rt = build(find_config(config), registry=build_registry())
    if ctx.obj["log_level"] is None:  # the service logs at its configured level
        configure_logging(rt.config.log.level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_forever(rt, stop)

    asyncio.run(main())
