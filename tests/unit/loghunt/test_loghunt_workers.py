"""The CLI's default number of processes: two when a core is idle, else one."""

from __future__ import annotations

import pytest

from opsmedic.loghunt import parallel


@pytest.mark.parametrize(
    ("cpus", "load", "workers"),
    [(2, 0.2, 2), (2, 0.5, 2), (2, 0.9, 1), (2, 7.5, 1), (1, 0.0, 1), (None, 0.0, 1),
     (8, 6.0, 2), (8, 6.6, 1)],
)  # fmt: skip
def test_two_workers_only_with_a_core_to_spare(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, load: float, workers: int
) -> None:
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(parallel.os, "getloadavg", lambda: (load, load, load))
    assert parallel.auto_workers() == workers
