"""The router interface a canary drives: backend weights per upstream, set and read back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from opsmedic.errors import OpsmedicError

# host:port, the host a name, an IPv4 address or a bracketed IPv6 address: what nginx's
# `server` line and HAProxy's `server` line both take.
_ADDRESS = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):\d{1,5}"
)
_UPSTREAM = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")
MAX_WEIGHT = 1000  # a share finer than 1/1000 is no canary step


class RouterError(OpsmedicError):
    """A router could not set or read the weights; the message names the upstream and why."""


class WeightsRefused(RouterError):
    """The weights asked for are invalid (bad address, negative weight, nothing left routed)."""


class ConfigRejected(RouterError):
    """The load balancer refused the new configuration; the old one was put back and stays live."""


class ReloadFailed(RouterError):
    """The configuration was valid but the load balancer did not take it up; the old one stays."""


class ReadBackError(RouterError):
    """The live weights could not be read, or differ from those just set."""


class Router(Protocol):
    """Sets and reads the share of requests each backend of an upstream gets.

    Weights map a backend address "host:port" to an integer weight; 0 leaves the backend out
    (it gets no requests) and at least one weight must be above 0.
    """

    async def set_weights(self, upstream: str, weights: Mapping[str, int]) -> None:
        """Make `weights` live for `upstream`; raises a RouterError naming what failed."""

    async def weights(self, upstream: str) -> dict[str, int]:
        """The weights live for `upstream` now, every backend it knows (left-out ones at 0)."""


def check_weights(upstream: str, weights: Mapping[str, int]) -> dict[str, int]:
    """`weights` as a plain dict once valid; WeightsRefused names the first bad entry."""
    if not _UPSTREAM.fullmatch(upstream):
        raise WeightsRefused(
            f"upstream {upstream!r}: a name of letters, digits, '_' and '-' (at most 63) expected"
        )
    if not weights:
        raise WeightsRefused(f"upstream {upstream}: no backends given")
    for address, weight in weights.items():
        port = address.rsplit(":", 1)[-1]
        if not _ADDRESS.fullmatch(address) or not 0 < int(port) < 65536:
            raise WeightsRefused(f"upstream {upstream}: backend {address!r} is not host:port")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise WeightsRefused(f"upstream {upstream}: backend {address} weight is not an integer")
        if not 0 <= weight <= MAX_WEIGHT:
            raise WeightsRefused(
                f"upstream {upstream}: backend {address} weight {weight} is not in 0..{MAX_WEIGHT}"
            )
    if not any(weights.values()):
        raise WeightsRefused(f"upstream {upstream}: every weight is 0, no backend would answer")
    return dict(weights)
