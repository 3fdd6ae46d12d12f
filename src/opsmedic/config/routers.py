"""Router settings shared by the strategies that move traffic: which load balancer, sticky users."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, model_validator

from opsmedic.config.types import PositiveDuration, Strict

# A backend as the router's `server` line takes it: a name or an address, then a port.
_BACKEND = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}", re.ASCII)


class NginxRouterConfig(Strict):
    """The running nginx whose upstream opsmedic weighs, and the files it reads and owns."""

    upstream: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
    include: Path = Field(description="the upstream file opsmedic owns; nginx.conf includes it")
    access_log: Path = Field(description="written in opsmedic's log_format (docs/releases.md)")
    prefix: Path
    conf: Path = Field(description="nginx's main configuration file")
    pid_file: Path
    program: str = "nginx"
    error_log: Path | None = Field(None, description="nginx -e: its log before it reads conf")
    timeout: PositiveDuration = Field(10.0, description="per nginx -t/-T run and per reload")


class RouterConfig(Strict):
    """Which load balancer carries the traffic; nginx is the one built in."""

    nginx: NginxRouterConfig


class StickyConfig(Strict):
    """Keep each user on one version by a header or a cookie value."""

    header: str | None = Field(None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    cookie: str | None = Field(None, pattern=r"^[A-Za-z0-9_]{1,64}$")

    @model_validator(mode="after")
    def _one(self) -> StickyConfig:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("give exactly one of header or cookie")
        return self


def check_backend(what: str, address: str) -> str:
    """`address` as a router's `server` line takes it (host:port); ValueError naming `what`."""
    port = address.rsplit(":", 1)[-1]
    # fullmatch: `$` would let a trailing newline through, into nginx's config and URLs.
    if not _BACKEND.fullmatch(address) or not 0 < int(port) < 65536:
        raise ValueError(f"{what}: {address!r} is not host:port")
    return address
