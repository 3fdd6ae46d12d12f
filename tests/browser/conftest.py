"""The browser tests: marked `browser`, with the fixtures of ui_site.py, and a line in the
summary saying where their screenshots and accessibility reports are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ui_site import ARTIFACTS, artifacts, browser, site

__all__ = ["artifacts", "browser", "site"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for where in ARTIFACTS:
        terminalreporter.write_line(f"browser test artifacts (screenshots, axe reports): {where}")
