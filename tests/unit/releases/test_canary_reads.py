"""The canary's frequent log reads: only new lines are tallied, as the step's window counts them."""

from __future__ import annotations

from pathlib import Path

from opsmedic.releases.access_log import Traffic
from opsmedic.releases.canary import clearly_worse
from opsmedic.releases.judge import ErrorCounts

CANARY, STABLE = "127.0.0.1:8002", "127.0.0.1:8001"
START = 1_800_000_000.0  # the step's start ($msec, epoch s)


def _write(log: Path, lines: list[tuple[float, str, int]]) -> None:
    with log.open("a") as f:
        for at, backend, status in lines:
            f.write(f"{at:.3f}\t{status}\t{backend}\t{status}\t0.004\n")


def test_a_canary_answering_500_is_clearly_worse_once_the_abort_minimums_are_read(
    tmp_path: Path,
) -> None:
    log = tmp_path / "access.log"
    log.touch()
    traffic, counts = Traffic(log), dict[str, ErrorCounts]()
    try:
        _write(log, [(START - 1, CANARY, 500)] * 5)  # before the step: not its traffic
        assert not clearly_worse(traffic, START, counts, CANARY, STABLE)
        for i in range(4):  # 4 canary requests: under AbortSettings.min_requests
            _write(
                log, [(START + i, CANARY, 500), (START + i, STABLE, 200), (START + i, STABLE, 200)]
            )
            assert not clearly_worse(traffic, START, counts, CANARY, STABLE)
        assert not clearly_worse(traffic, START, counts, CANARY, STABLE)  # nothing new
        _write(log, [(START + 4, CANARY, 500)])
        assert clearly_worse(traffic, START, counts, CANARY, STABLE)
        assert counts == {CANARY: ErrorCounts(5, 5), STABLE: ErrorCounts(8, 0)}
        window = traffic.window(START)  # what the step records: the same counts
        assert {b: ErrorCounts(s.requests, s.errors) for b, s in window.items()} == counts
    finally:
        traffic.follower.close()


def test_a_canary_as_good_as_stable_is_never_clearly_worse(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.touch()
    traffic, counts = Traffic(log), dict[str, ErrorCounts]()
    try:
        for i in range(50):
            status = 500 if i % 10 == 0 else 200  # 10 % errors on both
            _write(log, [(START + i, CANARY, status), (START + i, STABLE, status)])
            assert not clearly_worse(traffic, START, counts, CANARY, STABLE)
        assert counts == {CANARY: ErrorCounts(50, 5), STABLE: ErrorCounts(50, 5)}
    finally:
        traffic.follower.close()
