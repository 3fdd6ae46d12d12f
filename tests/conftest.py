"""Fixtures shared by every test folder: the real services of tests/services.py."""

from __future__ import annotations

import pytest

# tests/ is a plain directory on sys.path unless someone makes it a package.
if __package__:
    from .services import postgres_url, smtp_server, sshd
    from .store_fixtures import store, store_url
else:
    from services import postgres_url, smtp_server, sshd
    from store_fixtures import store, store_url

__all__ = ["postgres_url", "smtp_server", "sshd", "store", "store_url"]

# A test that uses a service fixture carries that service's marker, so `-m "not sshd"` works.
_MARKER_OF_FIXTURE = {"postgres_url": "postgres", "sshd": "sshd", "smtp_server": "smtp"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "smtp: needs the SMTP server started by the test fixtures")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = getattr(item, "fixturenames", ())
        for fixture, marker in _MARKER_OF_FIXTURE.items():
            if fixture in used:
                item.add_marker(marker)
