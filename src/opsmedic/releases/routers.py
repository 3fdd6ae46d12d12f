"""The routers of the services whose strategy moves traffic, built once from their config."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsmedic.config.routers import RouterConfig, StickyConfig
from opsmedic.releases.nginx import NginxRouter, NginxSettings, Sticky, UpstreamFile
from opsmedic.releases.router import Router


@dataclass(slots=True)
class Routers:
    """One router per service, so its lock pairs each file written with its reload."""

    built: dict[str, Router] = field(default_factory=dict)

    def get(self, service: str, config: RouterConfig, sticky: StickyConfig | None = None) -> Router:
        if service not in self.built:
            self.built[service] = nginx_router(config, sticky)
        return self.built[service]


def nginx_router(config: RouterConfig, sticky: StickyConfig | None) -> NginxRouter:
    """The nginx router a service's `router:` settings describe."""
    nginx = config.nginx
    pin = None
    if sticky is not None:
        pin = (Sticky("header", sticky.header) if sticky.header is not None
               else Sticky("cookie", sticky.cookie or ""))  # fmt: skip
    return NginxRouter(NginxSettings(
        prefix=nginx.prefix, conf=nginx.conf, pid_file=nginx.pid_file,
        upstreams={nginx.upstream: UpstreamFile(nginx.include, pin)},
        program=nginx.program, timeout_s=nginx.timeout,
        extra_args=("-e", str(nginx.error_log)) if nginx.error_log else (),
    ))  # fmt: skip
