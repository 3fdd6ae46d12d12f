"""Helpers for the log hunt's tests: hunt a text written to a file, read the report back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsmedic.loghunt import HuntOptions, HuntReport, hunt_paths

Hunt = Callable[..., HuntReport]


@pytest.fixture
def hunt_text(tmp_path: Path) -> Hunt:
    """hunt_text(text_or_bytes, **options) → the report of a hunt over it as one file."""
    counter = iter(range(1_000_000))

    def run(text: str | bytes, **options: Any) -> HuntReport:
        path = tmp_path / f"app{next(counter)}.log"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return hunt_paths([str(path)], HuntOptions(**options))

    return run


def shown(report: HuntReport) -> list[tuple[int, str]]:
    """The report's lines as (number, text), overlaps once, in order: what a reader sees."""
    seen: dict[int, str] = {}
    for event in report.events:
        for line in event.lines:
            seen.setdefault(line.number, line.text)
    return sorted(seen.items())


def event_lines(report: HuntReport) -> list[list[str]]:
    """Each reported event's own lines (the match and its continuation), without context."""
    return [[ln.text for ln in e.lines if ln.kind != "context"] for e in report.events]


class PiecesSource:
    """A Source over bytes, handed out in pieces of `piece` bytes: block and carry edges land
    everywhere."""

    def __init__(self, data: bytes, piece: int, name: str = "mem.log") -> None:
        self.name = name
        self.data = data
        self.piece = piece
        self.size: int | None = len(data)
        self.position = 0
        self.notes: list[str] = []

    def chunks(self) -> Iterator[bytes]:
        for at in range(0, len(self.data), self.piece):
            self.position = min(len(self.data), at + self.piece)
            yield self.data[at : at + self.piece]

    def close(self) -> None:
        """Nothing to close."""
