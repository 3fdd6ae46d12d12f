"""Fixtures shared by every test folder: the real services of tests/services.py."""

from __future__ import annotations

import pytest

# tests/ is a plain directory on sys.path unless someone makes it a package.
if __package__:
    from .services import postgres_url, shared_dir, smtp_server, sshd
    from .services_bluegreen import bluegreen_rig
    from .services_dns import dns_pair, dns_pair_session
    from .services_nginx import canary_rig
    from .services_redis import redis_server
    from .services_rolling import rolling_rig
    from .services_scale import scale_rig
    from .services_tls import tls_server
    from .store_fixtures import store, store_url
else:
    from services import postgres_url, shared_dir, smtp_server, sshd
    from services_bluegreen import bluegreen_rig
    from services_dns import dns_pair, dns_pair_session
    from services_nginx import canary_rig
    from services_redis import redis_server
    from services_rolling import rolling_rig
    from services_scale import scale_rig
    from services_tls import tls_server
    from store_fixtures import store, store_url

__all__ = [
    "bluegreen_rig",
    "canary_rig",
    "dns_pair",
    "dns_pair_session",
    "postgres_url",
    "redis_server",
    "rolling_rig",
    "scale_rig",
    "shared_dir",
    "smtp_server",
    "sshd",
    "store",
    "store_url",
    "tls_server",
]

# A test that uses a service fixture carries that service's marker, so `-m "not sshd"` works.
_MARKER_OF_FIXTURE = {
    "postgres_url": "postgres",
    "sshd": "sshd",
    "smtp_server": "smtp",
    "dns_pair": "dns",
    "dns_pair_session": "dns",
    "tls_server": "tls",
    "canary_rig": "nginx",
    "redis_server": "redis",
    "rolling_rig": "nginx",
    "bluegreen_rig": "nginx",
    "scale_rig": "nginx",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "smtp: needs the SMTP server started by the test fixtures")
    config.addinivalue_line("markers", "dns: needs the two BIND servers of tests/services_dns.py")
    config.addinivalue_line("markers", "tls: needs the nginx TLS server of tests/services_tls.py")
    config.addinivalue_line(
        "markers",
        "nginx: needs the nginx rigs of tests/services_nginx.py (and _rolling, _bluegreen, _scale)",
    )
    config.addinivalue_line("markers", "redis: needs the redis-server of tests/services_redis.py")
    config.addinivalue_line(
        "markers", "alertmanager: needs prometheus-alertmanager (tests/services_alertmanager.py)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = getattr(item, "fixturenames", ())
        for fixture, marker in _MARKER_OF_FIXTURE.items():
            if fixture in used:
                item.add_marker(marker)
