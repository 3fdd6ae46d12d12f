"""Serve the API with uvicorn inside opsmedic's own event loop and signal handling."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Generator

import uvicorn
from starlette.types import ASGIApp

from opsmedic.errors import ListenError

SHUTDOWN_GRACE_S = 10  # seconds


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # `opsmedic run` owns SIGINT/SIGTERM and stops the API itself, after the engine.
        yield


class ApiServer:
    """Serve on a bound socket (api/listen.py bind; port 0 picks a free one), learn its
    address, stop."""

    def __init__(
        self, app: ASGIApp, sock: socket.socket, *, on_stop: Callable[[], None] | None = None
    ) -> None:
        """`on_stop` ends the app's long-lived responses (the flag streams): uvicorn waits
        for every open response before it stops, and a stream never ends by itself."""
        self._on_stop = on_stop
        self._sock = sock
        host, port = sock.getsockname()[:2]
        # No proxy-header rewriting: opsmedic listens on loopback or behind a proxy that the
        # operator configures; trusting X-Forwarded-For by default would let clients lie.
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
            server_header=False, proxy_headers=False,
            # A client holding a request open (half a body) must not hold up a stop forever.
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )  # fmt: skip
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name="opsmedic-api")
        while not self._server.started:
            if self._task.done():
                host, port = self._server.config.host, self._server.config.port
                raise ListenError(f"the API cannot listen on {host}:{port}: see the log above")
            await asyncio.sleep(0.01)

    async def _serve(self) -> None:
        # uvicorn exits the process when it cannot listen (it logged why); a SystemExit from
        # a task would leave the event loop itself, so it ends here and start() reports it.
        with contextlib.suppress(SystemExit):
            await self._server.serve(sockets=[self._sock])

    @property
    def address(self) -> tuple[str, int]:
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return host, port

    async def stop(self) -> None:
        if self._task is None:
            self._sock.close()
            return
        self._server.should_exit = True
        if self._on_stop is not None:
            self._on_stop()
        await asyncio.gather(self._task, return_exceptions=True)
