"""ripgrep as a prefilter: the same answer as without it, and a failing rg changes nothing."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
from hunt_helpers import LOGS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmedic.loghunt import HuntOptions, HuntReport, hunt_paths, open_files, prefilter
from opsmedic.loghunt.levels import LevelMatcher


def _without_time(report: HuntReport) -> tuple[object, dict[str, object]]:
    stats = asdict(report.stats)
    stats.pop("seconds")
    return report.events, stats


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=LOGS, repeat=st.integers(1, 5), chunk=st.integers(16, 300))
def test_rg_offsets_give_what_the_literal_search_gives(
    tmp_path: Path, data: bytes, repeat: int, chunk: int
) -> None:
    path = tmp_path / "app.log"
    path.write_bytes((data + b"\n") * repeat)
    options = HuntOptions(chunk_bytes=chunk, context=2)
    with_rg = hunt_paths([str(path)], options)
    without = hunt_paths([str(path)], HuntOptions(chunk_bytes=chunk, context=2, ripgrep=False))
    assert _without_time(with_rg) == _without_time(without)


def test_it_is_used_for_a_plain_file_and_a_plain_pattern(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("ERROR x\n")
    (source,), _ = open_files([str(tmp_path / "app.log")])
    try:
        finder = prefilter.ripgrep_hits(source, LevelMatcher("ERROR|FATAL"))
        assert isinstance(finder, prefilter.RipgrepHits)
        finder.close()
        assert prefilter.ripgrep_hits(source, LevelMatcher("ERR(OR)?")) is None
        # "ERR" inside "ERROR": rg would report one of the two where both are searched alone
        assert prefilter.ripgrep_hits(source, LevelMatcher("ERR|ERROR")) is None
    finally:
        source.close()


def test_a_failing_rg_hands_over_to_the_literal_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rg gives its first offset and dies: the rest is found all the same, and said."""
    fake = tmp_path / "rg"
    fake.write_text('#!/bin/sh\necho "0:ERROR"\nexit 2\n')
    fake.chmod(0o755)
    monkeypatch.setattr(prefilter, "RG", str(fake))
    path = tmp_path / "app.log"
    path.write_text("".join(f"ERROR kind {chr(97 + i)}\nINFO x\n" for i in range(20)) * 3000)
    options = HuntOptions(chunk_bytes=4096, context=1)
    report = hunt_paths([str(path)], options)
    assert [e.count for e in report.events] == [3000] * 20
    assert any("ripgrep failed (exit 2)" in note for note in report.stats.notes)
    assert report.events == hunt_paths([str(path)], HuntOptions(chunk_bytes=4096, context=1,
                                                                ripgrep=False)).events  # fmt: skip


def test_a_line_too_long_for_rg_memory_hands_over(tmp_path: Path) -> None:
    """A crash-left hole of NULs is one "line" rg would hold whole: past its memory cap it
    aborts, and the literal search (which splits such lines) finds what follows."""
    path = tmp_path / "app.log"
    with path.open("wb") as f:
        f.write(b"ERROR before the hole\n")
        f.truncate(4 * prefilter.RG_MEMORY_BYTES)  # sparse: no disk, no page cache
    with path.open("ab") as f:
        f.write(b"\nERROR after the hole\n")
    report = hunt_paths([str(path)], HuntOptions(context=0))
    assert [e.key for e in report.events] == ["ERROR before the hole", "ERROR after the hole"]
    assert any("ripgrep failed (exit -6)" in note for note in report.stats.notes)


def test_waiting_on_rg_ends_at_the_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An rg that says nothing (a long line still being read) does not hold the hunt past its
    budget: it is stopped and the literal search takes over."""
    fake = tmp_path / "rg"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(prefilter, "RG", str(fake))
    path = tmp_path / "app.log"
    path.write_text("INFO x\nERROR y\n")
    ticks = iter(range(1000))
    report = hunt_paths([str(path)], HuntOptions(context=0, time_budget_s=1.5),
                        clock=lambda: float(next(ticks)))  # fmt: skip
    assert [e.key for e in report.events] == ["ERROR y"]
    assert any("had not answered when the time budget ran out" in n for n in report.stats.notes)
