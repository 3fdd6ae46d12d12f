"""The log hunt's fixtures: hunt a text written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hunt_helpers import Hunt

from opsmedic.loghunt import HuntOptions, HuntReport, hunt_paths


@pytest.fixture
def hunt_text(tmp_path: Path) -> Hunt:
    """hunt_text(text_or_bytes, **options) → the report of a hunt over it as one file."""
    counter = iter(range(1_000_000))

    def run(text: str | bytes, **options: Any) -> HuntReport:
        path = tmp_path / f"app{next(counter)}.log"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return hunt_paths([str(path)], HuntOptions(**options))

    return run
