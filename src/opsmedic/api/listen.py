"""The API's socket, bound before the service starts anything else: a busy port is one line."""

from __future__ import annotations

import socket

from opsmedic.errors import ListenError


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` (0: any free port), as uvicorn would bind it; raises
    ListenError naming the address and why. Bound here rather than by uvicorn, which logs its
    own line and exits: `opsmedic run` fails before recovery and probes, with one line."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise ListenError(_cannot(host, port, f"{host}: {exc.strerror or exc}")) from None
    family, kind, proto, _, address = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ListenError(_cannot(host, port, (exc.strerror or str(exc)).lower())) from None
    sock.set_inheritable(True)
    return sock


def _cannot(host: str, port: int, why: str) -> str:
    return f"the API cannot listen on {host}:{port}: {why}"
